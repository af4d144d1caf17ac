"""A scenario through the offline runner (`OfflineStack`), observed as a `ScenarioRun`.

Each step is a new `OfflineStack` on the scenario's state file, as each CLI
command is a new engine run with new provider and policy-pack processes: a
provider configured by an earlier step must not leak its config into the next.
The policy pack's analyzer is shared by the whole corpus (one policy config).
"""

from __future__ import annotations

from pathlib import Path

from qlik_email_resource.emulator import Emulator
from qlik_email_resource.offline import (
    OfflineRunError,
    OfflineStack,
    PolicyViolationError,
    RunResult,
)
from qlik_email_resource.offline.grpc_servers import AnalyzerServer
from qlik_email_resource.policy_pack.rules import RESOURCE_TYPE
from qlik_email_resource.secret_wire import is_wrapped as is_secret
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
    Scenario,
)

ENGINE = "offline"


def run_offline(
    scenario: Scenario, emulator: Emulator, workdir: Path, analyzer: AnalyzerServer
) -> ScenarioRun:
    tenants = Tenants(emulator, scenario, ENGINE)
    run = ScenarioRun(ENGINE, scenario)
    state_file = workdir / f"{scenario.stack}.json"
    for step, config in scenario.configured_steps():
        for action in step.setup:
            tenants.apply(action)
        mark = tenants.mark()
        stack = OfflineStack(
            PROGRAMS[scenario.program], stack=scenario.stack, config=tenants.stack_config(config),
            state_file=state_file, analyzer=analyzer, policy_config=POLICY_CONFIG, quiet=True,
        )
        with stack:
            record = _step(stack, step.command, tenants)
        record.requests = {
            role: tuple(log) for role, log in tenants.requests_since(mark).items()
        }
        run.steps.append(record)
    if state_file.exists():
        with OfflineStack(PROGRAMS[scenario.program], stack=scenario.stack,
                          state_file=state_file, quiet=True) as reader:
            state = reader.state()
        run.outputs = {
            key: MASK if is_secret(value) else tenants.normalize(value)
            for key, value in state.outputs.items()
        }
        run.state = tenants.state_view(
            (r.name, r.delete, r.outputs) for r in state.resources if r.type == RESOURCE_TYPE
        )
    return run


def _step(stack: OfflineStack, command: str, tenants: Tenants) -> StepRecord:
    result: RunResult | None = None
    error = ""
    try:
        result = getattr(stack, command)()
        outcome = OK
        if command == "preview" and not result.ok:
            # preview reports a mandatory violation instead of raising
            outcome = BLOCKED
    except PolicyViolationError as exc:
        outcome, result, error = BLOCKED, exc.result, str(exc)
    except OfflineRunError as exc:
        # The runner's error carries no RunResult, so its diagnostics are unknown here.
        outcome, error = FAILED, str(exc)
    ops = None
    violations = None
    if result is not None:
        ops = by_resource((resource_name(s.urn), s.op) for s in result.steps
                          if s.type == RESOURCE_TYPE)
        violations = frozenset(
            PolicyDiagnostic(v.policy, v.level, resource_name(v.urn),
                             tenants.normalize(v.message.strip()))
            for v in result.violations
        )
    return StepRecord(command, outcome, ops, violations, {}, tenants.normalize(error))
