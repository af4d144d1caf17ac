"""What a fleet run tells its user: a line per finished tenant, then one table."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

# Results that count as a failure of the tenant (exit code 1).
FAILED = "failed"
BLOCKED = "blocked"  # a mandatory policy stopped the change: nothing was written
DETAIL_WIDTH = 100


@dataclass
class TenantResult:
    tenant: str
    result: str  # created | updated | unchanged | would create | would update | failed | blocked
    changed: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)  # "policy (level)"
    verification: str = "-"
    error: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.result in (FAILED, BLOCKED)


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret value in ``text``; the last line of defence before printing.

    The provider's helper: it also finds a secret that a server echoed escaped
    (repr, JSON \\u escapes, URL encoding, base64).
    """
    from qlik_email_resource.redaction import redact as redact_secrets

    return redact_secrets(text, secrets)


def _cell(values: Sequence[str], empty: str = "-") -> str:
    return ", ".join(values) if values else empty


def render_table(results: Sequence[TenantResult], operation: str) -> str:
    """The final report: one row per tenant, then each error in full below the table."""
    headers = ("TENANT", "RESULT", "CHANGED", "POLICY", "VERIFIED", "ERROR")
    rows = [
        (
            r.tenant,
            r.result,
            _cell(r.changed),
            _cell(r.violations),
            r.verification,
            "see below" if r.error else "-",
        )
        for r in sorted(results, key=lambda r: r.tenant)
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    failed = [r for r in results if r.failed]
    counts: dict[str, int] = {}
    for r in results:
        counts[r.result] = counts.get(r.result, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    out.append("")
    out.append(f"{operation}: {len(results)} tenants: {summary}")
    errors = [r for r in sorted(results, key=lambda r: r.tenant) if r.error]
    if errors:
        out.append("")
        out.append("Errors:")
        out += [f"  {r.tenant}: {r.error}" for r in errors]
    if failed:
        out.append("")
        out.append(
            f"{len(failed)} of {len(results)} tenants failed; the others are unaffected. "
            "Fix the errors above and run again: tenants already done are a no-op."
        )
    return "\n".join(out)


class Progress:
    """One line per finished tenant on stderr; on a terminal, a live counter too."""

    def __init__(self, total: int, operation: str, stream: TextIO | None = None) -> None:
        self.total = total
        self.operation = operation
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
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
            width = len(str(self.total))
            changed = [c for c in result.changed if c != "(new)"]
            detail = result.error.splitlines()[0] if result.error else _cell(changed, "")
            if len(detail) > DETAIL_WIDTH:  # the full text is in the table's error section
                detail = detail[: DETAIL_WIDTH - 3] + "..."
            line = (
                f"[{self.done:>{width}}/{self.total}] {result.tenant}: {result.result}"
                f"{f' ({detail})' if detail else ''} in {result.seconds:.1f}s"
            )
            if self.tty:
                self.stream.write("\r\033[K")
            self.stream.write(line + "\n")
            self._counter()
            self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def _counter(self) -> None:
        if not self.tty:
            return
        elapsed = time.monotonic() - self.started
        self.stream.write(
            f"\r\033[K{self.operation}: {self.done}/{self.total} done, {self.running} running, "
            f"{self.failed} failed, {elapsed:.0f}s"
        )
        self.stream.flush()
