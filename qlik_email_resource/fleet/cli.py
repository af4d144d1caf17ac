"""`qlik-email-fleet {preview,up} tenants.yaml`: one stack per tenant, many at once."""

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
from typing import Protocol, TextIO

from qlik_email_resource.fleet.report import FAILED, Progress, TenantResult, render_table
from qlik_email_resource.fleet.tenants import (
    CredentialError,
    ResolvedTenant,
    Tenant,
    TenantsFile,
    TenantsFileError,
    load,
)

EXIT_OK, EXIT_TENANT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_STATE_DIR = ".fleet-state"


class Backend(Protocol):
    max_parallel: int | None  # a ceiling the backend imposes on --parallel, if any

    def describe(self) -> str: ...

    def run(self, resolved: ResolvedTenant, operation: str) -> TenantResult: ...

    def close(self) -> None: ...


def run_tenant(backend: Backend, tenant: Tenant, operation: str) -> TenantResult:
    """One tenant, never raising: whatever goes wrong becomes this tenant's row."""
    started = time.monotonic()
    try:
        resolved = tenant.resolve()
    except CredentialError as exc:
        return TenantResult(tenant=tenant.name, result=FAILED, error=str(exc))
    try:
        return backend.run(resolved, operation)
    except Exception as exc:
        from qlik_email_resource.fleet.report import redact

        message = redact(f"{type(exc).__name__}: {exc}".splitlines()[0], resolved.secret_values())
        return TenantResult(
            tenant=tenant.name,
            result=FAILED,
            error=message,
            seconds=time.monotonic() - started,
        )


def run_fleet(
    backend: Backend,
    tenants: Sequence[Tenant],
    operation: str,
    *,
    parallel: int,
    progress: Progress,
) -> list[TenantResult]:
    """Run every tenant with at most ``parallel`` at a time; results in file order."""

    def one(tenant: Tenant) -> TenantResult:
        progress.start(tenant.name)
        # A fresh context per stack: Pulumi keeps its runtime state (settings,
        # root resource, config) in context variables, and a pool thread would
        # otherwise carry one tenant's state into the next.
        result = contextvars.Context().run(run_tenant, backend, tenant, operation)
        progress.finish(result)
        return result

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        results = list(pool.map(one, tenants))
    progress.close()
    return results


def make_backend(args: argparse.Namespace, fleet: TenantsFile) -> Backend:
    from qlik_email_resource.fleet.automation import AutomationBackend, cli_available

    state_dir = Path(args.state_dir)
    if args.offline:
        from qlik_email_resource.fleet.offline import OfflineBackend

        return OfflineBackend(fleet, policy_packs=args.policy_pack, state_dir=state_dir)
    if not cli_available():
        raise _Usage(
            "the Pulumi CLI is not on PATH: install it (https://www.pulumi.com/docs/install/) "
            "or pass --offline to run through the offline test runner"
        )
    return AutomationBackend(fleet, policy_packs=args.policy_pack, state_dir=state_dir)


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


class _Usage(Exception):
    pass


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qlik-email-fleet",
        description="Roll the email configuration out to many Qlik tenants, one Pulumi "
        "stack per tenant.",
    )
    p.add_argument("operation", choices=("preview", "up"), help="preview changes or apply them")
    p.add_argument("tenants_file", help="the tenants YAML file")
    p.add_argument(
        "--parallel", type=int, default=4, metavar="N",
        help="tenants processed at the same time (default 4)",
    )
    p.add_argument(
        "--offline", action="store_true",
        help="use the offline test runner instead of the Pulumi CLI",
    )
    p.add_argument(
        "--policy-pack", action="append", default=[], metavar="DIR",
        help="run this policy pack on every stack (repeatable)",
    )
    p.add_argument(
        "--state-dir", default=DEFAULT_STATE_DIR, metavar="DIR",
        help="offline state files; with the CLI, the local file backend unless "
        f"PULUMI_BACKEND_URL is set (default {DEFAULT_STATE_DIR})",
    )
    p.add_argument(
        "--tenant", action="append", default=[], metavar="NAME",
        help="only this tenant (repeatable)",
    )
    return p


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    backend_factory: Callable[[argparse.Namespace, TenantsFile], Backend] | None = None,
) -> int:
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    args = parser().parse_args(argv)
    if args.parallel < 1:
        err.write("qlik-email-fleet: --parallel must be at least 1\n")
        return EXIT_USAGE
    try:
        fleet = load(args.tenants_file)
        tenants = list(fleet.tenants)
        if args.tenant:
            unknown = sorted(set(args.tenant) - {t.name for t in tenants})
            if unknown:
                raise _Usage(f"--tenant names tenants not in {args.tenants_file}: {unknown}")
            tenants = [t for t in tenants if t.name in args.tenant]
        backend = (backend_factory or make_backend)(args, fleet)
    except (TenantsFileError, _Usage) as exc:
        err.write(f"qlik-email-fleet: {exc}\n")
        return EXIT_USAGE
    except Exception as exc:
        err.write(f"qlik-email-fleet: cannot start the backend: {exc}\n")
        return EXIT_USAGE
    parallel = min(args.parallel, backend.max_parallel or args.parallel)
    capped = " (the offline runner runs one stack at a time)" if parallel < args.parallel else ""
    try:
        err.write(
            f"{args.operation}: {len(tenants)} tenants of project {fleet.project} through the "
            f"{backend.describe()}, {parallel} at a time{capped}\n"
        )
        progress = Progress(len(tenants), args.operation, err)
        with _quiet_asyncio():
            results = run_fleet(backend, tenants, args.operation, parallel=parallel,
                                progress=progress)
    finally:
        backend.close()
    out.write(render_table(results, args.operation) + "\n")
    out.flush()
    return EXIT_TENANT_FAILED if any(r.failed for r in results) else EXIT_OK
