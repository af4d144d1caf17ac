"""``python -m qlik_email_resource.offline``: the offline runner from a shell.

Not the Pulumi CLI, and it says so on every run. Exit status: 0 done, 1 the run
failed, 2 a mandatory policy blocked it (or a preview found one).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from qlik_email_resource.offline import policy_config as policy_config_file
from qlik_email_resource.offline.results import (
    HEADER,
    OfflineRunError,
    PolicyViolationError,
    Secret,
)
from qlik_email_resource.offline.runner import OfflineStack


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text.split('=')[0]!r}")
    return key, value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m qlik_email_resource.offline",
        description=f"{HEADER}. Runs a Pulumi program's preview/up/refresh/destroy "
        "with a local JSON state file.",
    )
    p.add_argument("operation", choices=["preview", "up", "refresh", "destroy"])
    p.add_argument("--program", default=".", help="program directory (with __main__.py)")
    p.add_argument("--stack", required=True, help="stack name (reads Pulumi.<stack>.yaml)")
    p.add_argument("--state", required=True, help="state file (JSON; secrets encrypted)")
    p.add_argument("--project", help="project name (default: from Pulumi.yaml)")
    p.add_argument("--config", action="append", type=_pair, default=[], metavar="K=V")
    p.add_argument(
        "--secret", action="append", type=_pair, default=[], metavar="K=V",
        help="secret config value (prefer --secret-env: argv is visible to other users)",
    )
    p.add_argument(
        "--secret-env", action="append", type=_pair, default=[], metavar="K=ENVVAR",
        help="secret config value read from an environment variable",
    )
    p.add_argument("--policy-pack", action="append", default=[], metavar="DIR")
    p.add_argument(
        "--policy-config", metavar="FILE",
        help="JSON file read as the CLI reads --policy-pack-config: {policy: level} or "
        "{policy: {enforcementLevel?, setting: value}}, 'all' for every policy's level",
    )
    p.add_argument("--env", action="append", type=_pair, default=[], metavar="K=V",
                   help="extra environment for the provider process")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    config: dict[str, Any] = dict(args.config)
    config.update({k: Secret(v) for k, v in args.secret})
    for key, var in args.secret_env:
        if var not in os.environ:
            print(f"error: --secret-env {key}={var}: environment variable {var} is not set",
                  file=sys.stderr)
            return 1
        config[key] = Secret(os.environ[var])
    try:
        policy_config = (
            policy_config_file.load_file(args.policy_config) if args.policy_config else None
        )
        with OfflineStack(
            args.program, project=args.project, stack=args.stack, config=config,
            state_file=args.state, policy_packs=args.policy_pack, policy_config=policy_config,
            env=dict(args.env),
        ) as stack:
            result = getattr(stack, args.operation)()
    except PolicyViolationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OfflineRunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0 if result.ok else 2


if __name__ == "__main__":
    sys.exit(main())
