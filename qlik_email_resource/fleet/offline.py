"""Backend on the offline runner: no Pulumi CLI, real provider and analyzer servers.

One provider server and one analyzer serve the whole run. Tenants share the
provider because their URL and API key travel on the resource; what cannot
(an OAuth client, a CA bundle) is process environment, so tenants that differ
there get a provider server of their own, one per distinct environment.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qlik_email_resource.fleet.automation import result_word, verification
from qlik_email_resource.fleet.program import RESOURCE_TYPE, stack_config, tenant_program
from qlik_email_resource.fleet.report import BLOCKED, FAILED, TenantResult, redact
from qlik_email_resource.fleet.tenants import ResolvedTenant, TenantsFile


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
    # The offline runner serialises runs in a process (the Pulumi SDK's runtime
    # is process-global); measured, a process pool does not pay off against a
    # local emulator. See docs/fleet.md, "Concurrency".
    max_parallel: int | None = 1
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
    ) -> None:
        from qlik_email_resource.testing.grpc_servers import AnalyzerServer

        self.fleet = fleet
        self.policy_packs = [str(Path(p).resolve()) for p in policy_packs]
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._providers: dict[frozenset[tuple[str, str]], Any] = {}
        self._analyzers: list[Any] = []
        try:
            # Started once; the runner configures them (schema defaults plus the
            # tenants file's policy_config) before each stack's checks.
            self._analyzers = [AnalyzerServer(pack) for pack in self.policy_packs]
        except Exception:
            self.close()
            raise

    def describe(self) -> str:
        return f"{self.name}, state in {self.state_dir}"

    def provider_for(self, resolved: ResolvedTenant) -> Any:
        from qlik_email_resource.testing.grpc_servers import ProviderServer

        env = provider_env(resolved)
        key = frozenset(env.items())
        with self._lock:
            server = self._providers.get(key)
            if server is None:
                server = ProviderServer(env=env, project=self.fleet.project)
                self._providers[key] = server
            return server

    def close(self) -> None:
        for server in [*self._providers.values(), *self._analyzers]:
            server.stop()
        self._providers.clear()
        self._analyzers.clear()

    def run(self, resolved: ResolvedTenant, operation: str) -> TenantResult:
        from qlik_email_resource.testing import OfflineStack, PolicyViolationError, Secret

        tenant = resolved.tenant
        started = time.monotonic()
        secrets = resolved.secret_values()
        try:
            stack = OfflineStack(
                tenant_program(tenant),
                project=self.fleet.project,
                stack=tenant.name,
                config={
                    key: Secret(value) if secret else value
                    for key, (value, secret) in stack_config(resolved).items()
                },
                state_file=str(self.state_dir / f"{tenant.name}.json"),
                # OfflineStack takes one shared analyzer; a second pack (rare) is
                # started per stack.
                policy_packs=self.policy_packs[1:],
                policy_config=dict(self.fleet.policy_config) if self.policy_packs else None,
                provider_server=self.provider_for(resolved),
                analyzer=self._analyzers[0] if self._analyzers else None,
                quiet=True,
            )
            result = stack.preview() if operation == "preview" else stack.up()
        except PolicyViolationError as exc:
            return TenantResult(
                tenant=tenant.name,
                result=BLOCKED,
                violations=[f"{v.policy} ({v.level})" for v in exc.violations],
                error=redact(str(exc), secrets),
                seconds=time.monotonic() - started,
            )
        except Exception as exc:
            return TenantResult(
                tenant=tenant.name,
                result=FAILED,
                error=redact(_first_line(exc), secrets),
                seconds=time.monotonic() - started,
            )
        step = next((s for s in result.steps if s.type == RESOURCE_TYPE), None)
        op = step.op if step else "same"
        return TenantResult(
            tenant=tenant.name,
            result=result_word(op, preview=operation == "preview"),
            changed=_changed(op, step.changed_fields if step else ()),
            violations=[f"{v.policy} ({v.level})" for v in result.violations],
            verification=verification(result.outputs),
            error="" if result.ok else "the offline runner reported a failure",
            seconds=time.monotonic() - started,
        )


def _changed(op: str, fields: Sequence[str]) -> list[str]:
    if op == "create":
        return ["(new)"]
    return sorted(f for f in fields if not f.startswith("__"))


_URN = re.compile(r"of urn:pulumi:\S+?::(?P<name>[^:\s]+) ")


def _first_line(exc: Exception) -> str:
    """The provider's message without the URN and module noise the table does not need."""
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    text = _URN.sub(r"of \g<name> ", text)
    return text.replace("qlik_email_resource.errors.", "")
