"""What one stack operation did, in the demo's words: the settings it names, the ops."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qlik_email_resource.fleet.report import BLOCKED, FAILED, FieldChange, TenantResult
from qlik_email_resource.mapping import FIELDS

# The settings the demo names in its lines: every input of the field table but the
# secrets (the password is write-only, so no read can tell whether it drifted) and the
# tenant's URL (which tenant a stack is, not one of its settings). Outputs the tenant
# computes (modification_time...) are no inputs.
NAMED_SETTINGS = frozenset(f.name for f in FIELDS if not f.secret and f.name != "tenant_url")


@dataclass(frozen=True)
class StackRun:
    """A fleet backend's result for one stack operation, and the engine's own report."""

    result: TenantResult
    report: str

    @property
    def ok(self) -> bool:
        return self.result.result not in (FAILED, BLOCKED)

    @property
    def violations(self) -> list[str]:
        """Each policy that fired, as "name (level)"."""
        return [finding.label for finding in self.result.violations]


def named_settings(changes: Sequence[FieldChange]) -> list[str]:
    return sorted({change.field for change in changes} & NAMED_SETTINGS)


def ops(result: TenantResult) -> str:
    """The result word and the settings it changes, e.g. "updated (sender_name)"."""
    named = named_settings(result.changes)
    return result.result + (f" ({', '.join(named)})" if named else "")
