"""The offline state is locked, written atomically, and never overwritten when it is not ours.

Real processes throughout: the lock holder is a real ``python -m
qlik_email_resource.offline up`` (or a real fleet backend) in a process of its
own, killed with SIGKILL where the test needs a dead holder; the first-save
race runs two real processes against the same fresh state file.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pulumi
import pytest
import yaml
from cryptography.fernet import Fernet

from qlik_email_resource.offline import OfflineRunError, OfflineStack
from qlik_email_resource.offline.state import ResourceState, StackState, StateFile
from qlik_email_resource.secret_wire import wrap as wrap_secret

REPO = Path(__file__).resolve().parents[2]
PROJECT, STACK = "locktest", "dev"
SECRET = "lock-canary-5d1e0c"
ARGV_SECRET = "argv-canary-93be41"  # a --secret on the holder's command line

# A program that holds its run open until the test drops a file named `release`.
BLOCKING_PROGRAM = """\
import os, time
from pathlib import Path
import pulumi

signals = Path(os.environ["LOCK_TEST_DIR"])
(signals / "started").touch()
deadline = time.monotonic() + 60
while not (signals / "release").exists() and time.monotonic() < deadline:
    time.sleep(0.05)
pulumi.export("who", "first")
"""


def second_program() -> None:
    pulumi.export("who", "second")
    pulumi.export("token", pulumi.Output.secret(SECRET))


def second_stack(state: Path) -> OfflineStack:
    return OfflineStack(second_program, project=PROJECT, stack=STACK, state_file=state,
                        quiet=True)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[Callable[[Path], subprocess.Popen[str]]]:
    """Start ``python -m qlik_email_resource.offline up`` blocked inside its program."""
    started: list[subprocess.Popen[str]] = []
    program = tmp_path / "blocking"
    program.mkdir()
    (program / "__main__.py").write_text(BLOCKING_PROGRAM)

    def start(state: Path) -> subprocess.Popen[str]:
        signals = tmp_path / "signals"
        signals.mkdir(exist_ok=True)
        proc = subprocess.Popen(
            [sys.executable, "-m", "qlik_email_resource.offline", "up", "--program",
             str(program), "--stack", STACK, "--project", PROJECT, "--state", str(state),
             "--secret", f"lock:token={ARGV_SECRET}"],
            cwd=REPO, env={**os.environ, "LOCK_TEST_DIR": str(signals)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        started.append(proc)
        deadline = time.monotonic() + 60
        while not (signals / "started").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the holder never reached its program"
            time.sleep(0.05)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_second_stack_fails_fast_naming_the_holder_and_writes_nothing(
    tmp_path: Path, holder: Callable[[Path], subprocess.Popen[str]]
) -> None:
    state = tmp_path / "state.json"
    first = holder(state)

    began = time.monotonic()
    with pytest.raises(OfflineRunError) as caught:
        second_stack(state).up()
    assert time.monotonic() - began < 10, "the second run waited instead of failing fast"
    message = str(caught.value)
    assert f"pid {first.pid}" in message
    assert socket.gethostname() in message
    assert "qlik_email_resource.offline up" in message
    assert "since" in message
    assert str(state) in message
    assert ARGV_SECRET not in message
    assert ARGV_SECRET not in (tmp_path / "state.json.lock").read_text()
    assert not state.exists(), "the refused run wrote the state file"

    (tmp_path / "signals" / "release").touch()
    _out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert StateFile(state).load(PROJECT, STACK).outputs == {"who": "first"}


def test_a_killed_holder_does_not_block_the_next_run(
    tmp_path: Path, holder: Callable[[Path], subprocess.Popen[str]]
) -> None:
    state = tmp_path / "state.json"
    first = holder(state)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)

    result = second_stack(state).up()
    assert result.ok
    assert StateFile(state).load(PROJECT, STACK).outputs["who"] == "second"


def test_refresh_and_destroy_are_locked_too(
    tmp_path: Path, holder: Callable[[Path], subprocess.Popen[str]]
) -> None:
    state = tmp_path / "state.json"
    second_stack(state).up()
    before = state.read_bytes()
    first = holder(state)
    for operation in ("refresh", "destroy", "up"):
        with pytest.raises(OfflineRunError, match=f"pid {first.pid}"):
            getattr(second_stack(state), operation)()
    assert state.read_bytes() == before


# -- two processes saving a fresh state file at the same instant ----------------------

RACE_WORKER = """\
import json, sys, time
from qlik_email_resource.offline import OfflineRunError
from qlik_email_resource.offline.state import ResourceState, StateFile
from qlik_email_resource.secret_wire import wrap as wrap_secret

me, root, trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
print("ready", flush=True)
start = float(sys.stdin.readline())
outcomes = []
for trial in range(trials):
    slot = start + trial * 0.15
    while time.time() < slot:
        pass
    state_file = StateFile(f"{root}/{trial}/state.json")
    try:
        state = state_file.load("race", "dev")
        state.resources.append(ResourceState(
            urn=f"urn:{me}", type="t", name=me, custom=True, dynamic=False,
            outputs={"password": wrap_secret(f"pw-{me}")}))
        state_file.save(state, tool="race")
        outcomes.append("saved")
    except OfflineRunError as exc:
        outcomes.append("refused: " + str(exc))
    except Exception as exc:
        outcomes.append(f"{type(exc).__name__}: {exc}")
print(json.dumps(outcomes), flush=True)
"""


def test_two_processes_first_save_on_a_fresh_directory(tmp_path: Path) -> None:
    trials = 30
    script = tmp_path / "race_worker.py"
    script.write_text(RACE_WORKER)
    workers = {
        name: subprocess.Popen(
            [sys.executable, str(script), name, str(tmp_path / "runs"), str(trials)],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        for name in ("a", "b")
    }
    try:
        for proc in workers.values():
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        start = time.time() + 0.5
        for proc in workers.values():
            assert proc.stdin is not None
            proc.stdin.write(f"{start}\n")
            proc.stdin.flush()
        outcomes = {
            name: json.loads(proc.communicate(timeout=120)[0]) for name, proc in workers.items()
        }
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

    for trial in range(trials):
        got = {name: outcomes[name][trial] for name in workers}
        for outcome in got.values():
            assert outcome == "saved" or outcome.startswith("refused: "), (trial, got)
        saved = sorted(name for name, outcome in got.items() if outcome == "saved")
        assert saved, (trial, got)
        # No update lost: every writer that was told "saved" is in the final state,
        # and the key beside it decrypts it.
        final = StateFile(tmp_path / "runs" / str(trial) / "state.json").load("race", "dev")
        names = {r.name for r in final.resources}
        assert set(saved) <= names, (trial, got, names)
        for resource in final.resources:
            assert resource.outputs == {"password": wrap_secret(f"pw-{resource.name}")}


# -- state that is not ours, not this stack's, or not readable with this key ---------


def _damaged_cases(tmp_path: Path) -> dict[str, Path]:
    cases = {
        "not json": "{\"version\": 1, \"project\": ",
        "a JSON list": "[1, 2, 3]",
        "a Pulumi checkpoint": json.dumps({"version": 3, "deployment": {"resources": []}}),
        "some other JSON": json.dumps({"hello": "world"}),
        "ours, damaged": json.dumps({"version": 1, "project": PROJECT, "stack": STACK,
                                     "encryption": None, "resources": [{"urn": 7}],
                                     "outputs": {}}),
    }
    paths = {}
    for index, (label, text) in enumerate(cases.items()):
        path = tmp_path / f"case{index}.json"
        path.write_text(text)
        paths[label] = path
    return paths


@pytest.mark.parametrize("operation", ["up", "refresh", "destroy", "preview"])
def test_foreign_or_damaged_state_is_a_clear_error_and_never_overwritten(
    tmp_path: Path, operation: str
) -> None:
    for label, path in _damaged_cases(tmp_path).items():
        before = path.read_bytes()
        with pytest.raises(OfflineRunError) as caught:
            getattr(second_stack(path), operation)()
        message = str(caught.value)
        assert str(path) in message, (label, message)
        assert "delete" in message or "restore" in message or "another" in message, (
            label, message)
        assert path.read_bytes() == before, label
        assert not list(tmp_path.glob("*.key")), f"{label}: a key file was created"


def test_state_of_another_stack_is_refused_and_kept(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    OfflineStack(second_program, project="other", stack=STACK, state_file=state,
                 quiet=True).up()
    before = state.read_bytes()
    with pytest.raises(OfflineRunError, match="belongs to other/dev"):
        second_stack(state).up()
    assert state.read_bytes() == before


def test_a_key_that_does_not_decrypt_the_state_is_refused_and_nothing_is_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QLIK_OFFLINE_PASSPHRASE", raising=False)
    state = tmp_path / "state.json"
    second_stack(state).up()
    key_file = tmp_path / "state.json.key"
    key_file.write_bytes(Fernet.generate_key())  # someone else's key
    before, key_before = state.read_bytes(), key_file.read_bytes()
    for operation in ("up", "refresh", "destroy"):
        with pytest.raises(OfflineRunError) as caught:
            getattr(second_stack(state), operation)()
        message = str(caught.value)
        assert str(key_file) in message and "restore" in message, message
        assert SECRET not in message
    assert state.read_bytes() == before
    assert key_file.read_bytes() == key_before


def test_a_save_over_a_state_changed_since_load_is_refused_and_both_are_kept(
    tmp_path: Path,
) -> None:
    """A writer that bypassed the lock (or deleted it) cannot make this run lose state."""
    state = tmp_path / "state.json"
    mine, theirs = StateFile(state), StateFile(state)
    loaded = mine.load(PROJECT, STACK)
    other = theirs.load(PROJECT, STACK)
    other.outputs = {"who": "theirs"}
    theirs.save(other, tool="test")
    written = state.read_bytes()

    loaded.resources.append(ResourceState(urn="urn:mine", type="t", name="mine", custom=True,
                                          dynamic=False, outputs={"pw": wrap_secret("x")}))
    with pytest.raises(OfflineRunError) as caught:
        mine.save(loaded, tool="test")
    assert state.read_bytes() == written
    message = str(caught.value)
    assert "changed since" in message and str(state) in message
    kept = next(p for p in tmp_path.iterdir() if ".conflict" in p.name and p.suffix == ".json")
    assert str(kept) in message
    assert [r.name for r in StateFile(kept).load(PROJECT, STACK).resources] == ["mine"]


def test_a_failed_save_leaves_the_previous_state_and_no_temp_file(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state_file = StateFile(state)
    state_file.save(StackState(PROJECT, STACK, outputs={"n": 1}), tool="test")
    before = state.read_bytes()
    broken = StackState(PROJECT, STACK, outputs={"n": object()})  # not JSON
    with pytest.raises(TypeError):
        state_file.save(broken, tool="test")
    assert state.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "state.json", "state.json.key", "state.json.lock"]


# -- two fleet runs on one state directory ---------------------------------------------

FLEET_HOLDER = """\
import sys, time
from pathlib import Path
from qlik_email_resource.fleet.offline import OfflineBackend
from qlik_email_resource.fleet.tenants import load

backend = OfflineBackend(load(sys.argv[1]), policy_packs=[], state_dir=Path(sys.argv[2]))
print("ready", flush=True)
time.sleep(120)
"""


def test_a_second_fleet_run_on_the_same_state_dir_cannot_start(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text(yaml.safe_dump({
        "defaults": {"server_address": "smtp.example.com", "server_port": 465,
                     "security_type": "SSL/TLS", "username": "u",
                     "email_address": "a@example.com"},
        "tenants": {"t1": {"url": "https://127.0.0.1:9/t/t1",
                           "api_key_env": "LOCK_TEST_UNSET_KEY"}},
    }))
    from qlik_email_resource.fleet.cli import main as fleet_main

    state_dir = tmp_path / "state"
    first = subprocess.Popen([sys.executable, "-c", FLEET_HOLDER, str(tenants), str(state_dir)],
                             cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "ready"
        out, err = io.StringIO(), io.StringIO()
        code = fleet_main(["up", str(tenants), "--offline", "--state-dir", str(state_dir)],
                          stdout=out, stderr=err)
        assert code == 2, (out.getvalue(), err.getvalue())
        assert f"pid {first.pid}" in err.getvalue()
        assert "--state-dir" in err.getvalue()
    finally:
        first.kill()
        first.communicate()
