"""Backend on the offline runner: no Pulumi CLI, real provider and analyzer servers.

One provider server and one analyzer serve the whole run. Tenants share the
provider because their URL and API key travel on the resource; what cannot
(an OAuth client, a CA bundle) is process environment, so tenants that differ
there get a provider server of their own, one per distinct environment.
"""

from __future__ import annotations

import re
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from qlik_email_resource.fleet.changes import (
    RunOptions,
    blocked_message,
    changes_from,
    desired_inputs,
    drift_from,
    result_word,
    verification,
)
from qlik_email_resource.fleet.hints import in_tenants_file_terms
from qlik_email_resource.fleet.live import read_answer, refresh_would_change
from qlik_email_resource.fleet.program import RESOURCE_TYPE, stack_config, tenant_program
from qlik_email_resource.fleet.report import (
    BLOCKED,
    FAILED,
    PolicyFinding,
    TenantResult,
    redact_changes,
)
from qlik_email_resource.fleet.tenants import ResolvedTenant, TenantsFile
from qlik_email_resource.redaction import redact


def provider_env(resolved: ResolvedTenant) -> dict[str, str]:
    """What must sit in the provider process's environment for this tenant."""
    env: dict[str, str] = {}
    if resolved.tenant.ca_bundle:
        env["QLIK_CA_BUNDLE"] = resolved.tenant.ca_bundle
    if resolved.client_id and resolved.client_secret:
        env["QLIK_TENANT_URL"] = resolved.tenant.url
        env["QLIK_CLIENT_ID"] = resolved.client_id
        env["QLIK_CLIENT_SECRET"] = resolved.client_secret
    return env


class OfflineBackend:
    # The offline runner serialises stack runs in a process (the Pulumi SDK's
    # runtime is process-global); threads still overlap what happens outside it,
    # the reads that decide whether a refresh is needed. A process pool did not
    # pay off against a local emulator. See docs/fleet.md, "Concurrency".
    max_parallel: int | None = None
    name = (
        "offline runner (pulumi.runtime mocks + real provider and policy servers; "
        "not the Pulumi CLI)"
    )

    def __init__(
        self,
        fleet: TenantsFile,
        *,
        policy_packs: Sequence[str],
        state_dir: Path,
        policy_config: Mapping[str, Mapping[str, Any]] | None = None,
        analyzers: Sequence[Any] = (),
        on_output: Callable[[str], None] | None = None,
    ) -> None:
        """``on_output``: the runner's report of each stack operation (the demo shows it)."""
        from qlik_email_resource.offline.grpc_servers import AnalyzerServer
        from qlik_email_resource.offline.lock import FileLock

        self.fleet = fleet
        self.on_output = on_output
        self.policy_packs = [str(Path(p).resolve()) for p in policy_packs]
        self.policy_config = dict(fleet.policy_config if policy_config is None else policy_config)
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        # One fleet run per state directory, held until close(): a second run would
        # otherwise trip over this one's stack locks tenant by tenant.
        self._state_lock = FileLock(
            state_dir / "fleet.lock", subject=f"the fleet state directory {state_dir}",
            advice="wait for that run to finish, or pass another --state-dir",
        )
        self._state_lock.acquire()
        self._lock = threading.Lock()
        self._providers: dict[frozenset[tuple[str, str]], Any] = {}
        # Analyzers handed in (already started to check the policy config) stay the
        # caller's to stop; the ones started here are ours.
        self._analyzers: list[Any] = list(analyzers)
        self._own_analyzers: list[Any] = []
        try:
            # Started once; the runner configures them (schema defaults plus the
            # tenants file's policy_config) before each stack's checks.
            if not self._analyzers:
                self._own_analyzers = [AnalyzerServer(pack) for pack in self.policy_packs]
                self._analyzers = list(self._own_analyzers)
        except Exception:
            self.close()
            raise

    def describe(self) -> str:
        return f"{self.name}, state in {self.state_dir}; stacks run one at a time, reads overlap"

    def provider_for(self, resolved: ResolvedTenant) -> Any:
        from qlik_email_resource.offline.grpc_servers import ProviderServer

        env = provider_env(resolved)
        key = frozenset(env.items())
        with self._lock:
            server = self._providers.get(key)
            if server is None:
                server = ProviderServer(env=env, project=self.fleet.project)
                self._providers[key] = server
            return server

    def close(self) -> None:
        for server in [*self._providers.values(), *self._own_analyzers]:
            server.stop()
        self._providers.clear()
        self._own_analyzers.clear()
        self._analyzers.clear()
        self._state_lock.release()

    def _stack(self, resolved: ResolvedTenant, state_file: Path) -> Any:
        from qlik_email_resource.offline import OfflineStack, Secret

        tenant = resolved.tenant
        return OfflineStack(
            tenant_program(tenant),
            project=self.fleet.project,
            stack=tenant.name,
            config={
                key: Secret(value) if secret else value
                for key, (value, secret) in stack_config(resolved).items()
            },
            state_file=str(state_file),
            # OfflineStack takes one shared analyzer; a second pack (rare) is
            # started per stack.
            policy_packs=self.policy_packs[1:],
            policy_config=self.policy_config if self.policy_packs else None,
            provider_server=self.provider_for(resolved),
            analyzer=self._analyzers[0] if self._analyzers else None,
            quiet=True,
        )

    def run(
        self, resolved: ResolvedTenant, operation: str, options: RunOptions | None = None
    ) -> TenantResult:
        from qlik_email_resource.offline import PolicyViolationError

        options = options or RunOptions()
        tenant = resolved.tenant
        started = time.monotonic()
        secrets = resolved.secret_values()
        outcome = _Outcome(tenant.name)
        outcome.desired = desired_inputs(tenant)
        try:
            state_file = self.state_dir / f"{tenant.name}.json"
            stack = self._stack(resolved, state_file)
            self._run(resolved, stack, operation, options, outcome)
        except PolicyViolationError as exc:
            if exc.result is not None:
                self._told(resolved, exc.result)
                self._planned(exc.result, outcome.prior, operation, outcome)
            outcome.result = BLOCKED
            outcome.violations = _findings(exc.result.violations if exc.result else exc.violations)
            outcome.error = blocked_message(outcome.violations)
        except Exception as exc:
            outcome.result = FAILED
            outcome.error = _first_line(exc)
        return outcome.finish(resolved, operation, options, secrets, time.monotonic() - started)

    def _run(
        self,
        resolved: ResolvedTenant,
        stack: Any,
        operation: str,
        options: RunOptions,
        outcome: _Outcome,
    ) -> None:
        before = _resource(stack.state())
        if operation == "destroy":
            result = self._told(resolved, stack.destroy())
            deleted = any(s.op == "delete" and s.type == RESOURCE_TYPE for s in result.steps)
            outcome.result = "deleted" if deleted else "not deployed"
            outcome.changes = changes_from("delete", before, {}) if deleted else []
            return
        refresh = operation == "refresh" or (options.refresh and before is not None)
        if refresh and operation != "refresh" and before is not None:
            # One GET from here, outside the runner's process-wide lock, so tenants
            # read in parallel; when the tenant holds exactly what state records, the
            # runner's refresh would write back the same state and is skipped.
            from qlik_email_resource.offline.state import unwrap_all

            answer = read_answer(resolved)
            if not refresh_would_change(unwrap_all(before.outputs), answer):
                refresh = False
                outcome.refreshed, outcome.live = True, before
        refreshed = None
        if refresh and operation == "preview":
            self._preview_refreshed(resolved, stack, outcome)
            return
        if refresh:
            self._told(resolved, stack.refresh())
            refreshed = _resource(stack.state())
            outcome.drift = drift_from(before, refreshed)
            outcome.refreshed = True
            outcome.live = refreshed
        if operation == "refresh":
            outcome.result = "drifted" if outcome.drift else "unchanged"
            return
        outcome.prior = refreshed if refreshed is not None else before
        result = self._told(resolved, stack.preview() if operation == "preview" else stack.up())
        self._planned(result, outcome.prior, operation, outcome)

    def _preview_refreshed(self, resolved: ResolvedTenant, stack: Any, outcome: _Outcome) -> None:
        """``preview --refresh``: refresh and preview a scratch copy of the state.

        A preview never writes state (nor does `pulumi preview --refresh`), so the
        refreshed state lives in a temporary file that is thrown away.
        """
        from qlik_email_resource.offline import HEADER
        from qlik_email_resource.offline.state import StateFile

        state = stack.state()
        with tempfile.TemporaryDirectory(prefix="qlik-fleet-preview-") as scratch_dir:
            scratch_file = Path(scratch_dir) / f"{resolved.tenant.name}.json"
            StateFile(scratch_file).save(state, tool=HEADER)
            scratch = self._stack(resolved, scratch_file)
            self._told(resolved, scratch.refresh())
            refreshed = _resource(scratch.state())
            outcome.drift = drift_from(_resource(state), refreshed)
            outcome.refreshed = True
            outcome.live = refreshed
            self._planned(self._told(resolved, scratch.preview()), refreshed, "preview", outcome)

    def _told(self, resolved: ResolvedTenant, result: Any) -> Any:
        # The runner's report masks secrets; a value it cannot know is one (a password
        # pasted into another setting) is scrubbed here, as the fleet's own table does.
        if self.on_output is not None:
            self.on_output(redact(result.report(), resolved.secret_values()))
        return result

    def _planned(self, result: Any, prior: Any, operation: str, outcome: _Outcome) -> None:
        step = next((s for s in result.steps if s.type == RESOURCE_TYPE), None)
        op = step.op if step else "same"
        outcome.op = op
        outcome.violations = _findings(result.violations)
        outcome.changes = changes_from(
            op, prior, outcome.desired, fields=step.changed_fields if step else ()
        )
        if any(v.level == "mandatory" for v in result.violations):
            outcome.result = BLOCKED
            outcome.error = blocked_message(outcome.violations)
            return
        outcome.result = result_word(op, preview=operation == "preview")
        if op in ("create", "update", "replace") and operation == "up":
            outcome.written_outputs = dict(result.outputs)
        if not result.ok and not outcome.error:
            outcome.error = "the offline runner reported a failure"


class _Outcome:
    """What one tenant's run found, turned into its row at the end."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.result = FAILED
        self.op = ""
        self.changes: list[Any] = []
        self.drift: list[Any] = []
        self.violations: list[PolicyFinding] = []
        self.error = ""
        self.refreshed = False
        self.live: Any = None  # the resource as the refresh read it
        self.written_outputs: dict[str, Any] | None = None
        self.desired: dict[str, Any] = {}
        self.prior: Any = None  # the resource as state holds it before the plan

    def finish(
        self,
        resolved: ResolvedTenant,
        operation: str,
        options: RunOptions,
        secrets: Sequence[str],
        seconds: float,
    ) -> TenantResult:
        # VERIFIED is what the tenant said in this run: after a write, the provider's
        # read-back; otherwise the refresh; with neither, nothing ("-").
        said: Mapping[str, Any] = {}
        if self.written_outputs is not None:
            said = self.written_outputs
        elif self.refreshed and self.live is not None:
            said = self.live.outputs
        unexpected = options.expect_no_changes and (
            bool(self.changes) or bool(self.drift and operation == "refresh")
        )
        return TenantResult(
            tenant=self.tenant,
            result=self.result,
            changes=redact_changes(self.changes, secrets),
            violations=self.violations,
            verification=verification(said) if self.result != FAILED else "-",
            error=in_tenants_file_terms(redact(self.error, secrets), resolved.tenant),
            seconds=seconds,
            drift=redact_changes(self.drift, secrets),
            unexpected_changes=unexpected,
        )


def _resource(state: Any) -> Any:
    return next((r for r in state.resources if r.type == RESOURCE_TYPE), None)


def _findings(violations: Sequence[Any]) -> list[PolicyFinding]:
    seen: dict[str, PolicyFinding] = {}
    for v in violations:
        seen.setdefault(f"{v.policy}/{v.level}", PolicyFinding(v.policy, v.level, v.message))
    return list(seen.values())


_URN = re.compile(r"of urn:pulumi:\S+?::(?P<name>[^:\s]+) ")


def _first_line(exc: Exception) -> str:
    """The provider's message without the URN and module noise the table does not need."""
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    text = _URN.sub(r"of \g<name> ", text)
    return text.replace("qlik_email_resource.errors.", "")
