"""The Automation API backend: its reading of the engine's events, and real runs with the CLI."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi.automation.events import EngineEvent

from qlik_email_resource.emulator import Emulator
from qlik_email_resource.fleet.automation import _Events, result_word, verification
from qlik_email_resource.fleet.cli import main
from qlik_email_resource.fleet.program import RESOURCE_TYPE
from qlik_email_resource.policy_pack.rules import ALLOWED_PORTS, TENANT_URL
from tests.cli.clienv import CliEnv, needs_cli

REPO = Path(__file__).resolve().parents[2]


def _event(**body: object) -> EngineEvent:
    # The SDK's own parser turns the CLI's JSON event stream into these objects.
    return EngineEvent.from_json({"sequence": 1, "timestamp": 0, **body})


def _pre(op: str, type_: str = RESOURCE_TYPE, diffs: list[str] | None = None) -> EngineEvent:
    meta = {"op": op, "urn": f"urn:pulumi:s::p::{type_}::email", "type": type_, "provider": ""}
    if diffs is not None:
        meta["diffs"] = diffs
    return _event(resourcePreEvent={"metadata": meta})


def test_fleet_automation_events_give_op_fields_policies_and_error() -> None:
    events = _Events()
    events.handle(_pre("same", type_="pulumi:pulumi:Stack"))
    events.handle(_pre("update", diffs=["sender_name", "__provider"]))
    policy = {
        "message": "m", "color": "never", "policyName": ALLOWED_PORTS,
        "policyPackName": "qlik-email", "policyPackVersion": "0.1.0",
        "policyPackVersionTag": "", "enforcementLevel": "advisory",
    }
    events.handle(_event(policyEvent=policy))
    events.handle(_event(policyEvent=policy))  # the update phase reports it again
    events.handle(_event(diagnosticEvent={
        "message": "Traceback...\nQlikAuthenticationError: 401 the API key was refused\n",
        "color": "never", "severity": "error",
    }))
    assert events.op == "update"
    assert events.changed == ["sender_name"]
    assert events.violations == [f"{ALLOWED_PORTS} (advisory)"]
    assert not events.mandatory()
    assert events.error() == "QlikAuthenticationError: 401 the API key was refused"


def test_fleet_automation_error_is_the_resources_not_the_engines_epilogue() -> None:
    # What the real engine sends when the provider fails: the resource's error, then
    # generic ones of its own with no URN.
    events = _Events()
    urn = f"urn:pulumi:s::p::{RESOURCE_TYPE}::email"
    cause = "QlikUnavailableError: read email config: HTTP 500 beyond the retry budget"
    for message, where in ((f"Traceback ...\n{cause}\n", urn), ("update failed", None),
                           ("Resource monitor has terminated, shutting down", None)):
        body = {"message": message, "color": "never", "severity": "error"}
        events.handle(_event(diagnosticEvent={**body, **({"urn": where} if where else {})}))
    assert events.error() == cause


def test_fleet_automation_replacement_is_reported_once() -> None:
    events = _Events()
    for op in ("create-replacement", "replace", "delete-replaced"):
        events.handle(_pre(op, diffs=["tenant_url"]))
    events.handle(_pre("same"))
    assert (events.op, events.changed) == ("replace", ["tenant_url"])


def test_fleet_automation_result_words_and_verification() -> None:
    assert result_word("create", preview=True) == "would create"
    assert result_word("same", preview=True) == "unchanged"
    assert result_word("update", preview=False) == "updated"
    assert verification({"is_valid": True}) == "valid"
    assert verification({"is_valid": False, "error_code": "INVALID_CREDENTIALS"}) == (
        "invalid (INVALID_CREDENTIALS)"
    )
    assert verification({}) == "-"


@needs_cli
def test_fleet_automation_up_twice_against_the_emulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Emulator(tenants=("demo", "acme"), workdir=tmp_path / "emu") as emu:
        info = emu.info
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "test-only")
        monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
        monkeypatch.setenv("QLIK_EMULATOR_API_URL", info["api_url"])
        monkeypatch.setenv("QLIK_EMULATOR_CA", info["ca_file"])
        monkeypatch.setenv("QLIK_EMULATOR_SMTP_PASSWORD", info["smtp"]["password"])
        monkeypatch.setenv("QLIK_DEMO_API_KEY", info["tenants"]["demo"]["api_key"])
        monkeypatch.setenv("QLIK_ACME_API_KEY", info["tenants"]["acme"]["api_key"])
        args = ["up", str(REPO / "examples" / "tenants.yaml"), "--policy-pack",
                str(REPO / "policies"), "--state-dir", str(tmp_path / "state")]
        out = io.StringIO()
        assert main(args, stdout=out, stderr=io.StringIO()) == 0, out.getvalue()
        assert "up: 2 tenants: 2 created" in out.getvalue()
        emu.clear_requests()
        out = io.StringIO()
        assert main(args, stdout=out, stderr=io.StringIO()) == 0, out.getvalue()
        assert "up: 2 tenants: 2 unchanged" in out.getvalue()
        assert [r for r in emu.requests() if r["method"] != "GET"] == []
        for secret in (info["smtp"]["password"], info["tenants"]["demo"]["api_key"]):
            assert secret not in out.getvalue()
        # state lives in the file backend under --state-dir, secrets encrypted
        state_text = "".join(p.read_text() for p in (tmp_path / "state").rglob("*.json"))
        assert info["tenants"]["acme"]["api_key"] not in state_text


@needs_cli
@pytest.mark.timeout(900)  # about 90 CPU-seconds of CLI and plugin processes on 2 cores
def test_fleet_automation_twenty_tenants_parallel_one_failing_isolated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenants = [f"tenant-{i:02d}" for i in range(20)]
    failing = "tenant-07"
    cli = CliEnv.create(tmp_path / "cli")
    for key, value in cli.environ.items():
        monkeypatch.setenv(key, value)
    # The fleet's own default: a file backend under --state-dir.
    monkeypatch.delenv("PULUMI_BACKEND_URL")
    # The failing tenant gives up after one retry instead of five (the provider reads
    # these in its own process, which inherits them through the CLI).
    monkeypatch.setenv("QLIK_MAX_RETRIES", "1")
    monkeypatch.setenv("QLIK_BACKOFF_FACTOR", "0.1")
    with Emulator(tenants=tenants, workdir=tmp_path / "emu") as emu:
        info = emu.info
        monkeypatch.setenv("FLEET_SMTP_PASSWORD", info["smtp"]["password"])
        entries = {}
        for name, tenant in info["tenants"].items():
            var = "KEY_" + name.upper().replace("-", "_")
            monkeypatch.setenv(var, tenant["api_key"])
            entries[name] = {"url": tenant["url"], "api_key_env": var,
                             "ca_bundle": info["ca_file"]}
        document = {
            "defaults": {
                "server_address": "email-smtp.eu-west-2.amazonaws.com",
                "server_port": 2465, "security_type": "SSL/TLS",
                "username": info["smtp"]["username"],
                "email_password_env": "FLEET_SMTP_PASSWORD",
                "email_address": "reports@example.com", "verify_connection": True,
            },
            "tenants": entries,
            "policy_config": {TENANT_URL: {"allowLocalhost": True}},
        }
        tenants_file = tmp_path / "tenants.yaml"
        tenants_file.write_text(yaml.safe_dump(document))
        secrets = [info["smtp"]["password"]] + [t["api_key"] for t in info["tenants"].values()]

        def fleet(*extra: str, file: Path = tenants_file) -> tuple[int, str]:
            out, err = io.StringIO(), io.StringIO()
            started = time.monotonic()
            code = main(["up", str(file), "--policy-pack", str(REPO / "policies"),
                         "--state-dir", str(tmp_path / "state"), "--parallel", "8", *extra],
                        stdout=out, stderr=err)
            # Shown with -s: how long a roll-out takes under the real engine.
            print(f"fleet up {' '.join(extra)}: {time.monotonic() - started:.1f} s")
            for secret in secrets:
                assert secret not in out.getvalue() + err.getvalue()
            return code, out.getvalue()

        def row(out: str, tenant: str) -> list[str]:
            line = next(x for x in out.splitlines() if x.startswith(tenant + " "))
            return re.split(r"\s{2,}", line.strip())

        # One tenant's API answers 500 to everything: only that tenant fails.
        emu.add_fault(failing, "status", status=500, count=1000)
        code, out = fleet()
        assert code == 1, out
        assert "up: 20 tenants: 19 created, 1 failed" in out
        assert row(out, failing)[:2] == [failing, "failed"]
        assert re.search(rf"  {failing}: .*HTTP 500", out), out
        for tenant in tenants:
            if tenant != failing:
                assert row(out, tenant)[:5] == [tenant, "created", "(new)", "-", "valid"]
        written = {r["tenant"] for r in emu.requests() if r["method"] == "PUT"}
        assert written == set(tenants) - {failing}
        for tenant in written:
            assert held_sender(emu, tenant) == "reports@example.com"

        # Repaired: the next run creates that one and leaves a deployed one alone
        # (two tenants, not twenty: a converged run costs as much CPU as a first one).
        emu.clear_faults()
        emu.clear_requests()
        code, out = fleet("--tenant", failing, "--tenant", "tenant-08")
        assert code == 0, out
        assert "up: 2 tenants: 1 created, 1 unchanged" in out
        assert {r["tenant"] for r in emu.requests() if r["method"] != "GET"} == {failing}

        # A change of the defaults, rolled out to two tenants: the report names the
        # field, read from the engine's events (which carry no diff keys for it).
        document["defaults"]["sender_name"] = "Reports"
        changed = tmp_path / "changed.yaml"
        changed.write_text(yaml.safe_dump(document))
        emu.clear_requests()
        code, out = fleet("--tenant", "tenant-03", "--tenant", "tenant-04", file=changed)
        assert code == 0, out
        assert row(out, "tenant-03")[:3] == [
            "tenant-03", "updated", "sender_name: (unset) → 'Reports'"
        ]
        assert {r["tenant"] for r in emu.requests() if r["method"] == "PUT"} == {
            "tenant-03", "tenant-04"
        }


def held_sender(emu: Emulator, tenant: str) -> Any:
    model = emu.backend.tenant(tenant)
    assert model is not None and model.config is not None
    return model.config.fields["emailAddress"]
