"""The fleet through the Automation API and the real Pulumi CLI: the same gates as offline.

Skips with a one-line reason where no `pulumi` CLI exists (never a fake one).
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from qlik_email_resource.emulator import Emulator
from qlik_email_resource.fleet.cli import main
from qlik_email_resource.policy_pack.rules import TENANT_URL, TLS_REQUIRED

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".tools" / "bin"


def _find_cli() -> str | None:
    built = TOOLS / "pulumi"
    if built.is_file() and os.access(built, os.X_OK):
        return str(built)
    return shutil.which("pulumi")


CLI = _find_cli()
pytestmark = pytest.mark.skipif(CLI is None, reason="needs the Pulumi CLI (make cli, or on PATH)")


@dataclass
class CliFleet:
    emu: Emulator
    file: Path
    state: Path
    secrets: list[str]

    def run(self, *args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main([args[0], str(self.file), "--state-dir", str(self.state), *args[1:]],
                    stdout=out, stderr=err)
        for secret in self.secrets:
            assert secret not in out.getvalue() + err.getvalue()
        return code, out.getvalue(), err.getvalue()


@pytest.fixture
def cli_fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliFleet]:
    assert CLI is not None
    monkeypatch.setenv("PATH", f"{Path(CLI).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "test-only")
    monkeypatch.setenv("PULUMI_SKIP_UPDATE_CHECK", "true")
    monkeypatch.setenv("PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "true")
    monkeypatch.setenv("PULUMI_HOME", str(tmp_path / "pulumi-home"))
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    with Emulator(tenants=("north", "south"), workdir=tmp_path / "emu") as emu:
        info = emu.info
        monkeypatch.setenv("CLI_SMTP_PASSWORD", info["smtp"]["password"])
        tenants = {}
        for name in ("north", "south"):
            var = f"{name.upper()}_KEY"
            monkeypatch.setenv(var, info["tenants"][name]["api_key"])
            tenants[name] = {"url": info["tenants"][name]["url"], "api_key_env": var,
                             "ca_bundle": info["ca_file"]}
        tenants["south"]["email"] = {"security_type": "none", "server_port": 2587}
        document = {
            "defaults": {
                "server_address": "email-smtp.eu-west-2.amazonaws.com", "server_port": 2465,
                "security_type": "SSL/TLS", "username": info["smtp"]["username"],
                "email_password_env": "CLI_SMTP_PASSWORD", "email_address": "r@example.com",
                "verify_connection": True,
            },
            "tenants": tenants,
            "policy_config": {TENANT_URL: {"allowLocalhost": True}},
        }
        path = tmp_path / "tenants.yaml"
        path.write_text(yaml.safe_dump(document))
        secrets = [info["smtp"]["password"]] + [t["api_key"] for t in info["tenants"].values()]
        yield CliFleet(emu, path, tmp_path / "state", secrets)


def _row(out: str, tenant: str) -> list[str]:
    import re

    line = next(line for line in out.splitlines() if line.startswith(tenant + " "))
    return re.split(r"\s{2,}", line.strip())


def test_fleet_cli_backend_gate_drift_and_destroy(cli_fleet: CliFleet, tmp_path: Path) -> None:
    emu = cli_fleet.emu
    # the packaged pack is the default: a plain-SMTP tenant is blocked, in preview too
    code, out, err = cli_fleet.run("preview")
    assert code == 5, out + err
    assert "through the Pulumi Automation API" in err
    assert _row(out, "south")[:2] == ["south", "blocked"]
    assert f"{TLS_REQUIRED} (mandatory)" in _row(out, "south")[3]
    assert f"blocked by a mandatory policy, nothing was written: {TLS_REQUIRED}" in out
    assert _row(out, "north")[:2] == ["north", "would create"]
    assert [r for r in emu.requests() if r["method"] != "GET"] == []

    code, out, _ = cli_fleet.run("up", "--tenant", "north")
    assert code == 0, out
    assert _row(out, "north") == ["north", "created", "(new)", "-", "valid", "-"]

    # an outside change: seen by the refresh, shown as old -> new, failing a drift check
    smtp = emu.info["smtp"]
    emu.set_config("north", {
        "serverAddress": "email-smtp.eu-west-2.amazonaws.com", "serverPort": 2465,
        "securityType": "SSL/TLS", "username": smtp["username"], "emailAddress": "r@example.com",
        "emailPassword": smtp["password"], "senderName": "Console",
    })
    emu.clear_requests()
    report = tmp_path / "drift.json"
    code, out, _ = cli_fleet.run("preview", "--tenant", "north", "--expect-no-changes",
                                 "--json", str(report))
    assert code == 7, out
    assert _row(out, "north")[:3] == ["north", "would update", "sender_name: 'Console' → (unset)"]
    assert [r for r in emu.requests() if r["method"] != "GET"] == []
    tenant = json.loads(report.read_text())["tenants"][0]
    assert tenant["drift"] == [
        {"field": "sender_name", "old": None, "new": "Console", "secret": False}
    ]
    assert tenant["unexpected_changes"] is True

    code, out, _ = cli_fleet.run("up", "--tenant", "north")
    assert code == 0, out
    assert _row(out, "north")[:3] == ["north", "updated", "sender_name: 'Console' → (unset)"]
    code, out, _ = cli_fleet.run("refresh", "--tenant", "north", "--expect-no-changes")
    assert code == 0, out
    assert _row(out, "north")[:2] == ["north", "unchanged"]

    emu.clear_requests()
    code, out, err = cli_fleet.run("destroy")  # two tenants, no terminal, no --yes
    assert code == 2 and "pass --yes" in err
    assert emu.requests() == []
    code, out, _ = cli_fleet.run("destroy", "--yes")
    assert code == 0, out
    assert _row(out, "north")[:2] == ["north", "deleted"]
    assert _row(out, "south")[:2] == ["south", "not deployed"]
    assert [r["tenant"] for r in emu.requests() if r["method"] == "DELETE"] == ["north"]


def test_fleet_cli_backend_puts_no_secret_on_a_command_line(
    cli_fleet: CliFleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every argv the fleet gives the CLI is recorded: no API key or password in any.

    `Stack.set_all_config` would pass `--secret qlik:apiKey=<key>` on the command line,
    where `ps` shows it to every user of the machine. The recorder is a wrapper that
    logs its arguments and then runs the real CLI, so the engine's answers are real.
    """
    assert CLI is not None
    wrapper_dir = tmp_path / "recording-bin"
    wrapper_dir.mkdir()
    log = tmp_path / "argv.log"
    wrapper = wrapper_dir / "pulumi"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" >> "{log}"\n'
        f'exec "{CLI}" "$@"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper_dir}{os.pathsep}{os.environ['PATH']}")

    code, out, err = cli_fleet.run("up", "--no-refresh")
    assert code == 5, out + err  # the fixture's south tenant is blocked by policy
    assert _row(out, "north")[1] == "created"
    calls = log.read_text()
    for secret in cli_fleet.secrets:
        assert secret not in calls
    assert "config set --secret" in calls  # the secrets did go through the CLI
    # and they reached the engine: the stack works with them
    assert cli_fleet.emu.requests()
