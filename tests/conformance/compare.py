"""Differences between two engines' runs of a scenario, and the allow-list that excuses some.

Compared per step: the outcome, the TenantEmailConfig operations, the policy
diagnostics (per policy) and the emulator's request log (per tenant role); per
scenario: the final stack outputs (per key) and the final outputs of each
TenantEmailConfig in state (per resource and key). The allow-list is the table in
ALLOWLIST.md beside this file: one row per excused difference, with the reason.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conformance.observe import PolicyDiagnostic, ScenarioRun

ALLOWLIST = Path(__file__).resolve().parent / "ALLOWLIST.md"
FINAL = "-"  # the "step" of a scenario-level aspect (the final outputs)
ABSENT = "<absent>"
COLUMNS = ("scenario", "step", "aspect", "what differs", "why")
SOMETIMES = "sometimes:"


@dataclass(frozen=True)
class Difference:
    scenario: str
    step: str  # "1", "2", ... or FINAL
    # outcome | ops | violations.<policy> | requests.<role> | outputs.<key>
    # | state.<resource>.<key>
    aspect: str
    offline: Any
    cli: Any

    def __str__(self) -> str:
        return (
            f"{self.scenario} step {self.step} {self.aspect}:\n"
            f"    offline: {self.offline!r}\n    cli:     {self.cli!r}"
        )


@dataclass(frozen=True)
class Allowed:
    """One row of ALLOWLIST.md. `step` is a number, `*` (any step) or `-` (final)."""

    scenario: str
    step: str
    aspect: str  # may use shell wildcards: `requests.*`
    what: str
    why: str

    def excuses(self, difference: Difference) -> bool:
        return (
            fnmatch.fnmatchcase(difference.scenario, self.scenario)
            and self.step in ("*", difference.step)
            and fnmatch.fnmatchcase(difference.aspect, self.aspect)
        )


def differences(offline: ScenarioRun, cli: ScenarioRun) -> list[Difference]:
    name = offline.scenario.name
    found: list[Difference] = []
    for number, (a, b) in enumerate(zip(offline.steps, cli.steps, strict=True), 1):
        step = str(number)
        if a.outcome != b.outcome:
            found.append(Difference(name, step, "outcome", a.outcome, b.outcome))
        if a.ops is not None and b.ops is not None and a.ops != b.ops:
            found.append(Difference(name, step, "ops", a.ops, b.ops))
        if a.violations is not None and b.violations is not None:
            for policy in sorted({v.policy for v in a.violations | b.violations}):
                mine, theirs = _of(a.violations, policy), _of(b.violations, policy)
                if mine != theirs:
                    found.append(Difference(name, step, f"violations.{policy}", mine, theirs))
        for role in sorted(set(a.requests) | set(b.requests)):
            mine_log, their_log = a.requests.get(role, ()), b.requests.get(role, ())
            if mine_log != their_log:
                found.append(Difference(name, step, f"requests.{role}", mine_log, their_log))
    found += _mapping_differences(name, "outputs", offline.outputs, cli.outputs)
    for resource in sorted(set(offline.state) | set(cli.state)):
        found += _mapping_differences(
            name, f"state.{resource}", offline.state.get(resource, {}),
            cli.state.get(resource, {}),
        )
    return found


def _mapping_differences(
    scenario: str, aspect: str, mine: Mapping[str, Any], theirs: Mapping[str, Any]
) -> list[Difference]:
    return [
        Difference(scenario, FINAL, f"{aspect}.{key}", mine.get(key, ABSENT),
                   theirs.get(key, ABSENT))
        for key in sorted(set(mine) | set(theirs))
        if mine.get(key, ABSENT) != theirs.get(key, ABSENT)
    ]


def _of(diagnostics: frozenset[PolicyDiagnostic], policy: str) -> list[tuple[str, str, str]]:
    return sorted((d.level, d.resource, d.message) for d in diagnostics if d.policy == policy)


def load_allowlist(path: Path = ALLOWLIST) -> list[Allowed]:
    """The rows of the table in ALLOWLIST.md (the first table with the expected header)."""
    rows: list[Allowed] = []
    in_table = False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.lstrip().startswith("|"):
            if in_table:
                break
            continue
        if tuple(c.lower() for c in cells) == COLUMNS:
            in_table = True
            continue
        if not in_table or set("".join(cells)) <= set("-: "):
            continue
        if len(cells) != len(COLUMNS):
            raise ValueError(f"{path.name}:{number}: expected {len(COLUMNS)} columns: {line}")
        scenario, step, aspect, what, why = (c.strip("`") if i < 3 else c
                                             for i, c in enumerate(cells))
        rows.append(Allowed(scenario, step, aspect, what, why))
    return rows


def unexcused(found: list[Difference], allowed: list[Allowed]) -> list[Difference]:
    return [d for d in found if not any(entry.excuses(d) for entry in allowed)]


def stale(found: list[Difference], allowed: list[Allowed], scenario: str) -> list[Allowed]:
    """Rows for this scenario that excuse nothing any more: the engines now agree there.

    A row whose "what differs" starts with `sometimes:` names a difference that
    depends on an order neither engine fixes; it is not stale when absent.
    """
    return [
        entry for entry in allowed
        if fnmatch.fnmatchcase(scenario, entry.scenario) and "*" not in entry.scenario
        and not entry.what.lower().startswith(SOMETIMES)
        and not any(entry.excuses(d) for d in found)
    ]
