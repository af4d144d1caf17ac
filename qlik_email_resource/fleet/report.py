"""What a fleet run tells its user: progress while it runs, then one table (and JSON)."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from qlik_email_resource.redaction import redact

# Results that count as a failure of the tenant (see EXIT_* in cli.py).
FAILED = "failed"
BLOCKED = "blocked"  # a mandatory policy stopped the change: nothing was written
UNCHANGED = "unchanged"
DETAIL_WIDTH = 100
CELL_WIDTH = 60  # one CHANGED entry in the table; the JSON report has the whole value
ARROW = "→"


@dataclass(frozen=True)
class FieldChange:
    """One setting that differs: what the tenant (or state) held and what it gets.

    A secret's values are never kept: ``secret`` says it changed, nothing more.
    ``old`` is None for a field that was not set before.
    """

    field: str
    old: Any = None
    new: Any = None
    secret: bool = False

    @property
    def marker(self) -> bool:
        """A whole-configuration event ("(new)", "(configuration deleted)"), not a field."""
        return self.field.startswith("(")

    def text(self, width: int = CELL_WIDTH) -> str:
        if self.marker:
            return self.field
        if self.secret:
            return f"{self.field} (changed)"
        text = f"{self.field}: {_shown(self.old)} {ARROW} {_shown(self.new)}"
        return text if len(text) <= width else text[: width - 3] + "..."

    def as_json(self) -> dict[str, Any]:
        if self.marker:
            return {"field": self.field}
        if self.secret:
            return {"field": self.field, "secret": True}
        return {"field": self.field, "old": self.old, "new": self.new, "secret": False}


NEW = FieldChange("(new)")  # a first deployment: every setting is new


@dataclass(frozen=True)
class PolicyFinding:
    """A policy the tenant's configuration fails, with the pack's own message."""

    policy: str
    level: str  # advisory | mandatory | remediate
    message: str = ""

    @property
    def label(self) -> str:
        return f"{self.policy} ({self.level})"


@dataclass
class TenantResult:
    tenant: str
    # created | updated | replaced | unchanged | deleted | would create | would update |
    # would replace | would delete | drifted | failed | blocked
    result: str
    changes: list[FieldChange] = field(default_factory=list)
    violations: list[PolicyFinding] = field(default_factory=list)
    # What the tenant reported in this run ("valid", "invalid (CODE)"), "-" if not asked.
    verification: str = "-"
    error: str = ""
    seconds: float = 0.0
    # Settings that differed between state and the tenant, as the refresh found them.
    drift: list[FieldChange] = field(default_factory=list)
    # --expect-no-changes and this tenant had (or would have) changes.
    unexpected_changes: bool = False

    @property
    def failed(self) -> bool:
        return self.result in (FAILED, BLOCKED) or self.unexpected_changes

    @property
    def changed(self) -> bool:
        return bool(self.changes) or self.result not in (UNCHANGED, FAILED, BLOCKED)

    def as_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "result": self.result,
            "changes": [c.as_json() for c in self.changes],
            "drift": [c.as_json() for c in self.drift],
            "policy": [
                {"policy": v.policy, "level": v.level, "message": v.message}
                for v in self.violations
            ],
            "verification": self.verification,
            "error": self.error or None,
            "unexpected_changes": self.unexpected_changes,
            "seconds": round(self.seconds, 3),
        }


def redact_changes(changes: Sequence[FieldChange], secrets: Iterable[str]) -> list[FieldChange]:
    """``changes`` with any secret value scrubbed from the old and new values: a
    password pasted into ``sender_name`` must not reach the table or the JSON."""
    values = [s for s in secrets if s]

    def clean(value: Any) -> Any:
        return redact(value, values) if isinstance(value, str) and values else value

    return [
        FieldChange(c.field, clean(c.old), clean(c.new), c.secret) for c in changes
    ]


def _shown(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # ports arrive as floats from protobuf
    return repr(value) if isinstance(value, str) else str(value)


def _cell(values: Sequence[str], empty: str = "-") -> str:
    return ", ".join(values) if values else empty


def summary_line(results: Sequence[TenantResult], operation: str) -> str:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.result] = counts.get(r.result, 0) + 1
    parts = [f"{n} {k}" for k, n in sorted(counts.items())]
    drifted = sum(1 for r in results if r.drift and r.result != "drifted")
    if drifted:
        parts.append(f"{drifted} drifted")
    return f"{operation}: {len(results)} tenants: {', '.join(parts)}"


# The final table, column by column: a header and how a tenant's result fills it.
COLUMNS: tuple[tuple[str, Callable[[TenantResult], str]], ...] = (
    ("TENANT", lambda r: r.tenant),
    ("RESULT", lambda r: r.result),
    ("CHANGED", lambda r: _cell([c.text() for c in r.changes])),
    ("POLICY", lambda r: _cell([v.label for v in r.violations])),
    ("VERIFIED", lambda r: r.verification),
    ("ERROR", lambda r: "see below" if r.error else "-"),
)


def render_table(results: Sequence[TenantResult], operation: str) -> str:
    """The final report: one row per tenant, then each error in full below the table."""
    headers = [header for header, _ in COLUMNS]
    rows = [[cell(r) for _, cell in COLUMNS] for r in sorted(results, key=lambda r: r.tenant)]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    out.append("")
    out.append(summary_line(results, operation))
    errors = [r for r in sorted(results, key=lambda r: r.tenant) if r.error]
    if errors:
        out.append("")
        out.append("Errors:")
        out += [f"  {r.tenant}: {r.error}" for r in errors]
    unexpected = [r.tenant for r in results if r.unexpected_changes]
    if unexpected:
        out.append("")
        out.append(
            f"--expect-no-changes: {len(unexpected)} tenant(s) had changes: "
            f"{', '.join(sorted(unexpected))}"
        )
    failed = [r for r in results if r.result in (FAILED, BLOCKED)]
    if failed:
        out.append("")
        out.append(
            f"{len(failed)} of {len(results)} tenants failed or were blocked; the others are "
            "unaffected. Fix the errors above and run again: tenants already done are a no-op."
        )
    return "\n".join(out)


def write_json(
    path: str | os.PathLike[str],
    results: Sequence[TenantResult],
    *,
    operation: str,
    project: str,
    backend: str,
    exit_code: int,
    seconds: float,
    options: Mapping[str, Any] | None = None,
) -> None:
    """The whole report, for CI: one object per tenant, in tenants-file order."""
    counts: dict[str, int] = {}
    for r in results:
        counts[r.result] = counts.get(r.result, 0) + 1
    document = {
        "operation": operation,
        "project": project,
        "backend": backend,
        "options": dict(options or {}),
        "exit_code": exit_code,
        "seconds": round(seconds, 3),
        "summary": counts,
        "tenants": [r.as_json() for r in results],
    }
    write_atomic(path, json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    # Write beside the target, then rename: a CI job never reads half a report.
    target = os.fspath(path)
    temp = f"{target}.tmp-{os.getpid()}"
    with open(temp, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temp, target)


def is_live_terminal(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """A person watching: a tty, and not a CI runner (some give jobs a pseudo-tty)."""
    env = os.environ if environ is None else environ
    if env.get("CI", "").strip().lower() in ("1", "true", "yes"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """Progress on stderr.

    On a terminal: a live counter, and a line per finished tenant. In a CI log (not
    a tty, or CI=true): no counter and no control characters, and a line only for a
    tenant that changed, failed or was blocked, so a converged fleet prints nothing.
    """

    def __init__(
        self,
        total: int,
        operation: str,
        stream: TextIO | None = None,
        *,
        live: bool | None = None,
    ) -> None:
        self.total = total
        self.operation = operation
        self.stream = stream if stream is not None else sys.stderr
        self.tty = is_live_terminal(self.stream) if live is None else live
        self.done = 0
        self.running = 0
        self.failed = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()

    def start(self, tenant: str) -> None:
        with self._lock:
            self.running += 1
            self._counter()

    def finish(self, result: TenantResult) -> None:
        with self._lock:
            self.running -= 1
            self.done += 1
            self.failed += result.failed
            if self.tty:
                self.stream.write("\r\033[K")
            if self.tty or result.failed or result.changed:
                self.stream.write(self._line(result) + "\n")
            self._counter()
            self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def _line(self, result: TenantResult) -> str:
        width = len(str(self.total))
        changed = [c.field for c in result.changes if not c.marker]
        detail = result.error.splitlines()[0] if result.error else _cell(changed, "")
        if len(detail) > DETAIL_WIDTH:  # the full text is in the table's error section
            detail = detail[: DETAIL_WIDTH - 3] + "..."
        return (
            f"[{self.done:>{width}}/{self.total}] {result.tenant}: {result.result}"
            f"{f' ({detail})' if detail else ''} in {result.seconds:.1f}s"
        )

    def _counter(self) -> None:
        if not self.tty:
            return
        elapsed = time.monotonic() - self.started
        self.stream.write(
            f"\r\033[K{self.operation}: {self.done}/{self.total} done, {self.running} running, "
            f"{self.failed} failed, {elapsed:.0f}s"
        )
        self.stream.flush()
