"""The demo's stacks, run by the fleet's backends: the Pulumi CLI when on PATH, else offline.

Each tenant of examples/tenants.yaml is one stack of the fleet's program
(fleet/program.py), so "run a stack, with the CLI or offline" is the fleet's
code; this module only picks the backend, keeps the demo's state under its
working directory and collects each operation's own report for display.
"""

from __future__ import annotations

import contextvars
import dataclasses
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qlik_email_resource.demo.errors import DemoError
from qlik_email_resource.demo.outcome import StackRun
from qlik_email_resource.fleet.changes import RunOptions
from qlik_email_resource.fleet.cli import Backend
from qlik_email_resource.fleet.tenants import ResolvedTenant, TenantsFile

# Only protects the demo's throw-away local backend; never use it for real stacks.
DEMO_PASSPHRASE = "qlik-email-demo-not-a-secret"
OFFLINE_LABEL = "offline runner (the Pulumi CLI is not on PATH): real provider and policy servers"
# The demo shows each step on its own (refresh, then up), so no run refreshes first.
STEP_BY_STEP = RunOptions(refresh=False)


class DemoStacks:
    """One stack per tenant on the fleet's CLI backend or, without the CLI, its offline one."""

    def __init__(self, fleet: TenantsFile, root: Path, work: Path) -> None:
        self._report: list[str] = []
        packs = [str(root / "policies")]
        self.backend: Backend
        if shutil.which("pulumi"):
            from qlik_email_resource.fleet.automation import AutomationBackend

            state = (work / "pulumi-state").resolve()
            self.backend = AutomationBackend(
                fleet, policy_packs=packs, state_dir=state,
                cli_env={
                    # The demo's own file backend, whatever the user is logged in to.
                    "PULUMI_BACKEND_URL": f"file://{state}",
                    "PULUMI_CONFIG_PASSPHRASE": DEMO_PASSPHRASE,
                    "PULUMI_SKIP_UPDATE_CHECK": "true",
                },
                on_output=self._report.append,
            )
            self.label = f"the Pulumi CLI {_cli_version()}, local backend file://{state}"
            from qlik_email_resource.fleet.pulumi_cli import has_python_language_host

            if not has_python_language_host():
                self.label += " (program inline via the Automation API, no Python language host)"
            # The CLI's own output is the point of this path: it is always shown.
            self.always_show = True
        else:
            from qlik_email_resource.fleet.offline import OfflineBackend

            self.backend = OfflineBackend(
                fleet, policy_packs=packs, state_dir=work / "offline-state",
                on_output=self._report.append,
            )
            self.label = OFFLINE_LABEL
            self.always_show = False

    def run(self, operation: str, resolved: ResolvedTenant) -> StackRun:
        self._report.clear()
        # A fresh context per stack, as the fleet runs them: Pulumi keeps its
        # runtime state in context variables.
        result = contextvars.Context().run(
            self.backend.run, resolved, operation, STEP_BY_STEP
        )
        return StackRun(result, "\n".join(self._report).strip())

    def preview_change(self, resolved: ResolvedTenant, change: Mapping[str, Any]) -> StackRun:
        """Preview the stack as if its settings had ``change``; writes nothing."""
        tenant = dataclasses.replace(resolved.tenant, email={**resolved.tenant.email, **change})
        return self.run("preview", dataclasses.replace(resolved, tenant=tenant))

    def close(self) -> None:
        self.backend.close()


def _cli_version() -> str:
    proc = subprocess.run(
        ["pulumi", "version"], env={**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true"},
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise DemoError("`pulumi version` failed:\n" + "\n".join(tail))
    return proc.stdout.strip()
