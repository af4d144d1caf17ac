"""`qlik-email-fleet audit`: read-only, no state, no CLI; the pack's rules on live configs."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from qlik_email_resource.emulator import Emulator
from qlik_email_resource.fleet.cli import main
from qlik_email_resource.policy_pack.rules import TENANT_URL, TLS_REQUIRED, VERIFY_ON_APPLY
from tests.fleet.browser import dump_dom, needs_chromium

GOOD = ["good-1", "good-2", "good-3"]
PLAIN = "plain-smtp"  # security_type none: email-tls-required (mandatory) fails
BAD_PASSWORD = "bad-password"  # stored config whose SMTP login fails on verify
EMPTY = "unconfigured"
WRONG_KEY = "wrong-key"
TENANTS = [*GOOD, PLAIN, BAD_PASSWORD, EMPTY, WRONG_KEY]


@dataclass
class Audit:
    emu: Emulator
    file: Path
    secrets: list[str]

    def run(self, *args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(["audit", str(self.file), *args], stdout=out, stderr=err)
        return code, out.getvalue(), err.getvalue()

    def leaks(self, *texts: str) -> list[str]:
        return [s for s in self.secrets for t in texts if s in t]


def _config(smtp: dict, **fields: object) -> dict:
    return {
        "serverAddress": "email-smtp.eu-west-2.amazonaws.com", "serverPort": 2465,
        "securityType": "SSL/TLS", "username": smtp["username"],
        "emailAddress": "reports@example.com", "emailPassword": smtp["password"], **fields,
    }


@pytest.fixture(scope="module")
def audit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Audit]:
    work = tmp_path_factory.mktemp("audit")
    with Emulator(tenants=TENANTS, workdir=work / "emu") as emu, \
            pytest.MonkeyPatch.context() as env:
        info = emu.info
        smtp = info["smtp"]
        for name in GOOD:
            emu.set_config(name, _config(smtp, senderName=f"Reports {name}"))
        emu.set_config(PLAIN, _config(smtp, securityType="none", serverPort=2587))
        emu.set_config(BAD_PASSWORD, _config(smtp, emailPassword="not-the-password"))
        tenants = {}
        for name in TENANTS:
            var = "AUDIT_KEY_" + name.upper().replace("-", "_")
            env.setenv(var, info["tenants"][name]["api_key"])
            tenants[name] = {"url": info["tenants"][name]["url"], "api_key_env": var,
                             "ca_bundle": info["ca_file"]}
        env.setenv("AUDIT_KEY_WRONG_KEY", "qlikemu_not_a_key")
        env.setenv("AUDIT_SMTP_PASSWORD", smtp["password"])
        document = {
            "defaults": {"email_password_env": "AUDIT_SMTP_PASSWORD"},
            "tenants": tenants,
            "policy_config": {TENANT_URL: {"allowLocalhost": True}},
        }
        path = work / "tenants.yaml"
        path.write_text(yaml.safe_dump(document))
        secrets = [smtp["password"], "not-the-password"] + [
            t["api_key"] for t in info["tenants"].values()
        ]
        yield Audit(emu, path, secrets)


def _by_tenant(document: dict) -> dict[str, dict]:
    return {t["tenant"]: t for t in document["tenants"]}


def test_fleet_audit_reports_what_each_tenant_holds(
    audit: Audit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no Pulumi CLI anywhere
    monkeypatch.chdir(tmp_path)  # and no state: nothing is read or written here
    audit.emu.clear_requests()
    report = tmp_path / "audit.json"
    code, out, err = audit.run("--json", str(report))
    assert code == 1, out + err  # the wrong-key tenant could not be read
    assert [p.name for p in tmp_path.iterdir()] == ["audit.json"]
    # read-only: one GET per tenant, nothing else
    calls = audit.emu.requests()
    assert sorted(r["tenant"] for r in calls) == sorted(TENANTS)
    assert {r["method"] for r in calls} == {"GET"}

    tenants = _by_tenant(json.loads(report.read_text()))
    good = tenants["good-1"]
    assert good["status"] == "compliant"
    assert (good["server_address"], good["server_port"], good["security_type"]) == (
        "email-smtp.eu-west-2.amazonaws.com", 2465, "SSL/TLS")
    assert (good["email_address"], good["sender_name"]) == ("reports@example.com",
                                                            "Reports good-1")
    assert good["is_valid"] is not None and good["modification_time"]
    assert good["auth_failures"] == 0 and "error_code" in good
    assert good["rules"][TLS_REQUIRED] == {"verdict": "pass", "message": None}
    # the pack's own rule function judged the plain-SMTP tenant, in its own words
    plain = tenants[PLAIN]
    assert plain["status"] == "non-compliant"
    assert plain["rules"][TLS_REQUIRED]["verdict"] == "mandatory"
    assert f"fails {TLS_REQUIRED}: security_type is 'none'" in \
        plain["rules"][TLS_REQUIRED]["message"]
    assert tenants[EMPTY]["status"] == "not configured"
    assert set(v["verdict"] for v in tenants[EMPTY]["rules"].values()) == {"n/a"}
    wrong = tenants[WRONG_KEY]
    assert wrong["status"] == "error"
    assert "api_key_env: AUDIT_KEY_WRONG_KEY" in wrong["error"]

    # the terminal table: failing tenants first, a summary by rule
    lines = out.splitlines()
    assert lines[2].startswith(WRONG_KEY) and lines[3].startswith(PLAIN), out
    assert f"{TLS_REQUIRED} (mandatory): 4/5" in out
    assert audit.leaks(out, err, report.read_text()) == []


def test_fleet_audit_exit_code_is_the_gate(audit: Audit) -> None:
    code, out, _ = audit.run("--tenant", "good-1", "--tenant", PLAIN)
    assert code == 5, out  # a mandatory violation, and every tenant was read
    code, out, _ = audit.run("--tenant", "good-1", "--tenant", "good-2", "--tenant", EMPTY)
    assert code == 0, out


def test_fleet_audit_verify_asks_each_tenant_once(audit: Audit, tmp_path: Path) -> None:
    audit.emu.clear_requests()
    report = tmp_path / "verify.json"
    names = ["--tenant", "good-2", "--tenant", BAD_PASSWORD, "--tenant", EMPTY]
    code, out, err = audit.run(*names, "--verify", "--json", str(report))
    assert code == 0, out + err
    calls = audit.emu.requests()
    per_tenant = {t: sorted(r["method"] for r in calls if r["tenant"] == t)
                  for t in ("good-2", BAD_PASSWORD, EMPTY)}
    # 1 GET + 1 POST (verify-connection); none for a tenant with nothing to verify
    assert per_tenant == {"good-2": ["GET", "POST"], BAD_PASSWORD: ["GET", "POST"],
                          EMPTY: ["GET"]}
    tenants = _by_tenant(json.loads(report.read_text()))
    assert tenants["good-2"]["verify"]["success"] is True
    bad = tenants[BAD_PASSWORD]
    assert bad["verify"]["success"] is False
    # the tenant's own proof feeds the pack's verification rule (advisory)
    assert bad["rules"][VERIFY_ON_APPLY]["verdict"] == "advisory"
    assert tenants["good-2"]["rules"][VERIFY_ON_APPLY]["verdict"] == "pass"
    assert audit.leaks(out, err, report.read_text()) == []


def test_fleet_audit_html_is_one_self_contained_page(audit: Audit, tmp_path: Path) -> None:
    page = tmp_path / "audit.html"
    code, _, _ = audit.run("--html", str(page))
    assert code == 1
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>")
    for remote in ("<link", "src=", "@import", "url("):
        assert remote not in text, remote  # nothing to fetch: opens from disk
    assert "default-src 'none'" in text
    # failing tenants first, then the rest
    order = [line.split('data-tenant="')[1].split('"')[0]
             for line in text.splitlines() if 'data-tenant="' in line]
    assert order[:2] == [WRONG_KEY, PLAIN]
    assert set(order) == set(TENANTS)
    assert audit.leaks(text) == []


@needs_chromium
def test_fleet_audit_html_in_a_real_headless_browser(audit: Audit, tmp_path: Path) -> None:
    page = tmp_path / "audit.html"
    audit.run("--html", str(page))
    dom = dump_dom(f"{page.as_uri()}#sort=tenant", tmp_path / "profile")
    # the summary, as a reader sees it
    assert "Email configuration audit" in dom
    assert '<div class="card" data-card="compliant"><b>4</b>compliant</div>' in dom
    assert TLS_REQUIRED in dom and "4 of 5" in dom
    # the page's script ran: sorted by tenant name, as #sort=tenant asked
    assert 'data-sorted-by="tenant"' in dom
    order = [chunk.split('"')[0] for chunk in dom.split('data-tenant="')[1:]]
    assert order == sorted(TENANTS)


def test_fleet_audit_runs_without_pulumi_and_from_the_console_script(
    audit: Audit, tmp_path: Path
) -> None:
    # As users run it: its own process, no `pulumi` anywhere on PATH.
    done = subprocess.run(
        [sys.executable, "-m", "qlik_email_resource.fleet", "audit", str(audit.file),
         "--tenant", "good-3"],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
        env={**__import__("os").environ, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "audit: 1 tenants: 1 compliant" in done.stdout
