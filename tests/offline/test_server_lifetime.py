"""Nothing left behind: servers die with their owner, logs go away unless kept.

Real processes: an owner process starts the real provider host and the real
analyzer (from its main thread, from a thread that has exited since, and from
the Pulumi SDK's worker thread during an OfflineStack run), then is killed with
SIGKILL, which runs no finalizer of its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qlik_email_resource.offline.grpc_servers import (
    KEEP_LOGS_ENV,
    AnalyzerServer,
    ProviderServer,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

OWNER = """\
import json, sys, threading, time
from tests.offline.toy_provider import toy_program
from qlik_email_resource.offline import OfflineStack, Secret
from qlik_email_resource.offline.grpc_servers import AnalyzerServer, ProviderServer

servers = []
spawner = threading.Thread(target=lambda: servers.append(ProviderServer()))
spawner.start()
spawner.join()  # the thread that started this server is gone
servers.append(AnalyzerServer(sys.argv[1] + "/tests/offline/toy_policy"))
stack = OfflineStack(toy_program, project="toy", stack="dev", quiet=True,
                     config={"toy:password": Secret("pw")},
                     env={"TOY_STORE": sys.argv[2], "PYTHONPATH": sys.argv[1]},
                     policy_packs=[sys.argv[1] + "/tests/offline/toy_policy"])
assert stack.up().ok
servers += stack._servers  # started by the SDK's worker threads
print(json.dumps([s.proc.pid for s in servers]), flush=True)
time.sleep(300)
"""


def _server_running(pid: int) -> bool:
    """True while ``pid`` is one of our servers (a zombie or a reused pid is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X") and (b"pulumi.dynamic" in cmdline or b"toy_policy" in cmdline)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_servers_end_when_their_owner_is_killed(tmp_path: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(REPO), str(tmp_path / "store.json")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    pids: list[int] = []
    try:
        assert owner.stdout is not None
        line = owner.stdout.readline()
        assert line, owner.communicate(timeout=30)[1][-3000:]
        pids = json.loads(line)
        assert len(pids) == 4  # provider (other thread), analyzer, and the stack's two
        time.sleep(0.5)
        assert all(_server_running(pid) for pid in pids), "a server died with its spawning thread"

        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=30)
        deadline = time.monotonic() + 5
        while any(_server_running(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = [pid for pid in pids if _server_running(pid)]
        assert not survivors, f"servers outlived their killed owner: {survivors}"
    finally:
        if owner.poll() is None:
            owner.kill()
        owner.communicate()
        for pid in pids:  # never leave a server behind, even when the test fails
            if _server_running(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.delenv(KEEP_LOGS_ENV, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    yield tmp_path


def _logs(directory: Path) -> list[Path]:
    return sorted(directory.glob("qlik-grpc-*"))


def test_server_logs_are_removed_when_the_server_stops(temp_dir: Path) -> None:
    provider = ProviderServer()
    analyzer = AnalyzerServer(HERE / "toy_policy", env={"PYTHONWARNINGS": "always"})
    analyzer.configure()
    provider.stop()
    analyzer.stop()
    assert _logs(temp_dir) == []
    assert isinstance(analyzer.stderr(), str)  # what it logged is still readable in memory


def test_server_logs_are_kept_when_asked(temp_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kept_by_parameter = ProviderServer(keep_log=True)
    monkeypatch.setenv(KEEP_LOGS_ENV, "1")
    kept_by_env = ProviderServer()
    for server in (kept_by_parameter, kept_by_env):
        server.stop()
        assert server.stderr_path is not None
        assert Path(server.stderr_path).exists()
    assert len(_logs(temp_dir)) == 2


def test_a_server_started_from_a_short_lived_thread_outlives_that_thread() -> None:
    servers: list[ProviderServer] = []
    thread = threading.Thread(target=lambda: servers.append(ProviderServer()))
    thread.start()
    thread.join()
    try:
        time.sleep(0.5)
        assert servers[0].proc.poll() is None
        assert servers[0].plugin_info() is not None
    finally:
        servers[0].stop()
