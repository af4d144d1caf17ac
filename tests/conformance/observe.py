"""What one engine did in one scenario, in a form the two engines can be compared in.

Both engines run a scenario against their own fresh emulator tenants, so every
value that names a tenant (its URL, id, keys) is replaced by its role before
comparing: `<url:A>`, `<tenant_id:A>`. Nothing else is normalised.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from qlik_email_resource.emulator import Emulator
from qlik_email_resource.emulator.server import TenantInfo
from qlik_email_resource.offline import Secret
from qlik_email_resource.secret_wire import is_wrapped as is_secret
from tests.conformance.scenarios import (
    Action,
    DeleteConfig,
    Fault,
    Scenario,
    SetConfig,
    SmtpUser,
)

EMAIL_PATH = "/api/v1/transports/email-config"
MASK = "[secret]"
_PLACEHOLDER = re.compile(r"\{(\w+)(?::(\w+))?\}")
_RUN_NUMBERS = itertools.count(1)

# One request as the emulator logged it: method, path below the tenant URL, status.
Request = tuple[str, str, int]


@dataclass(frozen=True)
class PolicyDiagnostic:
    policy: str
    level: str
    resource: str  # the resource's name ("" for a diagnostic without a URN)
    message: str


@dataclass
class StepRecord:
    command: str
    outcome: str  # ok | blocked | failed
    # None (here and below): the engine does not report it for this step (an offline
    # run that failed: OfflineRunError carries no RunResult).
    ops: tuple[str, ...] | None  # one per TenantEmailConfig, see by_resource
    violations: frozenset[PolicyDiagnostic] | None
    requests: dict[str, tuple[Request, ...]]  # per tenant role
    error: str = ""


@dataclass
class ScenarioRun:
    engine: str
    scenario: Scenario
    steps: list[StepRecord] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)  # final stack outputs, secrets masked
    # Final outputs of each TenantEmailConfig in state, by resource name (see state_view).
    state: dict[str, dict[str, Any]] = field(default_factory=dict)


class Tenants:
    """The fresh emulator tenants one engine uses for one scenario, by role."""

    def __init__(self, emulator: Emulator, scenario: Scenario, engine: str) -> None:
        self.emulator = emulator
        run = next(_RUN_NUMBERS)
        self.roles: dict[str, TenantInfo] = {
            role: emulator.add_tenant(f"c{run}-{scenario.name}-{engine}-{role}")
            for role in scenario.tenants
        }

    # -- placeholders -------------------------------------------------------------------

    def render(self, value: Any) -> Any:
        """Fill the scenario's placeholders in for these tenants (recursively)."""
        if isinstance(value, Secret):
            return Secret(self.render(value.value))
        if isinstance(value, str):
            return _PLACEHOLDER.sub(self._fill, value)
        if isinstance(value, Mapping):
            return {key: self.render(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.render(item) for item in value]
        return value

    def stack_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Stack config for these tenants; a list value becomes JSON (a program input)."""
        result: dict[str, Any] = {}
        for key, value in config.items():
            value = self.render(value)
            result[key] = json.dumps(value) if isinstance(value, list) else value
        return result

    def _fill(self, match: re.Match[str]) -> str:
        name, role = match.group(1), match.group(2)
        smtp = self.emulator.info["smtp"]
        if role is None:
            values = {
                "ca_file": self.emulator.ca_file,
                "smtp_user": smtp["username"],
                "smtp_password": smtp["password"],
            }
            return str(values[name])
        tenant = self.roles[role]
        return str({"url": tenant.url, "api_key": tenant.api_key,
                    "viewer_key": tenant.viewer_api_key}[name])

    def state_view(
        self, resources: Iterable[tuple[str, bool, Mapping[str, Any]]]
    ) -> dict[str, dict[str, Any]]:
        """(name, pending delete, outputs) of each resource in state, comparable.

        Secrets are masked (the engine stores ciphertext, the runner its own), and the
        tenant's `modification_time` is a timestamp of this run, so only its presence
        compares.
        """
        view: dict[str, dict[str, Any]] = {}
        for name, pending_delete, outputs in resources:
            key = f"{name} (pending delete)" if pending_delete else name
            view[key] = {
                field_name: MASK if is_secret(value)
                else ("<time>" if field_name == "modification_time" and value else
                      self.normalize(value))
                for field_name, value in outputs.items()
            }
        return view

    def normalize(self, value: Any) -> Any:
        """Tenant URLs and ids replaced by their role, so two engines' values compare."""
        if isinstance(value, str):
            for role, tenant in self.roles.items():
                value = value.replace(tenant.url, f"<url:{role}>")
                value = value.replace(tenant.tenant_id, f"<tenant_id:{role}>")
                value = value.replace(tenant.name, f"<tenant:{role}>")
            return value
        if isinstance(value, Mapping):
            return {key: self.normalize(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.normalize(item) for item in value]
        return value

    # -- the emulator -------------------------------------------------------------------

    def apply(self, action: Action) -> None:
        if isinstance(action, SetConfig):
            self.emulator.set_config(self.roles[action.tenant].name, action.fields)
        elif isinstance(action, DeleteConfig):
            tenant = self.roles[action.tenant]
            answer = requests.delete(
                tenant.url + EMAIL_PATH, headers={"Authorization": f"Bearer {tenant.api_key}"},
                verify=self.emulator.ca_file, timeout=30,
            )
            assert answer.status_code == 204, f"out-of-band delete failed: {answer.status_code}"
        elif isinstance(action, Fault):
            self.emulator.add_fault(self.roles[action.tenant].name, action.kind,
                                    **dict(action.params))
        elif isinstance(action, SmtpUser):
            self.emulator.add_smtp_user(action.username, action.password)
        else:  # pragma: no cover - the Action union is closed
            raise TypeError(f"unknown set-up action {action!r}")

    def mark(self) -> dict[str, int]:
        """How many requests each tenant has had so far (the start of a step)."""
        return {role: len(log) for role, log in self._logs().items()}

    def requests_since(self, mark: Mapping[str, int]) -> dict[str, tuple[Request, ...]]:
        return {role: tuple(log[mark[role]:]) for role, log in self._logs().items()}

    def _logs(self) -> dict[str, list[Request]]:
        by_name = {tenant.name: role for role, tenant in self.roles.items()}
        logs: dict[str, list[Request]] = {role: [] for role in self.roles}
        for entry in self.emulator.requests():
            role = by_name.get(entry["tenant"])
            if role is not None:
                logs[role].append((entry["method"], entry["path"], int(entry["status"])))
        return logs


def resource_name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1] if urn else ""


def by_resource(ops: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """(resource name, op) pairs as one op per resource, in resource-name order.

    Both engines step independent resources concurrently, so the order of their
    steps is not fixed; the name order is.
    """
    return tuple(op for _, op in sorted(ops, key=lambda pair: pair[0]))


def unmet_expectations(run: ScenarioRun) -> list[str]:
    """Where an engine did not do what the scenario's data says both engines do."""
    problems = []
    for number, (step, record) in enumerate(zip(run.scenario.steps, run.steps, strict=True), 1):
        where = f"{run.engine}, step {number} ({step.command})"
        if record.outcome != step.expect:
            problems.append(
                f"{where}: outcome {record.outcome!r}, expected {step.expect!r}"
                + (f"; error: {record.error}" if record.error else "")
            )
        if step.ops is not None and record.ops is not None and record.ops != step.ops:
            problems.append(f"{where}: operations {record.ops}, expected {step.ops}")
        if step.policies is not None and record.violations is not None:
            seen = {(v.policy, v.level) for v in record.violations}
            if seen != set(step.policies):
                problems.append(
                    f"{where}: policy diagnostics {sorted(seen)}, expected {sorted(step.policies)}"
                )
    return problems
