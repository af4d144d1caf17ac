"""The inline Pulumi program of one tenant's stack, shared by both backends.

Non-secret settings come from the tenants file (closed over); secrets come from
stack config as Pulumi secrets (`qlik:apiKey`, `email:emailPassword`, ...), so
the Automation API stores them encrypted and the offline runner keeps them
wrapped. The tenant URL and API key are passed on the resource itself: that is
what lets one provider process serve many tenants (see ARCHITECTURE.md,
"Fleet"). OAuth clients have no per-resource input, so they travel as provider
config (`qlik:clientId`, `qlik:clientSecret`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from qlik_email_resource.fleet.tenants import ResolvedTenant, Tenant

RESOURCE_NAME = "email-config"
RESOURCE_TYPE = "pulumi-python:dynamic/qlik:TenantEmailConfig"

# Outputs worth a column in the report; none of them is a secret.
EXPORTS = (
    "tenant_url",
    "tenant_id",
    "is_valid",
    "error_code",
    "status_reason",
    "server_address",
    "server_port",
    "security_type",
    "modification_time",
)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def stack_config(resolved: ResolvedTenant) -> dict[str, tuple[str, bool]]:
    """Stack config for a tenant: key -> (value, is_secret)."""
    tenant = resolved.tenant
    config: dict[str, tuple[str, bool]] = {"qlik:tenantUrl": (tenant.url, False)}
    if resolved.api_key:
        config["qlik:apiKey"] = (resolved.api_key, True)
    if resolved.client_id:
        config["qlik:clientId"] = (resolved.client_id, False)
    if resolved.client_secret:
        config["qlik:clientSecret"] = (resolved.client_secret, True)
    if tenant.ca_bundle:
        config["qlik:caBundle"] = (tenant.ca_bundle, False)
    for key, value in resolved.email_secrets.items():
        config[f"email:{camel(key)}"] = (value, True)
    return config


def tenant_program(tenant: Tenant) -> Callable[[], None]:
    """A program declaring this tenant's one TenantEmailConfig."""
    settings: Mapping[str, object] = dict(tenant.email)
    secret_keys = tuple(tenant.secret_env)
    with_api_key = tenant.api_key_env is not None

    def program() -> None:
        # Imported here: the program runs inside a Pulumi runtime (engine or mocks).
        import pulumi

        from qlik_email_resource import TenantEmailConfig, TenantEmailConfigArgs

        qlik = pulumi.Config("qlik")
        email = pulumi.Config("email")
        inputs: dict[str, Any] = dict(settings)
        inputs["tenant_url"] = qlik.require("tenantUrl")
        if with_api_key:
            inputs["api_key"] = qlik.require_secret("apiKey")
        for key in secret_keys:
            inputs[key] = email.require_secret(camel(key))
        resource = TenantEmailConfig(RESOURCE_NAME, TenantEmailConfigArgs(**inputs))
        for name in EXPORTS:
            pulumi.export(name, getattr(resource, name))

    return program
