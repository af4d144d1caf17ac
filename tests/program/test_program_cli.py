"""The program under the real Pulumi CLI, on a local file backend.

The CLI cannot be installed on our CI machines (see docs in
/work/shared/engineless-testing.md §4), so these tests skip there; on a laptop
with `pulumi` on PATH they run the same lifecycle as the offline tests:
preview with the policy pack, up, no-op up, refresh after an out-of-band
change, destroy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from qlik_email_resource.emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]
PULUMI = shutil.which("pulumi")

pytestmark = pytest.mark.skipif(PULUMI is None, reason="the pulumi CLI is not on PATH")


class Cli:
    """`pulumi` in the repo's program dir; stack config in a temp file, never the repo's."""

    def __init__(self, tmp: Path, stack: str) -> None:
        self.stack = stack
        self.config_file = tmp / f"Pulumi.{stack}.yaml"
        (tmp / "state").mkdir()
        self.env = {
            **os.environ,
            "PULUMI_BACKEND_URL": (tmp / "state").as_uri(),
            "PULUMI_CONFIG_PASSPHRASE": "offline-tests-only",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
        }
        self.policy_config = tmp / "policy-config.json"
        self.policy_config.write_text(json.dumps({"email-tenant-url": {"allowLocalhost": True}}))

    def __call__(self, *args: str, stdin: str | None = None, ok: bool | None = True) -> str:
        """Run pulumi; ``ok``: expect success (True), failure (False) or either (None)."""
        argv = [str(PULUMI), *args, "--cwd", str(ROOT), "--non-interactive"]
        if args[:2] != ("stack", "init"):
            argv += ["--stack", self.stack]
        if args[0] in ("up", "preview", "refresh", "destroy", "config"):
            argv += ["--config-file", str(self.config_file)]
        done = subprocess.run(
            argv, env=self.env, input=stdin, capture_output=True, text=True, timeout=600
        )
        output = done.stdout + done.stderr
        if ok is not None:
            assert (done.returncode == 0) == ok, output
        return output

    def configure(self, values: dict[str, Any], secrets: dict[str, str]) -> None:
        for key, value in values.items():
            self("config", "set", key, str(value))
        for key, value in secrets.items():
            # from stdin: a secret on argv would show in `ps`
            self("config", "set", "--secret", key, stdin=value)

    def outputs(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self("stack", "output", "--json"))
        return result


@pytest.fixture
def cli(tmp_path: Path, qlik_emulator: Emulator) -> Any:
    cli = Cli(tmp_path, "cli-test")
    cli("stack", "init", "cli-test", "--secrets-provider", "passphrase")
    tenant, smtp = qlik_emulator.tenant("demo"), qlik_emulator.info["smtp"]
    cli.configure(
        {
            "qlik:tenantUrl": tenant.url,
            "qlik:caBundle": qlik_emulator.ca_file,
            "email:serverAddress": "email-smtp.eu-west-2.amazonaws.com",
            "email:serverPort": 2465,
            "email:securityType": "SSL/TLS",
            "email:username": smtp["username"],
            "email:emailAddress": "reports@example.com",
        },
        {"qlik:apiKey": tenant.api_key, "email:password": smtp["password"]},
    )
    yield cli
    cli("stack", "rm", "--yes", "--force", ok=None)


def writes(emu: Emulator) -> list[dict[str, Any]]:
    return [r for r in emu.requests() if r["method"] in ("PUT", "PATCH", "POST", "DELETE")]


def test_cli_preview_up_refresh_destroy(cli: Cli, qlik_emulator: Emulator) -> None:
    policy = ["--policy-pack", str(ROOT / "policies"),
              "--policy-pack-config", str(cli.policy_config)]
    preview = cli("preview", *policy)
    assert "TenantEmailConfig" in preview and writes(qlik_emulator) == []

    cli("up", "--yes", "--skip-preview", *policy)
    outputs = cli.outputs()
    assert outputs["is_valid"] is True and outputs["port"] == 2465
    assert outputs["tenant_id"] == qlik_emulator.tenant("demo").tenant_id

    qlik_emulator.clear_requests()
    cli("up", "--yes", "--skip-preview", "--expect-no-changes")
    assert writes(qlik_emulator) == []

    qlik_emulator.set_config("demo", {
        "serverAddress": "smtp.elsewhere.example.com", "serverPort": 2465,
        "securityType": "SSL/TLS", "emailAddress": "reports@example.com",
        "username": qlik_emulator.info["smtp"]["username"],
    })
    refreshed = cli("refresh", "--yes")
    assert "server_address" in refreshed or "serverAddress" in refreshed
    cli("up", "--yes", "--skip-preview")
    assert cli.outputs()["server"] == "email-smtp.eu-west-2.amazonaws.com"

    qlik_emulator.clear_requests()
    cli("destroy", "--yes")
    assert any(r["method"] == "DELETE" for r in writes(qlik_emulator))


def test_cli_policy_violation_blocks_up(cli: Cli, qlik_emulator: Emulator) -> None:
    cli.configure({"email:securityType": "none", "email:serverPort": 25}, {})
    output = cli(
        "up", "--yes", "--policy-pack", str(ROOT / "policies"),
        "--policy-pack-config", str(cli.policy_config), ok=False,
    )
    assert "email-tls-required" in output
    assert writes(qlik_emulator) == []
