"""What one stack operation did, in the demo's words: the settings it names, the ops."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qlik_email_resource.fleet.report import BLOCKED, FAILED, FieldChange, TenantResult

# The settings of examples/tenants.yaml by provider input name, with the repo
# program's `email:` key for each (Pulumi.yaml; a test checks both sides).
PROGRAM_KEYS = {
    "server_address": "serverAddress",
    "server_port": "serverPort",
    "security_type": "securityType",
    "username": "username",
    "email_address": "emailAddress",
    "email_password": "password",
    "sender_name": "senderName",
    "verify_connection": "verifyConnection",
    "test_email_recipient": "testEmailRecipient",
}
# The settings the demo names in its lines. Outputs the tenant computes
# (modification_time...) are left out, and so is the password: it is write-only,
# so no read can tell whether it drifted.
NAMED_SETTINGS = frozenset(PROGRAM_KEYS) - {"email_password"}


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
