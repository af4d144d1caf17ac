"""Backend on the Pulumi Automation API: the real engine, one stack per tenant.

Needs the `pulumi` CLI on PATH (the Automation API drives it). Stacks run in
threads: since pulumi/pulumi#10472 the Python SDK keeps its runtime state in
context variables, so inline programs of different stacks may run concurrently
in one process (pulumi/pulumi#6052, closed).

What the report needs comes from the engine's event stream (``on_event``):
resource steps with their old and new state (for ``old → new`` and drift),
policy events, and error diagnostics.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from qlik_email_resource.fleet.changes import (
    RunOptions,
    blocked_message,
    changed_settings,
    changes_from,
    desired_inputs,
    drift_from,
    result_word,
    verification,
)
from qlik_email_resource.fleet.hints import in_tenants_file_terms
from qlik_email_resource.fleet.program import RESOURCE_TYPE, stack_config, tenant_program
from qlik_email_resource.fleet.pulumi_cli import plugin_environ, set_stack_config
from qlik_email_resource.fleet.report import (
    BLOCKED,
    FAILED,
    FieldChange,
    PolicyFinding,
    TenantResult,
    redact_changes,
)
from qlik_email_resource.fleet.tenants import ResolvedTenant, TenantsFile
from qlik_email_resource.redaction import redact

__all__ = ["AutomationBackend", "BackendError", "cli_available", "result_word", "verification"]


class BackendError(RuntimeError):
    """The backend cannot run at all (before any tenant is touched)."""


def cli_available() -> bool:
    return shutil.which("pulumi") is not None


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
        policy_config: Mapping[str, Mapping[str, Any]] | None = None,
        cli_env: Mapping[str, str] | None = None,
        on_output: Callable[[str], None] | None = None,
    ) -> None:
        """``cli_env``: extra environment for every CLI process (the demo's own backend
        and passphrase). ``on_output``: each line the CLI prints for a stack operation."""
        if not cli_available():
            raise BackendError(
                "the Pulumi CLI is not on PATH: install it (https://www.pulumi.com/docs/install/) "
                "or pass --offline to use the offline test runner"
            )
        from qlik_email_resource.fleet.pulumi_cli import policy_pack_for_cli

        self.cli_env = dict(cli_env or {})
        env = {**(os.environ if environ is None else environ), **self.cli_env}
        self.on_output = on_output
        self.fleet = fleet
        state_dir.mkdir(parents=True, exist_ok=True)
        # A pack directory, or where the CLI has no Python language host, a launcher
        # that starts the pack with this Python (see pulumi_cli.py).
        self.policy_packs = [policy_pack_for_cli(p, state_dir) for p in policy_packs]
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
        config = fleet.policy_config if policy_config is None else policy_config
        self.policy_config_files: list[str] = []
        if self.policy_packs and config:
            path = state_dir / "policy-config.json"
            path.write_text(json.dumps(dict(config), indent=2))
            self.policy_config_files = [str(path.resolve())] * len(self.policy_packs)

    def describe(self) -> str:
        return f"{self.name}, backend {self.backend_url}"

    def close(self) -> None:
        pass

    def _stack(self, resolved: ResolvedTenant) -> Any:
        from pulumi import automation as auto

        tenant = resolved.tenant
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
                env_vars={**self.cli_env, **plugin_environ()},
            ),
        )
        set_stack_config(stack, stack_config(resolved))
        return stack

    def run(
        self, resolved: ResolvedTenant, operation: str, options: RunOptions | None = None
    ) -> TenantResult:
        options = options or RunOptions()
        tenant = resolved.tenant
        started = time.monotonic()
        events = _Events()
        stack_outputs: dict[str, Any] = {}
        try:
            stack = self._stack(resolved)
            common: dict[str, Any] = {
                "on_event": events.handle, "on_output": self.on_output, "color": "never",
            }
            policies: dict[str, Any] = {
                "policy_packs": self.policy_packs or None,
                "policy_pack_configs": self.policy_config_files or None,
            }
            if operation == "preview":
                stack.preview(refresh=options.refresh, **policies, **common)
            elif operation == "up":
                up = stack.up(refresh=options.refresh, show_secrets=False, **policies, **common)
                stack_outputs = {k: v.value for k, v in up.outputs.items() if not v.secret}
            elif operation == "refresh":
                stack.refresh(show_secrets=False, **common)
            elif operation == "destroy":
                stack.destroy(show_secrets=False, **common)
            else:
                raise ValueError(f"unknown operation {operation!r}")
        except Exception as exc:
            # Blocked: the policies' own words; the CLI's last line ("preview failed")
            # says nothing of why.
            if events.mandatory():
                message = blocked_message(events.findings)
            else:
                message = events.error() or _command_error(exc)
            return TenantResult(
                tenant=tenant.name,
                result=BLOCKED if events.mandatory() else FAILED,
                changes=redact_changes(
                    events.changes(desired_inputs(tenant)), resolved.secret_values()
                ),
                violations=events.findings,
                error=in_tenants_file_terms(
                    redact(message, resolved.secret_values()), tenant
                ),
                seconds=time.monotonic() - started,
                drift=redact_changes(events.drift(), resolved.secret_values()),
            )
        result = self._result(resolved, operation, options, events, stack_outputs, started)
        secrets = resolved.secret_values()
        result.changes = redact_changes(result.changes, secrets)
        result.drift = redact_changes(result.drift, secrets)
        return result

    def _result(
        self,
        resolved: ResolvedTenant,
        operation: str,
        options: RunOptions,
        events: _Events,
        stack_outputs: Mapping[str, Any],
        started: float,
    ) -> TenantResult:
        tenant = resolved.tenant
        drift = events.drift()
        if operation == "destroy":
            deleted = events.op == "delete"
            word = "deleted" if deleted else "not deployed"
            changes = changes_from("delete", None, {}) if deleted else []
        elif operation == "refresh":
            word = "drifted" if drift else "unchanged"
            changes = []
        else:
            word = result_word(events.op, preview=operation == "preview")
            changes = events.changes(desired_inputs(tenant))
        # VERIFIED: what the tenant said in this run (the write's read-back, else the
        # refresh's read); "-" when it was not asked.
        said: Mapping[str, Any] = {}
        if operation == "up" and events.op in ("create", "update", "replace"):
            said = stack_outputs
        elif events.refreshed is not None:
            said = events.refreshed
        unexpected = options.expect_no_changes and bool(
            changes or (operation == "refresh" and drift)
        )
        return TenantResult(
            tenant=tenant.name,
            result=word,
            changes=changes,
            violations=events.findings,
            verification=verification(said),
            seconds=time.monotonic() - started,
            drift=drift,
            unexpected_changes=unexpected,
        )


def _in_virtualenv() -> bool:
    return sys.prefix != sys.base_prefix


def _runtime_options() -> dict[str, str]:
    return {"virtualenv": sys.prefix} if _in_virtualenv() else {}


def _command_error(exc: Exception) -> str:
    stderr = getattr(exc, "stderr", "") or ""
    lines = [line.strip() for line in str(stderr).splitlines() if line.strip()]
    return lines[-1] if lines else f"{type(exc).__name__}: {exc}".splitlines()[0]


class _Events:
    """Collects what the report needs from the engine's event stream."""

    def __init__(self) -> None:
        self.op = "same"
        self.changed: list[str] = []
        self.violations: list[str] = []  # "policy (level)"
        self.findings: list[PolicyFinding] = []
        self.old_outputs: Mapping[str, Any] | None = None
        self.new_inputs: Mapping[str, Any] | None = None
        # The resource as a refresh step read it from the tenant (None: no refresh).
        self.refreshed: Mapping[str, Any] | None = None
        self._refresh_before: Mapping[str, Any] | None = None
        self._refresh_gone = False
        self._awaiting_refresh = False
        self._levels: list[str] = []
        self._errors: list[str] = []
        self._resource_errors: list[str] = []

    def handle(self, event: Any) -> None:
        pre = getattr(event, "resource_pre_event", None)
        if pre is not None and pre.metadata.type == RESOURCE_TYPE:
            self._step(pre.metadata)
        done = getattr(event, "res_outputs_event", None)
        if done is not None and done.metadata.type == RESOURCE_TYPE:
            self._outputs(done.metadata)
        policy = getattr(event, "policy_event", None)
        if policy is not None:
            # `up` checks policies in its preview and again in the update.
            entry = f"{policy.policy_name} ({policy.enforcement_level})"
            self._levels.append(policy.enforcement_level)
            if entry not in self.violations:
                self.violations.append(entry)
                self.findings.append(
                    PolicyFinding(policy.policy_name, policy.enforcement_level,
                                  (policy.message or "").strip())
                )
        diag = getattr(event, "diagnostic_event", None)
        if diag is not None and diag.severity == "error":
            text = diag.message.strip()
            if text:
                # The engine follows a resource's error with generic ones of its own
                # and no URN ("update failed", "Resource monitor has terminated"):
                # the resource's error is the one that says why.
                errors = self._resource_errors if getattr(diag, "urn", None) else self._errors
                errors.append(text.splitlines()[-1])

    def _step(self, meta: Any) -> None:
        op = str(getattr(meta.op, "value", meta.op))
        if op == "refresh":
            if meta.old is not None and self._refresh_before is None:
                self._refresh_before = dict(meta.old.outputs or {})
            self._awaiting_refresh = True
            return
        # A replacement shows as several steps; report it once, as "replace".
        if op in ("create-replacement", "delete-replaced", "replace"):
            op = "replace"
        elif self.op == "replace":
            return
        self.op = op
        if meta.old is not None and meta.old.outputs is not None:
            self.old_outputs = dict(meta.old.outputs)
        if meta.new is not None and meta.new.inputs is not None:
            self.new_inputs = dict(meta.new.inputs)
        if self.op == "create":
            self.changed = ["(new)"]
        elif meta.diffs:
            self.changed = sorted(d for d in meta.diffs if not d.startswith("__"))
        else:
            # The CLI's JSON events carry no `diffs` unless asked for a diff display;
            # the step's old state and new inputs say the same.
            self.changed = changed_settings(self.old_outputs or {}, self.new_inputs or {})

    def _outputs(self, meta: Any) -> None:
        op = str(getattr(meta.op, "value", meta.op))
        # `up --refresh` and `preview --refresh` report the read as op "refresh";
        # `pulumi refresh` reports it as the outcome ("same", "update", "delete").
        if op != "refresh" and not self._awaiting_refresh:
            return
        self._awaiting_refresh = False
        if meta.old is not None and self._refresh_before is None:
            self._refresh_before = dict(meta.old.outputs or {})
        if meta.new is not None:
            self.refreshed = dict(meta.new.outputs or {})
        else:
            self._refresh_gone = True

    def changes(self, desired: Mapping[str, Any]) -> list[FieldChange]:
        return changes_from(self.op, self.old_outputs, self.new_inputs or desired, self.changed)

    def drift(self) -> list[FieldChange]:
        if self._refresh_before is None:
            return []
        return drift_from(self._refresh_before, None if self._refresh_gone else self.refreshed)

    def mandatory(self) -> bool:
        return "mandatory" in self._levels

    def error(self) -> str:
        errors = self._resource_errors or self._errors
        return errors[-1] if errors else ""
