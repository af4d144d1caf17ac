"""``python -m qlik_email_resource.offline``: the offline runner from a shell, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from qlik_email_resource.emulator import Emulator
from qlik_email_resource.offline import HEADER
from qlik_email_resource.policy_pack.rules import TENANT_URL, TLS_REQUIRED

ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qlik_email_resource.offline", *args],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=300,
    )


def test_cli_up_then_policy_blocked_preview(qlik_emulator: Emulator, tmp_path: Path) -> None:
    tenant, smtp = qlik_emulator.tenant("demo"), qlik_emulator.info["smtp"]
    policy_config = tmp_path / "policy.json"
    policy_config.write_text(json.dumps({TENANT_URL: {"allowLocalhost": True}}))
    env = {"QLIK_TEST_API_KEY": tenant.api_key, "QLIK_TEST_SMTP_PW": smtp["password"]}
    common = [
        "--program", str(ROOT), "--stack", "tenant-a", "--state", str(tmp_path / "s.json"),
        "--config", f"qlik:tenantUrl={tenant.url}",
        "--config", f"qlik:caBundle={qlik_emulator.ca_file}",
        "--config", f"email:username={smtp['username']}",
        "--config", "email:emailAddress=reports@example.com",
        "--secret-env", "qlik:apiKey=QLIK_TEST_API_KEY",
        "--secret-env", "email:password=QLIK_TEST_SMTP_PW",
        "--policy-pack", str(ROOT / "policies"), "--policy-config", str(policy_config),
    ]

    up = run(["up", *common], env)
    assert up.returncode == 0, up.stdout + up.stderr
    assert HEADER in up.stdout
    assert "create" in up.stdout and "is_valid: True" in up.stdout
    for secret in (tenant.api_key, smtp["password"]):
        assert secret not in up.stdout + up.stderr

    blocked = run(["preview", *common, "--config", "email:securityType=none",
                   "--config", "email:serverPort=25"], env)
    assert blocked.returncode == 2, blocked.stdout + blocked.stderr
    assert HEADER in blocked.stdout and TLS_REQUIRED in blocked.stdout

    # The file is read as `--policy-pack-config` is (analyzer/config.go,
    # parsePolicyPackConfig): a level alone is shorthand, `all` sets every level.
    policy_config.write_text(json.dumps(
        {"all": "advisory", TENANT_URL: {"allowLocalhost": True}}
    ))
    advised = run(["preview", *common, "--config", "email:securityType=none",
                   "--config", "email:serverPort=25"], env)
    assert advised.returncode == 0, advised.stdout + advised.stderr
    assert f"policy advisory {TLS_REQUIRED}" in advised.stdout


def test_cli_names_a_missing_secret_env(tmp_path: Path) -> None:
    done = run(["up", "--stack", "x", "--state", str(tmp_path / "s.json"),
                "--secret-env", "email:password=QLIK_NOT_SET_ANYWHERE"], {})
    assert done.returncode == 1
    assert "QLIK_NOT_SET_ANYWHERE is not set" in done.stderr


def test_cli_names_a_policy_config_file_that_is_not_json(tmp_path: Path) -> None:
    broken = tmp_path / "policy.json"
    broken.write_text("{'email-tls-required': 'advisory'}")
    done = run(["preview", "--stack", "x", "--state", str(tmp_path / "s.json"),
                "--policy-config", str(broken)], {})
    assert done.returncode == 1
    assert f"the policy config file {broken} is not valid JSON" in done.stderr
    assert "Traceback" not in done.stderr
