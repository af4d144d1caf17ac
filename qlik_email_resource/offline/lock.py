"""One run at a time per state: an OS lock on a file, and who holds it.

``fcntl.flock`` on ``<state>.lock``: the kernel releases it when its holder's
last descriptor closes, so a holder killed with SIGKILL never leaves a stale
lock, and no pid-file guess is needed. The holder writes its pid, host, command
and start time into the file only so that a refused run can name it.

The lock file is never deleted: a run that unlinked it could let a third run
lock a new file while a second still holds the old one. It stays, empty, between
runs. The descriptor is not inherited (Python opens files non-inheritable), so
servers a run starts cannot keep its lock alive.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qlik_email_resource.offline.results import OfflineRunError

# A refused run may look between the holder's flock and its note: wait this long for it.
_NOTE_WAIT = 0.5
_COMMAND_MAX = 200


@dataclass(frozen=True)
class LockHolder:
    """What a lock holder wrote about itself (for the refusal message only)."""

    pid: int
    host: str
    command: str
    since: float  # time.time() when it took the lock

    def describe(self, now: float | None = None) -> str:
        at = datetime.fromtimestamp(self.since, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        age = max(0, round((now if now is not None else time.time()) - self.since))
        return f"pid {self.pid} on {self.host} ({self.command}), since {at} ({age} s ago)"

    @classmethod
    def me(cls) -> LockHolder:
        return cls(os.getpid(), socket.gethostname(), current_command(), time.time())


class StateLockedError(OfflineRunError):
    """Another run holds the lock; the message names it and what to do."""

    def __init__(self, subject: str, holder: LockHolder | None, advice: str) -> None:
        who = holder.describe() if holder else "another process (it has not said which yet)"
        super().__init__(f"{subject} is in use by {who}; {advice}")
        self.holder = holder


class FileLock:
    """An exclusive, non-blocking ``flock`` on ``path``; fails fast naming the holder."""

    def __init__(self, path: str | os.PathLike[str], *, subject: str, advice: str) -> None:
        self.path = Path(path)
        self.subject = subject
        self.advice = advice
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already locked by this object")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise StateLockedError(self.subject, read_holder(self.path), self.advice) from None
            except OSError as exc:
                os.close(fd)
                raise OfflineRunError(
                    f"cannot lock {self.path} ({exc.strerror}); put the state on a local "
                    "file system that supports flock"
                ) from None
            if self._same_file(fd):
                break
            # Someone deleted or replaced the lock file between our open and flock:
            # our lock is on an orphan inode that nobody else will ever see. Retry.
            os.close(fd)
        self._fd = fd
        note = json.dumps(vars(LockHolder.me())).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, note, 0)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # the note describes a holder; there is none now
        os.close(fd)  # closing the last descriptor releases the flock

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise OfflineRunError(
                f"cannot open the lock file {self.path} ({exc.strerror}); "
                "check that this user may write in that directory"
            ) from None

    def _same_file(self, fd: int) -> bool:
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def read_holder(path: Path) -> LockHolder | None:
    """The holder's note, or None if it is unreadable (not written yet, or damaged)."""
    deadline = time.monotonic() + _NOTE_WAIT
    while True:
        holder = _parse_note(path)
        if holder is not None or time.monotonic() >= deadline:
            return holder
        time.sleep(0.02)


def _parse_note(path: Path) -> LockHolder | None:
    try:
        note: Any = json.loads(path.read_bytes() or b"null")
        return LockHolder(
            pid=int(note["pid"]), host=str(note["host"]), command=str(note["command"]),
            since=float(note["since"]),
        )
    except (OSError, ValueError, TypeError, KeyError):
        return None


def current_command() -> str:
    """This process's command line, short, with every ``KEY=VALUE`` value masked.

    ``--secret k=v`` and ``--config k=v`` reach argv; the note and the message
    that quotes it must not carry them. A ``-c`` program is left out entirely.
    """
    try:
        argv = Path("/proc/self/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:  # not Linux
        argv = []
    if not argv:
        argv = [sys.executable, *sys.argv]
    shown = [os.path.basename(argv[0])]
    after_c = False
    for arg in argv[1:]:
        if after_c:
            shown.append("<code>")
            after_c = False
            continue
        after_c = arg == "-c"
        key, sep, _value = arg.partition("=")
        shown.append(f"{key}=***" if sep else arg)
    text = " ".join(shown)
    return text if len(text) <= _COMMAND_MAX else text[: _COMMAND_MAX - 3] + "..."
