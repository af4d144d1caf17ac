"""`make demo` end to end, as a user runs it: a subprocess, its output and exit code."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from qlik_email_resource.policy_pack.rules import TLS_REQUIRED
from tests.cli.clienv import find_cli, needs_cli

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
    assert [n for n, _ in steps] == ["1", "2", "3", "4", "5", "6", "7"], out
    assert "Start the Qlik emulator: tenants demo, acme" in out
    # policy review before the change, one line per tenant
    assert re.search(r"^    demo: would create; no policy violations$", out, re.M), out
    assert re.search(r"^    acme: would create; no policy violations$", out, re.M), out
    assert re.search(r"^    acme: the tenant now holds .* isValid=True$", out, re.M), out
    # the pack blocks a change to plain SMTP, and the tenant is not touched
    assert re.search(
        rf"^    demo: blocked by {TLS_REQUIRED} \(mandatory\).*nothing was sent", out, re.M
    ), out
    # both test mails reached the inbox (the demo reads the emulator's mailbox)
    assert "Test mail from Qlik tenant demo" in out
    assert "Test mail from Qlik tenant acme" in out
    assert re.search(r"see them at http://127\.0\.0\.1:\d+/mailbox", out)
    # drift found by refresh, repaired by up
    assert "refresh: the stack now records the drift (sender_name)" in out
    assert "the tenant holds sender_name = 'Demo reports' again" in out


def test_demo_runs_end_to_end_offline(tmp_path: Path) -> None:
    # No `pulumi` on PATH: the demo must say it uses the offline runner and still pass.
    result = _demo(tmp_path / "demo", path=f"{Path(sys.executable).parent}:/usr/bin:/bin")
    assert result.returncode == 0, result.stdout + result.stderr
    _check_output(result.stdout)
    assert "engine: offline runner (the Pulumi CLI is not on PATH)" in result.stdout
    assert "demo failed" not in result.stdout
    # working files stay under --workdir; the SMTP password is stored encrypted
    state = json.loads((tmp_path / "demo" / "offline-state" / "demo.json").read_text())
    (resource,) = state["resources"]
    assert set(resource["inputs"]["email_password"]) == {"secure"}
    # the inbox outlives the emulator as a page the user can open
    inbox = (tmp_path / "demo" / "inbox.html").read_text()
    assert "Test mail from Qlik tenant demo" in inbox
    assert "Test mail from Qlik tenant acme" in inbox


def test_demo_keep_running_serves_the_inbox_until_stopped(tmp_path: Path) -> None:
    # State of an earlier run (whose emulator is gone) must not get in the way.
    stale = tmp_path / "offline-state" / "demo.json"
    stale.parent.mkdir(parents=True)
    stale.write_text('{"stale": true}')
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "qlik_email_resource.demo", "--workdir", str(tmp_path),
         "--keep-running"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        for line in proc.stdout:
            lines.append(line)
            if "keeps running" in line:
                break
        inbox = next(line for line in proc.stdout if "inbox:" in line).split()[-1]
        # the mails are there for anyone to see, not only in the demo's own check
        mails = requests.get(inbox, timeout=10).json()
        assert sorted(m["subject"] for m in mails) == [
            "Test mail from Qlik tenant acme", "Test mail from Qlik tenant demo",
        ], "".join(lines)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, rest
    assert "stopping the emulator" in rest
    with pytest.raises(requests.ConnectionError):
        requests.get(inbox, timeout=5)


@needs_cli
def test_demo_runs_end_to_end_with_the_pulumi_cli(tmp_path: Path) -> None:
    # As `make demo` runs it once `make cli` has built the CLI: .tools/bin on PATH.
    cli = find_cli()
    assert cli is not None
    result = _demo(tmp_path / "demo", path=os.pathsep.join([str(Path(cli).parent),
                                                            os.environ["PATH"]]))
    assert result.returncode == 0, result.stdout + result.stderr
    # The same story as offline, told from the real engine's events and output.
    _check_output(result.stdout)
    assert re.search(r"^    engine: the Pulumi CLI v\d+\.\d+\.\d+, local backend file://",
                     result.stdout, re.M), result.stdout
    assert "offline runner" not in result.stdout
    # The CLI's own report is shown, e.g. its plan for the first preview.
    assert "Previewing update (demo)" in result.stdout
    # The stacks live in the demo's file backend, with no stack file in the clone.
    assert list((tmp_path / "demo" / "pulumi-state").rglob("demo.json"))
    assert not list(REPO.glob("Pulumi.demo*.yaml"))
