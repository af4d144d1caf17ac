"""Child processes that end with the process that started them, even on SIGKILL.

A killed owner runs no finalizer, so ``stop()`` and ``weakref.finalize`` cannot
help; the kernel can. On Linux each child first runs a few lines of Python that
ask for SIGKILL when its parent goes (``prctl(PR_SET_PDEATHSIG)``), then
``exec`` the real command: the request survives ``exec``, and the server runs
with exactly its own argv. (Not a ``preexec_fn``: a plain fork of a process
with gRPC threads runs gRPC's fork handlers, which broke the child in tests.)

The signal fires when the parent *thread* that forked the child exits, not the
process: the offline runner starts servers from the Pulumi SDK's worker
threads, which come and go, and a server forked there would die with its
thread in the middle of a run. So every child is forked by one thread of this
module that lives as long as the process.

Elsewhere (no prctl) children are started directly and end through ``stop()``,
finalizers and atexit, but not when the owner is killed.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, cast

SUPPORTED = sys.platform.startswith("linux")

# argv: parent pid, then the command to exec. -I -S: start fast, read no env or site.
_DIE_WITH_PARENT = """\
import ctypes, os, signal, sys
PR_SET_PDEATHSIG = 1
parent = int(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
if os.getppid() != parent:
    sys.exit("the process that started this server is gone")
os.execv(sys.argv[2], sys.argv[2:])
"""

_Job = tuple[list[str], dict[str, Any], "Future[subprocess.Popen[bytes]]"]


def start(argv: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen(argv, **popen_kwargs)`` for a child that dies with this process.

    ``argv[0]`` must be a path to the executable (``sys.executable``, say).
    """
    if not SUPPORTED:
        return cast("subprocess.Popen[bytes]", subprocess.Popen(list(argv), **popen_kwargs))
    wrapped = [sys.executable, "-I", "-S", "-c", _DIE_WITH_PARENT, str(os.getpid()), *argv]
    done: Future[subprocess.Popen[bytes]] = Future()
    _spawner().put((wrapped, popen_kwargs, done))
    return done.result()


_guard = threading.Lock()
_jobs: queue.SimpleQueue[_Job] | None = None
_owner_pid: int | None = None


def _spawner() -> queue.SimpleQueue[_Job]:
    """The queue of the spawning thread, started on first use (again after a fork)."""
    global _jobs, _owner_pid
    with _guard:
        if _jobs is None or _owner_pid != os.getpid():
            _jobs = queue.SimpleQueue()
            _owner_pid = os.getpid()
            threading.Thread(
                target=_serve, args=(_jobs,), name="qlik-server-spawner", daemon=True
            ).start()
        return _jobs


def _serve(jobs: queue.SimpleQueue[_Job]) -> None:
    while True:
        argv, kwargs, done = jobs.get()
        if not done.set_running_or_notify_cancel():
            continue
        try:
            child = cast("subprocess.Popen[bytes]", subprocess.Popen(argv, **kwargs))
        except BaseException as exc:  # handed to the caller, who raises it
            done.set_exception(exc)
        else:
            done.set_result(child)
