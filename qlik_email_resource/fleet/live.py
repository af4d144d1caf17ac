"""Reading a tenant's live email configuration from the fleet process itself.

The audit reads every tenant this way, and the offline backend does too before a
refresh: when what the tenant holds is exactly what state records, the refresh
would change nothing, so it is skipped (and with it the serialised runner's Read
and state write). Reads are plain HTTP, so they run concurrently; the decision
uses the provider's own mapping (``mapping.outputs``), not a copy of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qlik_email_resource import mapping
from qlik_email_resource.client import QlikClient
from qlik_email_resource.fleet.tenants import ResolvedTenant
from qlik_email_resource.settings import Settings

# What a refresh rewrites in state (mapping.outputs overlays exactly these).
REFRESHED = (*mapping.API_FIELDS, *mapping.STATUS_OUTPUTS)


def client_for(resolved: ResolvedTenant) -> QlikClient:
    """A client with the tenant's credentials from the tenants file."""
    tenant = resolved.tenant
    return QlikClient(
        Settings(
            tenant_url=tenant.url,
            api_key=resolved.api_key,
            client_id=resolved.client_id,
            client_secret=resolved.client_secret,
            ca_bundle=tenant.ca_bundle,
        )
    )


def read_answer(resolved: ResolvedTenant) -> dict[str, Any]:
    """One GET of the tenant's email configuration (Qlik's answer, as sent)."""
    client = client_for(resolved)
    try:
        return client.get_config()
    finally:
        client.close()


def refresh_would_change(state_outputs: Mapping[str, Any], answer: Mapping[str, Any]) -> bool:
    """Whether a refresh of state holding ``state_outputs`` would record anything new.

    ``state_outputs`` are plain values (secrets unwrapped or absent): the fields
    compared are never secret.
    """
    if not mapping.is_configured(answer):
        return True  # deleted outside the stack: the refresh drops it from state
    refreshed = mapping.outputs(state_outputs, answer)
    # Exact, but for protobuf's floats: a blank that becomes unset is a change of state.
    return any(
        mapping.struct_number(state_outputs.get(k)) != mapping.struct_number(refreshed.get(k))
        for k in REFRESHED
    )
