"""`python -m qlik_email_resource.demo`: options, and a failure as one line and exit 1."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from qlik_email_resource.demo.errors import DemoError
from qlik_email_resource.demo.story import run_demo
from qlik_email_resource.errors import QlikError
from qlik_email_resource.fleet.tenants import CredentialError, TenantsFileError


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qlik_email_resource.demo",
        description="Deploy the example email configuration to two emulated Qlik tenants.",
    )
    parser.add_argument("--workdir", default=".demo", help="working files (default .demo/)")
    parser.add_argument("--keep-running", action="store_true",
                        help="leave the emulator running at the end (Ctrl-C stops it)")
    parser.add_argument("--verbose", action="store_true",
                        help="show the full output of every Pulumi operation")
    args = parser.parse_args(argv)
    stream = out if out is not None else sys.stdout
    try:
        return run_demo(Path(args.workdir).resolve(), keep_running=args.keep_running,
                        verbose=args.verbose, out=stream)
    except (DemoError, TenantsFileError, CredentialError) as exc:
        stream.write(f"\ndemo failed: {exc}\n")
        return 1
    except QlikError as exc:
        stream.write(f"\ndemo failed: the emulated tenant answered with an error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        stream.write("\ndemo interrupted\n")
        return 130
