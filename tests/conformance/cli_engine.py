"""A scenario through the real Pulumi CLI (Automation API), observed as a `ScenarioRun`.

Driven through tests/cli/clienv.py (the CLI that `make cli` builds, a private
PULUMI_HOME and file backend): the program runs as an inline program that executes
the program's `__main__.py` in a copy of its directory, so the CLI validates the
config against that program's own Pulumi.yaml; the policy pack runs as an
executable analyzer plugin (docs/cli.md says why there is no Python language host).

`up` here is `pulumi up`, a preview and then the update: the Automation API's
`up` is `up --skip-preview`, so `preview` runs first and the update only if it
passed. That is what the offline runner's `up` models (and what a user sees).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qlik_email_resource.emulator import Emulator
from qlik_email_resource.offline import Secret
from qlik_email_resource.policy_pack.rules import RESOURCE_TYPE
from tests.cli.clienv import CliEnv, CliProject, why_no_cli
from tests.conformance.observe import (
    MASK,
    PolicyDiagnostic,
    ScenarioRun,
    StepRecord,
    Tenants,
    by_resource,
    resource_name,
)
from tests.conformance.scenarios import (
    BLOCKED,
    FAILED,
    OK,
    POLICY_CONFIG,
    PROGRAMS,
    ROOT,
    Scenario,
)

ENGINE = "cli"


def cli_unavailable() -> str | None:
    """Why the CLI half cannot run here (one line), or None."""
    return why_no_cli()


def run_cli(scenario: Scenario, emulator: Emulator, workdir: Path) -> ScenarioRun:
    from pulumi import automation as auto

    tenants = Tenants(emulator, scenario, ENGINE)
    run = ScenarioRun(ENGINE, scenario)
    cli = CliEnv.create(workdir)
    project = cli.project(PROGRAMS[scenario.program], name=scenario.stack)
    stack = project.stack(scenario.stack)
    policy = _policy_args(cli)
    applied: dict[str, Any] = {}
    try:
        for step, config in scenario.configured_steps():
            for action in step.setup:
                tenants.apply(action)
            mark = tenants.mark()
            events = Events(tenants)
            try:
                applied = _configure(project, stack, tenants.stack_config(config), applied)
                _command(stack, step.command, policy, events)
                outcome, error = OK, ""
            except auto.CommandError as exc:
                outcome = BLOCKED if events.mandatory else FAILED
                error = events.error() or _last_line(str(getattr(exc, "stderr", "") or exc))
            run.steps.append(StepRecord(
                step.command, outcome, events.ops(), frozenset(events.violations),
                {role: tuple(log) for role, log in tenants.requests_since(mark).items()},
                tenants.normalize(error),
            ))
        run.outputs = {
            key: MASK if value.secret else tenants.normalize(value.value)
            for key, value in stack.outputs().items()
        }
        deployment = stack.export_stack().deployment or {}
        run.state = tenants.state_view(
            (resource_name(r["urn"]), bool(r.get("delete")), r.get("outputs") or {})
            for r in deployment.get("resources") or [] if r.get("type") == RESOURCE_TYPE
        )
    finally:
        stack.workspace.remove_stack(stack.name, force=True)
    return run


class Events:
    """What one command's engine events say: operations, policy diagnostics, errors."""

    def __init__(self, tenants: Tenants) -> None:
        self.tenants = tenants
        self.raw_ops: list[tuple[str, str]] = []  # (urn, op) of each step as it starts
        self.results: dict[str, str] = {}  # urn -> the op the step ended as
        self.violations: set[PolicyDiagnostic] = set()
        self.mandatory = False
        self.errors: list[str] = []

    def reset_ops(self) -> None:
        # `up` = preview + update: the update's operations are the step's.
        self.raw_ops.clear()
        self.results.clear()

    def handle(self, event: Any) -> None:
        pre = event.resource_pre_event
        if pre is not None and pre.metadata.type == RESOURCE_TYPE:
            self.raw_ops.append((pre.metadata.urn, _op(pre.metadata.op)))
        done = event.res_outputs_event
        if done is not None and done.metadata.type == RESOURCE_TYPE:
            self.results[done.metadata.urn] = _op(done.metadata.op)
        policy = event.policy_event
        if policy is not None:
            level = str(policy.enforcement_level)
            self.mandatory |= level == "mandatory"
            self.violations.add(PolicyDiagnostic(
                policy.policy_name, level, resource_name(policy.resource_urn or ""),
                self.tenants.normalize(policy.message.strip()),
            ))
        diagnostic = event.diagnostic_event
        if diagnostic is not None and diagnostic.severity == "error":
            self.errors.append(diagnostic.message.strip())

    def ops(self) -> tuple[str, ...]:
        """The engine's steps in the offline runner's words, one per resource."""
        per_urn: dict[str, list[str]] = {}
        for urn, op in self.raw_ops:
            per_urn.setdefault(urn, []).append(op)
        return by_resource((resource_name(urn), self._word(urn, ops))
                           for urn, ops in per_urn.items())

    def _word(self, urn: str, ops: list[str]) -> str:
        if {"create-replacement", "delete-replaced", "replace"} & set(ops):
            # A replacement is three engine steps; the offline runner reports one.
            return "replace"
        if ops == ["refresh"]:
            # The engine's RefreshStep ends as delete when the resource is gone
            # (step.go, RefreshStep.ResultOp); the runner says read or delete.
            return "delete" if self.results.get(urn) == "delete" else "read"
        return "+".join(ops)

    def error(self) -> str:
        return " | ".join(line for text in self.errors for line in [_last_line(text)] if line)


def _policy_args(cli: CliEnv) -> dict[str, Any]:
    config_file = cli.workdir / "policy-config.json"
    config_file.write_text(json.dumps(POLICY_CONFIG))
    return {
        "policy_packs": [cli.policy_pack(ROOT / "policies")],
        "policy_pack_configs": [str(config_file)],
    }


def _configure(
    project: CliProject, stack: Any, config: dict[str, Any], applied: dict[str, Any]
) -> dict[str, Any]:
    """Set what changed since the last step; secrets through stdin, never on argv."""
    from pulumi import automation as auto

    for key in sorted(set(applied) - set(config)):
        stack.remove_config(key)
    changed = {k: v for k, v in config.items() if applied.get(k) != v}
    plain = {k: str(v) for k, v in changed.items() if not isinstance(v, Secret)}
    if plain:
        stack.set_all_config({k: auto.ConfigValue(value=v) for k, v in plain.items()})
    secrets = {k: v.value for k, v in changed.items() if isinstance(v, Secret)}
    if secrets:
        project.configure(stack.name, {}, secrets=secrets)
    return dict(config)


def _command(stack: Any, command: str, policy: dict[str, Any], events: Events) -> None:
    common: dict[str, Any] = {"on_event": events.handle, "color": "never"}
    if command == "preview":
        stack.preview(**common, **policy)
    elif command == "up":
        stack.preview(**common, **policy)
        events.reset_ops()
        stack.up(**common, **policy)
    elif command == "refresh":
        stack.refresh(**common)
    elif command == "destroy":
        stack.destroy(**common)
    else:
        raise ValueError(f"unknown command {command!r}")


def _op(op: Any) -> str:
    return str(getattr(op, "value", op))


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
