"""What a stack operation means for a tenant, the same words for both backends.

Turns an engine step (``create``, ``update``, ``same`` ...) into the RESULT word,
the fields it changes into ``old → new`` pairs (secrets only as "changed"), a
refresh into drift, and the tenant's own verdict on its configuration into
VERIFIED.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qlik_email_resource import secret_wire
from qlik_email_resource.fleet.report import NEW, FieldChange, PolicyFinding
from qlik_email_resource.fleet.tenants import Tenant
from qlik_email_resource.mapping import (
    API_FIELDS,
    SECRET_INPUTS,
    WRITE_ONLY,
    same_value,
    struct_number,
)

# What the engine's JSON events show in place of a secret (show_secrets=False).
MASKED = "[secret]"
# Drift is about the settings a tenant holds; status outputs (isValid,
# modificationTime, authFailures) change on their own and are reported as VERIFIED.
DRIFT_FIELDS = (*API_FIELDS, "password_exists")
GONE = FieldChange("(configuration deleted outside the stack)")
DELETED = FieldChange("(configuration deleted)")


@dataclass(frozen=True)
class RunOptions:
    """How each stack runs: refresh first (the default), fail on any change."""

    refresh: bool = True
    expect_no_changes: bool = False


def result_word(op: str, preview: bool) -> str:
    words = {
        "create": "created",
        "update": "updated",
        "replace": "replaced",
        "delete": "deleted",
        "same": "unchanged",
        "read": "refreshed",
    }
    word = words.get(op, op)
    if preview and word != "unchanged":
        return f"would {op}"
    return word


def verification(outputs: Mapping[str, Any]) -> str:
    """How the tenant judged the configuration it holds (its `isValid`), or "-"."""
    valid = _plain(outputs.get("is_valid"))[0]
    if valid is True:
        return "valid"
    if valid is False:
        code = (
            _plain(outputs.get("error_code"))[0]
            or _plain(outputs.get("status_reason"))[0]
            or "unknown error"
        )
        return f"invalid ({code})"
    return "-"


def desired_inputs(tenant: Tenant) -> dict[str, Any]:
    """The inputs the fleet's program declares for a tenant (secrets only by name)."""
    desired: dict[str, Any] = {**tenant.email, "tenant_url": tenant.url}
    for key in tenant.secret_env:
        desired[key] = MASKED
    if tenant.api_key_env:
        desired["api_key"] = MASKED
    return desired


def changes_from(
    op: str,
    old: Any,
    new: Mapping[str, Any],
    fields: Iterable[str] = (),
) -> list[FieldChange]:
    """``old → new`` for each changed field; ``old`` is the prior state (a mapping of
    outputs, or offline state's resource), ``new`` the desired inputs."""
    if op == "create":
        return [NEW]
    if op == "delete":
        return [DELETED]
    if op == "same":
        return []
    before = _outputs(old)
    changes = []
    for name in sorted(f for f in fields if not f.startswith("__")):
        old_value, old_secret = _plain(before.get(name))
        new_value, new_secret = _plain(new.get(name))
        if name in SECRET_INPUTS or old_secret or new_secret:
            changes.append(FieldChange(name, secret=True))
        else:
            changes.append(FieldChange(name, old_value, new_value))
    return changes


def drift_from(before: Any, after: Any) -> list[FieldChange]:
    """What the refresh found the tenant holding that state did not record."""
    if before is None:
        return []
    if after is None:
        return [GONE]
    old, new = _outputs(before), _outputs(after)
    drift = []
    for name in DRIFT_FIELDS:
        old_value, old_secret = _plain(old.get(name))
        new_value, new_secret = _plain(new.get(name))
        if same_value(name, old_value, new_value):
            continue
        secret = name in SECRET_INPUTS or old_secret or new_secret
        drift.append(
            FieldChange(name, secret=True) if secret else FieldChange(name, old_value, new_value)
        )
    return drift


def changed_settings(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Settings whose new input differs from the old state (secrets cannot be compared)."""
    names = [n for n in (*API_FIELDS, "tenant_url") if n not in WRITE_ONLY]
    return sorted(
        n for n in names if not same_value(n, _plain(old.get(n))[0], _plain(new.get(n))[0])
    )


def blocked_message(findings: Sequence[PolicyFinding]) -> str:
    """Why a tenant was blocked, in the mandatory policies' own words."""
    mandatory = [f for f in findings if f.level == "mandatory"]
    details = "; ".join(
        f"{f.policy}: {f.message.strip().splitlines()[-1]}" if f.message.strip() else f.policy
        for f in mandatory
    )
    return f"blocked by a mandatory policy, nothing was written: {details}"


def _outputs(resource: Any) -> Mapping[str, Any]:
    if resource is None:
        return {}
    if isinstance(resource, Mapping):
        return resource
    return getattr(resource, "outputs", {}) or {}


def _plain(value: Any) -> tuple[Any, bool]:
    """(value, is_secret) of a state value, an event value or a plain one."""
    # Pulumi's wire wrapper of a secret value, as offline state holds it.
    if secret_wire.is_wrapped(value):
        return None, True
    if value == MASKED:
        return None, True
    return struct_number(value), False
