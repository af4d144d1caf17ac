"""Differential conformance: the offline runner against the real Pulumi CLI (issue #11 item 3).

Every scenario of scenarios.py runs through the offline runner (always) and
through the real CLI (when it can run here; otherwise that half skips with the
reason). Each engine must do what the scenario's data expects, and the two runs
must agree per step on the outcome, the TenantEmailConfig operations, the policy
diagnostics and each tenant's request log, and on the final stack outputs,
unless ALLOWLIST.md names the difference with its reason. See docs/conformance.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qlik_email_resource.emulator import Emulator
from qlik_email_resource.offline.grpc_servers import AnalyzerServer
from tests.conformance.cli_engine import cli_unavailable, run_cli
from tests.conformance.compare import (
    Allowed,
    Difference,
    differences,
    load_allowlist,
    stale,
    unexcused,
)
from tests.conformance.observe import ScenarioRun, StepRecord, unmet_expectations
from tests.conformance.offline_engine import run_offline
from tests.conformance.scenarios import BY_NAME, SCENARIOS, SMTP_PASSWORDS, Scenario

# Runner divergences from the engine that the corpus found, reported to the runner's
# owner: scenario -> (why, whether the offline test shows it too). Strict: when the
# runner is fixed the test passes, the mark fails it, and the entry must go.
KNOWN_RUNNER_BUGS: dict[str, tuple[str, bool]] = {}


def cases(*, cli: bool) -> list[Any]:
    marked = []
    for scenario in SCENARIOS:
        reason, offline_too = KNOWN_RUNNER_BUGS.get(scenario.name, ("", False))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason and (
            cli or offline_too) else []
        marked.append(pytest.param(scenario, id=scenario.name, marks=marks))
    return marked


def leaked(run: ScenarioRun, emulator: Emulator) -> list[str]:
    """Secrets of the run's tenants or SMTP logins that show in what the engine reported."""
    text = repr((run.steps, run.outputs))
    canaries = {emulator.info["smtp"]["password"], *SMTP_PASSWORDS}
    for tenant in emulator.info["tenants"].values():
        canaries |= {tenant["api_key"], tenant["viewer_api_key"]}
    return sorted(c for c in canaries if c and c in text)


@pytest.mark.parametrize("scenario", cases(cli=False))
def test_offline_runner_does_what_the_scenario_expects(
    scenario: Scenario,
    qlik_emulator_session: Emulator,
    conformance_dir: Path,
    conformance_analyzer: AnalyzerServer,
    offline_runs: dict[str, ScenarioRun],
) -> None:
    run = run_offline(scenario, qlik_emulator_session, conformance_dir / "offline",
                      conformance_analyzer)
    offline_runs[scenario.name] = run
    assert unmet_expectations(run) == []
    assert leaked(run, qlik_emulator_session) == []


@pytest.mark.parametrize("scenario", cases(cli=True))
def test_real_cli_agrees_with_the_offline_runner(
    scenario: Scenario,
    qlik_emulator_session: Emulator,
    conformance_dir: Path,
    conformance_analyzer: AnalyzerServer,
    offline_runs: dict[str, ScenarioRun],
) -> None:
    reason = cli_unavailable()
    if reason:
        pytest.skip(reason)
    offline = offline_runs.get(scenario.name) or run_offline(
        scenario, qlik_emulator_session, conformance_dir / "offline", conformance_analyzer
    )
    cli = run_cli(scenario, qlik_emulator_session, conformance_dir / "cli")
    allowed = load_allowlist()
    found = differences(offline, cli)
    problems = [*unmet_expectations(cli), *map(str, unexcused(found, allowed))]
    problems += [
        f"ALLOWLIST.md row no longer needed (the engines agree): {row}"
        for row in stale(found, allowed, scenario.name)
    ]
    problems += [f"cli leaked {secret[:4]}..." for secret in leaked(cli, qlik_emulator_session)]
    assert not problems, "\n".join(problems)


# -- the comparison itself, without the CLI ----------------------------------------------


def test_allowlist_rows_name_known_scenarios_and_give_a_reason() -> None:
    rows = load_allowlist()
    for row in rows:
        assert row.scenario in BY_NAME or "*" in row.scenario, row
        assert row.step == "*" or row.step == "-" or row.step.isdigit(), row
        assert row.aspect.split(".")[0] in {"outcome", "ops", "violations", "requests",
                                            "outputs", "state"}, row
        assert len(row.why) > 20 and len(row.what) > 5, row


def test_a_difference_fails_unless_a_row_names_it() -> None:
    scenario = BY_NAME["lifecycle"]

    def run(engine: str, status: int, port: int) -> ScenarioRun:
        step = StepRecord("up", "ok", ("create",), frozenset(),
                          {"A": (("PUT", "/api/v1/transports/email-config", status),)})
        return ScenarioRun(engine, scenario, [step, step], {"port": port})

    same = differences(run("offline", 204, 2465), run("cli", 204, 2465))
    assert same == []
    found = differences(run("offline", 204, 2465), run("cli", 429, 465))
    assert [(d.step, d.aspect) for d in found] == [
        ("1", "requests.A"), ("2", "requests.A"), ("-", "outputs.port"),
    ]
    row = Allowed("lifecycle", "*", "requests.*", "the status", "a reason long enough")
    assert unexcused(found, [row]) == [found[2]]
    assert stale(found, [row], "lifecycle") == []
    unused = Allowed("lifecycle", "1", "outcome", "nothing", "a reason long enough")
    assert stale(found, [row, unused], "lifecycle") == [unused]
    sometimes = Allowed("lifecycle", "1", "outcome", "sometimes: x", "a reason long enough")
    assert stale(found, [row, sometimes], "lifecycle") == []
    assert isinstance(found[0], Difference) and "offline" in str(found[0])
