"""`make demo` end to end, as a user runs it: a subprocess, its output and exit code."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _demo(workdir: Path, *, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "qlik_email_resource.demo", "--workdir", str(workdir)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )


def _check_output(out: str) -> None:
    steps = re.findall(r"^==> (\d+)\. (.*)$", out, re.M)
    assert [n for n, _ in steps] == ["1", "2", "3", "4", "5", "6"], out
    assert "Start the Qlik emulator: tenants demo, acme" in out
    # policy review before the change, one line per tenant
    assert re.search(r"^    demo: would create; no policy violations$", out, re.M), out
    assert re.search(r"^    acme: would create; no policy violations$", out, re.M), out
    assert re.search(r"^    acme: the tenant now holds .* isValid=True$", out, re.M), out
    # both test mails reached the inbox (the demo reads the emulator's mailbox)
    assert "Test mail from Qlik tenant demo" in out
    assert "Test mail from Qlik tenant acme" in out
    assert re.search(r"see them at http://127\.0\.0\.1:\d+/mailbox", out)
    # drift found by refresh, repaired by up
    assert "refresh: the stack now records the drift (sender_name)" in out
    assert "the tenant holds sender_name = 'Demo reports' again" in out


def test_demo_runs_end_to_end_offline_and_again(tmp_path: Path) -> None:
    # No `pulumi` on PATH: the demo must say it uses the offline runner and still pass.
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    for _ in range(2):  # a second run in the same workdir starts fresh
        result = _demo(tmp_path / "demo", path=path)
        assert result.returncode == 0, result.stdout + result.stderr
        _check_output(result.stdout)
        assert "engine: offline runner (the Pulumi CLI is not on PATH)" in result.stdout
        assert "demo failed" not in result.stdout
    # working files stay under --workdir; the SMTP password is stored encrypted
    state = json.loads((tmp_path / "demo" / "offline-state" / "demo.json").read_text())
    (resource,) = state["resources"]
    assert set(resource["inputs"]["email_password"]) == {"secure"}


@pytest.mark.skipif(shutil.which("pulumi") is None, reason="needs the Pulumi CLI on PATH")
def test_demo_runs_end_to_end_with_the_pulumi_cli(tmp_path: Path) -> None:
    result = _demo(tmp_path / "demo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "engine: the Pulumi CLI" in result.stdout
    assert "Test mail from Qlik tenant demo" in result.stdout
    assert "the tenant holds sender_name = 'Demo reports' again" in result.stdout
