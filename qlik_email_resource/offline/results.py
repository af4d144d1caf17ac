"""What a run of the offline runner gives back: steps, violations, errors, the header."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

HEADER = (
    "offline runner (pulumi.runtime mocks + real provider and policy servers); "
    "this is not the Pulumi CLI"
)

OPS = ("create", "update", "replace", "same", "delete", "read")
# A value a preview cannot know yet (the provider computes it), as the CLI prints one.
UNKNOWN = "[unknown]"


class Secret:
    """A config value to pass as a Pulumi secret (``pulumi config set --secret``).

    The value never shows in ``repr``/``str``, so a config dict can be logged.
    """

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "Secret('[secret]')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.value == self.value

    def __hash__(self) -> int:
        return hash(("Secret", self.value))


@dataclass(frozen=True)
class Step:
    """One resource operation, as the Pulumi CLI would list it in its plan."""

    urn: str
    type: str
    op: str
    changed_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class Violation:
    """A policy diagnostic from the real analyzer (``level``: advisory | mandatory | ...)."""

    policy: str
    level: str
    message: str
    urn: str = ""


@dataclass
class RunResult:
    operation: str
    project: str
    stack: str
    ok: bool = True
    steps: list[Step] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)
    header: str = HEADER
    warnings: list[str] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, int]:
        counts = Counter(step.op for step in self.steps)
        return {op: counts[op] for op in OPS if counts[op]}

    @property
    def changed(self) -> bool:
        return any(step.op not in ("same", "read") for step in self.steps) or any(
            step.op == "read" and step.changed_fields for step in self.steps
        )

    def report(self) -> str:
        """A short human-readable account, headed by the not-the-CLI notice."""
        lines = [f"[{self.header}]", f"{self.operation} {self.project}/{self.stack}:"]
        for step in self.steps:
            fields = f" ({', '.join(step.changed_fields)})" if step.changed_fields else ""
            lines.append(f"  {step.op:<8} {step.urn}{fields}")
        for v in self.violations:
            lines.append(f"  policy {v.level} {v.policy}: {v.message.splitlines()[-1]}")
        lines.extend(f"  warning: {w}" for w in self.warnings)
        if self.outputs:
            lines.append("  outputs:")
            lines.extend(f"    {k}: {v}" for k, v in sorted(self.outputs.items()))
        summary = ", ".join(f"{n} {op}" for op, n in self.summary.items()) or "no resources"
        lines.append(f"  {'ok' if self.ok else 'FAILED'}: {summary}")
        return "\n".join(lines)


class OfflineRunError(Exception):
    """The program, a provider call or the state failed; the message names cause and fix.

    ``result``: what the failed operation did before it stopped (the steps that
    completed, the policy findings so far, ``ok`` False), or None when it failed
    before running anything (a bad state file, config or lock).
    """

    result: RunResult | None = None


class PolicyViolationError(OfflineRunError):
    """A mandatory policy failed.

    ``stage`` says when, as the engine decides it: ``"preview"`` (``up`` wrote
    nothing), ``"apply"`` (a resource's check in the update pass: that resource was
    not changed, what the run did before it is saved) or ``"stack"`` (the stack
    policies on the final outputs: the update was applied and saved).
    """

    def __init__(
        self, violations: list[Violation], result: RunResult | None = None, *,
        stage: str = "preview",
    ) -> None:
        self.violations = violations
        self.result = result
        self.stage = stage
        names = ", ".join(sorted({v.policy for v in violations}))
        details = "; ".join(f"{v.policy}: {v.message.splitlines()[-1]}" for v in violations)
        outcome = {
            "preview": "nothing was written",
            "apply": "the resource it names was not changed; what this run did before it "
            "is saved in state",
            "stack": "the stack fails it after the update, which was applied and saved",
        }[stage]
        super().__init__(
            f"mandatory policy violation ({names}); {outcome}. {details}. "
            "Fix the stack config or the program, or set the policy's enforcementLevel."
        )
