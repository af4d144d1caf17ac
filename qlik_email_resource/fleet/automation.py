"""Backend on the Pulumi Automation API: the real engine, one stack per tenant.

Needs the `pulumi` CLI on PATH (the Automation API drives it). Stacks run in
threads: since pulumi/pulumi#10472 the Python SDK keeps its runtime state in
context variables, so inline programs of different stacks may run concurrently
in one process (pulumi/pulumi#6052, closed).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qlik_email_resource.fleet.program import RESOURCE_TYPE, stack_config, tenant_program
from qlik_email_resource.fleet.report import BLOCKED, FAILED, TenantResult, redact
from qlik_email_resource.fleet.tenants import ResolvedTenant, TenantsFile


class BackendError(RuntimeError):
    """The backend cannot run at all (before any tenant is touched)."""


def cli_available() -> bool:
    return shutil.which("pulumi") is not None


def verification(outputs: Mapping[str, Any]) -> str:
    """How the tenant judged the configuration it now holds (its `isValid`)."""
    valid = outputs.get("is_valid")
    if valid is True:
        return "valid"
    if valid is False:
        code = outputs.get("error_code") or outputs.get("status_reason") or "unknown error"
        return f"invalid ({code})"
    return "-"


def result_word(op: str, preview: bool) -> str:
    words = {
        "create": "created",
        "update": "updated",
        "replace": "replaced",
        "delete": "deleted",
        "same": "unchanged",
        "read": "refreshed",
    }
    word = words.get(op, op)
    if preview and word != "unchanged":
        return f"would {op}"
    return word


class AutomationBackend:
    name = "Pulumi Automation API"
    max_parallel: int | None = None

    def __init__(
        self,
        fleet: TenantsFile,
        *,
        policy_packs: Sequence[str],
        state_dir: Path,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if not cli_available():
            raise BackendError(
                "the Pulumi CLI is not on PATH: install it (https://www.pulumi.com/docs/install/) "
                "or pass --offline to use the offline test runner"
            )
        env = os.environ if environ is None else environ
        self.fleet = fleet
        self.policy_packs = [str(Path(p).resolve()) for p in policy_packs]
        state_dir.mkdir(parents=True, exist_ok=True)
        # The user's backend wins; otherwise a local file backend beside the run,
        # never a silent login to Pulumi Cloud.
        self.backend_url = env.get("PULUMI_BACKEND_URL") or f"file://{state_dir.resolve()}"
        if self.backend_url.startswith("file:") and not (
            env.get("PULUMI_CONFIG_PASSPHRASE") is not None
            or env.get("PULUMI_CONFIG_PASSPHRASE_FILE")
        ):
            raise BackendError(
                f"the local backend {self.backend_url} encrypts stack secrets with a passphrase: "
                "set PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE)"
            )
        self.policy_config_files: list[str] = []
        if self.policy_packs and fleet.policy_config:
            path = state_dir / "policy-config.json"
            path.write_text(json.dumps(fleet.policy_config, indent=2))
            self.policy_config_files = [str(path.resolve())] * len(self.policy_packs)

    def describe(self) -> str:
        return f"{self.name}, backend {self.backend_url}"

    def close(self) -> None:
        pass

    def run(self, resolved: ResolvedTenant, operation: str) -> TenantResult:
        from pulumi import automation as auto

        tenant = resolved.tenant
        started = time.monotonic()
        events = _Events()
        try:
            stack = auto.create_or_select_stack(
                stack_name=tenant.name,
                project_name=self.fleet.project,
                program=tenant_program(tenant),
                opts=auto.LocalWorkspaceOptions(
                    project_settings=auto.ProjectSettings(
                        name=self.fleet.project,
                        runtime=auto.ProjectRuntimeInfo("python", _runtime_options()),
                        backend=auto.ProjectBackend(url=self.backend_url),
                    ),
                    # The engine starts the dynamic provider through a shell shim that
                    # runs the virtualenv's python (PULUMI_RUNTIME_VIRTUALENV) or python3
                    # from PATH; it must be this one, where qlik_email_resource lives.
                    env_vars=_provider_python_env(),
                ),
            )
            stack.set_all_config(
                {
                    key: auto.ConfigValue(value=value, secret=secret)
                    for key, (value, secret) in stack_config(resolved).items()
                }
            )
            common: dict[str, Any] = {
                "policy_packs": self.policy_packs or None,
                "policy_pack_configs": self.policy_config_files or None,
                "on_event": events.handle,
                "color": "never",
            }
            if operation == "preview":
                stack.preview(**common)
                outputs: dict[str, Any] = {}
            else:
                up = stack.up(show_secrets=False, **common)
                outputs = {k: v.value for k, v in up.outputs.items() if not v.secret}
        except Exception as exc:
            message = events.error() or _command_error(exc)
            return TenantResult(
                tenant=tenant.name,
                result=BLOCKED if events.mandatory() else FAILED,
                changed=events.changed,
                violations=events.violations,
                error=redact(message, resolved.secret_values()),
                seconds=time.monotonic() - started,
            )
        return TenantResult(
            tenant=tenant.name,
            result=result_word(events.op, preview=operation == "preview"),
            changed=events.changed,
            violations=events.violations,
            verification=verification(outputs),
            seconds=time.monotonic() - started,
        )


def _in_virtualenv() -> bool:
    return sys.prefix != sys.base_prefix


def _runtime_options() -> dict[str, str]:
    return {"virtualenv": sys.prefix} if _in_virtualenv() else {}


def _provider_python_env() -> dict[str, str]:
    env = {"PULUMI_PYTHON_CMD": sys.executable}
    if _in_virtualenv():
        env["PULUMI_RUNTIME_VIRTUALENV"] = sys.prefix
    return env


def _command_error(exc: Exception) -> str:
    stderr = getattr(exc, "stderr", "") or ""
    lines = [line.strip() for line in str(stderr).splitlines() if line.strip()]
    return lines[-1] if lines else f"{type(exc).__name__}: {exc}".splitlines()[0]


class _Events:
    """Collects what the report needs from the engine's event stream."""

    def __init__(self) -> None:
        self.op = "same"
        self.changed: list[str] = []
        self.violations: list[str] = []
        self._levels: list[str] = []
        self._errors: list[str] = []

    def handle(self, event: Any) -> None:
        pre = getattr(event, "resource_pre_event", None)
        if pre is not None and pre.metadata.type == RESOURCE_TYPE:
            meta = pre.metadata
            op = str(getattr(meta.op, "value", meta.op))
            # A replacement shows as several steps; report it once, as "replace".
            if op in ("create-replacement", "delete-replaced", "replace"):
                op = "replace"
            elif self.op == "replace":
                return
            self.op = op
            diffs = meta.diffs or []
            self.changed = (
                ["(new)"]
                if self.op == "create"
                else sorted(d for d in diffs if not d.startswith("__"))
            )
        policy = getattr(event, "policy_event", None)
        if policy is not None:
            # `up` checks policies in its preview and again in the update.
            entry = f"{policy.policy_name} ({policy.enforcement_level})"
            self._levels.append(policy.enforcement_level)
            if entry not in self.violations:
                self.violations.append(entry)
        diag = getattr(event, "diagnostic_event", None)
        if diag is not None and diag.severity == "error":
            text = diag.message.strip()
            if text:
                self._errors.append(text.splitlines()[-1])

    def mandatory(self) -> bool:
        return "mandatory" in self._levels

    def error(self) -> str:
        return self._errors[-1] if self._errors else ""
