"""``qlik-emulator`` / ``python -m qlik_email_resource.emulator``: run the emulator.

Prints exactly one JSON line on stdout (URLs, credentials, SMTP ports, CA file), then
logs one line per request on stderr, and stops cleanly on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from types import FrameType

from .server import Emulator


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qlik-emulator",
        description="A local Qlik Cloud tenant emulator (email-config API) with a real "
                    "SMTP server. Prints one JSON line with URLs and credentials.",
    )
    p.add_argument("--tenant", action="append", dest="tenants", metavar="NAME",
                   help="a tenant to serve (repeatable; default: demo)")
    p.add_argument("--port", type=int, default=0,
                   help="API port (default 0: a free port); admin and SMTP take free ports")
    p.add_argument("--state", metavar="FILE",
                   help="keep tenants, credentials and configs in FILE across restarts")
    p.add_argument("--http", action="store_true",
                   help="serve the API over plain HTTP instead of HTTPS")
    p.add_argument("--no-rate-limits", action="store_true",
                   help="turn off Qlik's per-user rate limits (GET 1000/min, others 100/min)")
    p.add_argument("--smtp-delay", type=float, default=0.0, metavar="SECONDS",
                   help="sleep before each SMTP verification or send (realistic latency)")
    p.add_argument("--token-ttl", type=float, default=3600.0, metavar="SECONDS",
                   help="lifetime of OAuth access tokens (default 3600)")
    p.add_argument("--quiet", action="store_true", help="no request log on stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiosmtpd's own per-command log is noisy and not ours to format.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        emu = Emulator(
            tenants=args.tenants or ["demo"], port=args.port, state_file=args.state,
            rate_limits=not args.no_rate_limits, https=not args.http,
            smtp_delay=args.smtp_delay, token_ttl=args.token_ttl,
        )
        emu.start()
    except (OSError, ValueError) as exc:
        print(f"qlik-emulator: cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        sys.stdout.write(json.dumps(emu.info) + "\n")
        sys.stdout.flush()
        # Not mailbox_url: it carries the admin token, which belongs on stdout only.
        logging.getLogger("qlik_email_resource.emulator").info(
            "ready; inbox at %s/mailbox (admin_token from the JSON line); stop with Ctrl-C",
            emu.admin_url)
        while not stop.wait(0.5):
            pass
    finally:
        emu.stop()
    logging.getLogger("qlik_email_resource.emulator").info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
