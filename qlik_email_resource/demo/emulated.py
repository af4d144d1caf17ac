"""The demo's emulated Qlik: start and stop it, its environment, its inbox."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qlik_email_resource.demo.console import Console
from qlik_email_resource.demo.errors import DemoError

if TYPE_CHECKING:
    from qlik_email_resource.emulator import Emulator


@contextmanager
def running_emulator(
    tenants: Sequence[str], work: Path, keep_running: bool, console: Console
) -> Iterator[Emulator]:
    """The emulator for the demo's body; with ``keep_running``, it waits for Ctrl-C after."""
    from qlik_email_resource.emulator import Emulator

    emu = Emulator(tenants=tuple(tenants), workdir=work / "emulator")
    emu.start()
    try:
        yield emu
        if keep_running:
            console.step("The emulator keeps running (--keep-running); stop it with Ctrl-C")
            console.info(f"inbox: {emu.mailbox_url}")
            console.info(f"API:   {emu.api_url}/t/<tenant>   admin: {emu.admin_url}")
            stop = threading.Event()
            # Ctrl-C, or SIGTERM from a process manager, ends the wait cleanly.
            previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
            finally:
                signal.signal(signal.SIGTERM, previous)
            console.info("stopping the emulator")
    finally:
        emu.stop()


def emulator_environ(emu: Emulator) -> dict[str, str]:
    """What examples/tenants.yaml reads from the environment, from the running emulator."""
    info = emu.info
    return {
        "QLIK_EMULATOR_API_URL": info["api_url"],
        "QLIK_EMULATOR_CA": info["ca_file"],
        "QLIK_EMULATOR_SMTP_PASSWORD": info["smtp"]["password"],
        **{f"QLIK_{name.upper()}_API_KEY": t["api_key"] for name, t in info["tenants"].items()},
    }


def wait_for_mail(emu: Emulator, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        mails: list[dict[str, Any]] = emu.mailbox()
        if len(mails) >= count:
            return mails
        if time.monotonic() > deadline:
            raise DemoError(f"expected {count} mails in the emulator's inbox, found {len(mails)}")
        time.sleep(0.1)
