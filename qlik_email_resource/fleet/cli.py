"""`qlik-email-fleet`: one stack per tenant, many at once; and the fleet's audit.

    qlik-email-fleet {preview,up,refresh,destroy} tenants.yaml [options]
    qlik-email-fleet audit tenants.yaml [--verify] [--json FILE] [--html FILE]
    qlik-email-fleet policy-pack          # prints where the packaged policy pack is

Exit codes (docs/fleet.md): the first that applies of 2 (cannot start), 1 (a tenant
failed), 5 (a mandatory policy blocked a tenant or an audit found a violation; the
Pulumi CLI's code for a policy violation), 7 (--expect-no-changes and a tenant had
changes; the Pulumi CLI's code for that), else 0.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TextIO

from qlik_email_resource.fleet import packs
from qlik_email_resource.fleet.changes import RunOptions
from qlik_email_resource.fleet.hints import in_tenants_file_terms
from qlik_email_resource.fleet.report import (
    BLOCKED,
    FAILED,
    Progress,
    TenantResult,
    render_table,
    write_json,
)
from qlik_email_resource.fleet.tenants import (
    CredentialError,
    Tenant,
    TenantsFile,
    TenantsFileError,
    load,
)
from qlik_email_resource.redaction import redact

EXIT_OK, EXIT_TENANT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_POLICY, EXIT_CHANGES = 5, 7
DEFAULT_STATE_DIR = ".fleet-state"
STACK_OPERATIONS = ("preview", "up", "refresh", "destroy")
# Operations that run the policy packs (the engine runs none on refresh or destroy).
WITH_POLICIES = ("preview", "up", "audit")


class Backend(Protocol):
    max_parallel: int | None  # a ceiling the backend imposes on --parallel, if any

    def describe(self) -> str: ...

    def run(self, resolved: Any, operation: str, options: RunOptions) -> TenantResult: ...

    def close(self) -> None: ...


def run_tenant(
    backend: Backend, tenant: Tenant, operation: str, options: RunOptions | None = None
) -> TenantResult:
    """One tenant, never raising: whatever goes wrong becomes this tenant's row."""
    started = time.monotonic()
    try:
        resolved = tenant.resolve()
    except CredentialError as exc:
        return TenantResult(tenant=tenant.name, result=FAILED, error=str(exc))
    try:
        return backend.run(resolved, operation, options or RunOptions())
    except Exception as exc:
        message = redact(f"{type(exc).__name__}: {exc}".splitlines()[0], resolved.secret_values())
        return TenantResult(
            tenant=tenant.name,
            result=FAILED,
            error=in_tenants_file_terms(message, tenant),
            seconds=time.monotonic() - started,
        )


def run_fleet(
    backend: Backend,
    tenants: Sequence[Tenant],
    operation: str,
    *,
    parallel: int,
    progress: Progress,
    options: RunOptions | None = None,
) -> list[TenantResult]:
    """Run every tenant with at most ``parallel`` at a time; results in file order."""

    def one(tenant: Tenant) -> TenantResult:
        progress.start(tenant.name)
        # A fresh context per stack: Pulumi keeps its runtime state (settings,
        # root resource, config) in context variables, and a pool thread would
        # otherwise carry one tenant's state into the next.
        result = contextvars.Context().run(run_tenant, backend, tenant, operation, options)
        progress.finish(result)
        return result

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        results = list(pool.map(one, tenants))
    progress.close()
    return results


def exit_code(results: Sequence[TenantResult]) -> int:
    if any(r.result == FAILED for r in results):
        return EXIT_TENANT_FAILED
    if any(r.result == BLOCKED for r in results):
        return EXIT_POLICY
    if any(r.unexpected_changes for r in results):
        return EXIT_CHANGES
    return EXIT_OK


class _Usage(Exception):
    pass


def make_backend(
    args: argparse.Namespace, fleet: TenantsFile, setup: packs.PolicySetup
) -> Backend:
    from qlik_email_resource.fleet.automation import AutomationBackend

    state_dir = Path(args.state_dir)
    if args.offline:
        from qlik_email_resource.fleet.offline import OfflineBackend

        return OfflineBackend(
            fleet, policy_packs=setup.packs, state_dir=state_dir,
            policy_config=setup.config, analyzers=setup.analyzers,
        )
    _require_cli()
    setup.stop()  # the CLI starts its own copy of each pack
    return AutomationBackend(
        fleet, policy_packs=setup.packs, state_dir=state_dir, policy_config=setup.config
    )


def _require_cli() -> None:
    from qlik_email_resource.fleet.automation import cli_available

    if not cli_available():
        raise _Usage(
            "the Pulumi CLI is not on PATH: install it (https://www.pulumi.com/docs/install/) "
            "or pass --offline to run through the offline test runner"
        )


@contextlib.contextmanager
def _quiet_asyncio() -> Iterator[None]:
    # A failed tenant leaves Pulumi futures whose exception asyncio reports as
    # "never retrieved", with a traceback: the table already says what failed.
    logger = logging.getLogger("asyncio")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _common(p: argparse.ArgumentParser, *, parallel: int) -> None:
    p.add_argument("tenants_file", help="the tenants YAML file")
    p.add_argument(
        "--parallel", type=int, default=parallel, metavar="N",
        help=f"tenants processed at the same time (default {parallel})",
    )
    p.add_argument(
        "--tenant", action="append", default=[], metavar="NAME",
        help="only this tenant (repeatable)",
    )
    p.add_argument(
        "--json", metavar="FILE", dest="json_file",
        help="also write the whole report as JSON (for CI)",
    )


def _packs_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--policy-pack", action="append", default=[], metavar="DIR",
        help="run this policy pack (repeatable; default: the packaged qlik-email pack)",
    )
    p.add_argument(
        "--no-policy-pack", action="store_true",
        help="run no policy pack at all",
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qlik-email-fleet",
        description="Roll the email configuration out to many Qlik tenants, one Pulumi "
        "stack per tenant; audit what the tenants hold.",
        epilog="Exit codes: 0 ok; 1 a tenant failed; 2 cannot start; 5 a mandatory policy "
        "blocked a tenant (audit: a tenant violates one); 7 --expect-no-changes and a "
        "tenant had changes.",
    )
    sub = p.add_subparsers(dest="operation", required=True, metavar="COMMAND")
    helps = {
        "preview": "show what would change on every tenant (refreshes first)",
        "up": "apply the tenants file to every tenant (refreshes first)",
        "refresh": "read every tenant and record what it holds (drift) in state",
        "destroy": "delete the email configuration of every tenant in the file",
    }
    for name in STACK_OPERATIONS:
        op = sub.add_parser(name, help=helps[name], description=helps[name])
        _common(op, parallel=4)
        op.add_argument(
            "--offline", action="store_true",
            help="use the offline test runner instead of the Pulumi CLI",
        )
        op.add_argument(
            "--state-dir", default=DEFAULT_STATE_DIR, metavar="DIR",
            help="offline state files; with the CLI, the local file backend unless "
            f"PULUMI_BACKEND_URL is set (default {DEFAULT_STATE_DIR})",
        )
        if name in ("preview", "up"):
            _packs_options(op)
            op.add_argument(
                "--no-refresh", dest="refresh", action="store_false",
                help="do not read each tenant first (faster; drift goes unseen)",
            )
        if name != "destroy":
            op.add_argument(
                "--expect-no-changes", action="store_true",
                help="fail (exit 7) if any tenant has or would have a change: a drift check",
            )
        else:
            op.add_argument(
                "--yes", action="store_true",
                help="destroy without asking (needed for more than one tenant off a terminal)",
            )
    audit = sub.add_parser(
        "audit", help="compliance report of what every tenant holds (read-only)",
        description="GET every tenant's email configuration (and with --verify, let the "
        "tenant test its SMTP connection), run the policy pack's rules on it and report. "
        "Needs no Pulumi state and no Pulumi CLI.",
    )
    _common(audit, parallel=32)
    _packs_options(audit)
    audit.add_argument(
        "--verify", action="store_true",
        help="also ask each tenant to verify its SMTP connection (one POST per tenant)",
    )
    audit.add_argument("--html", metavar="FILE", help="write a self-contained HTML report")
    sub.add_parser("policy-pack", help="print the directory of the packaged policy pack")
    return p


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    stdin: TextIO | None = None,
    backend_factory: Callable[..., Backend] | None = None,
) -> int:
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    args = parser().parse_args(argv)
    if args.operation == "policy-pack":
        out.write(f"{packs.packaged_pack()}\n")
        return EXIT_OK
    if args.parallel < 1:
        err.write("qlik-email-fleet: --parallel must be at least 1\n")
        return EXIT_USAGE
    setup = packs.PolicySetup.none()
    try:
        fleet = load(args.tenants_file)
        tenants = _selected(fleet, args)
        if args.operation != "audit" and not args.offline and backend_factory is None:
            _require_cli()
        if args.operation in WITH_POLICIES:
            setup = packs.PolicySetup.start(
                fleet, args.policy_pack, use_packs=not args.no_policy_pack,
                default=packs.packaged_pack(),
            )
        if args.operation == "audit":
            from qlik_email_resource.fleet.audit import run_audit_command

            return run_audit_command(args, fleet, tenants, setup, out=out, err=err)
        if args.operation == "destroy" and not _confirmed(args, fleet, tenants, err, stdin):
            return EXIT_USAGE
        factory = backend_factory or make_backend
        backend = factory(args, fleet, setup)
    except (TenantsFileError, _Usage, packs.PolicyConfigError) as exc:
        setup.stop()
        err.write(f"qlik-email-fleet: {exc}\n")
        return EXIT_USAGE
    except Exception as exc:
        setup.stop()
        err.write(f"qlik-email-fleet: cannot start the backend: {exc}\n")
        return EXIT_USAGE
    options = RunOptions(
        refresh=getattr(args, "refresh", True),
        expect_no_changes=getattr(args, "expect_no_changes", False),
    )
    parallel = min(args.parallel, backend.max_parallel or args.parallel)
    capped = " (the offline runner runs one stack at a time)" if parallel < args.parallel else ""
    started = time.monotonic()
    try:
        refresh_note = (
            "" if args.operation not in ("preview", "up")
            else ", refreshing each tenant first" if options.refresh else ", no refresh"
        )
        err.write(
            f"{args.operation}: {len(tenants)} tenants of project {fleet.project} through the "
            f"{backend.describe()}, {parallel} at a time{capped}{refresh_note}\n"
        )
        progress = Progress(len(tenants), args.operation, err)
        with _quiet_asyncio():
            results = run_fleet(backend, tenants, args.operation, parallel=parallel,
                                progress=progress, options=options)
    finally:
        backend.close()
        setup.stop()
    code = exit_code(results)
    out.write(render_table(results, args.operation) + "\n")
    out.flush()
    if args.json_file:
        write_json(
            args.json_file, results, operation=args.operation, project=fleet.project,
            backend=backend.describe(), exit_code=code, seconds=time.monotonic() - started,
            options={"refresh": options.refresh, "expect_no_changes": options.expect_no_changes,
                     "policy_packs": list(setup.packs)},
        )
    return code


def _selected(fleet: TenantsFile, args: argparse.Namespace) -> list[Tenant]:
    tenants = list(fleet.tenants)
    if args.tenant:
        unknown = sorted(set(args.tenant) - {t.name for t in tenants})
        if unknown:
            raise _Usage(f"--tenant names tenants not in {args.tenants_file}: {unknown}")
        tenants = [t for t in tenants if t.name in args.tenant]
    return tenants


def _confirmed(
    args: argparse.Namespace,
    fleet: TenantsFile,
    tenants: Sequence[Tenant],
    err: TextIO,
    stdin: TextIO | None,
) -> bool:
    """``destroy`` of more than one tenant needs --yes or the project name typed back."""
    if args.yes or len(tenants) <= 1:
        return True
    source = stdin if stdin is not None else sys.stdin
    interactive = source is not None and _isatty(source)
    if not interactive:
        err.write(
            f"qlik-email-fleet: destroy would delete the email configuration of "
            f"{len(tenants)} tenants; pass --yes to confirm (there is no terminal to ask on)\n"
        )
        return False
    names = ", ".join(t.name for t in tenants[:10]) + (", ..." if len(tenants) > 10 else "")
    err.write(
        f"destroy deletes the email configuration of {len(tenants)} tenants ({names}).\n"
        f"Type the project name ({fleet.project}) to confirm: "
    )
    err.flush()
    answer = source.readline().strip()
    if answer != fleet.project:
        err.write("qlik-email-fleet: not confirmed; nothing was destroyed\n")
        return False
    return True


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
