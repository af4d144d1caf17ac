"""What users declare: ``TenantEmailConfig`` and its typed ``TenantEmailConfigArgs``.

    from qlik_email_resource import TenantEmailConfig, TenantEmailConfigArgs

    TenantEmailConfig("email", TenantEmailConfigArgs(
        server_address="email-smtp.eu-west-2.amazonaws.com", server_port=2465,
        security_type="SSL/TLS", email_address="qlik@example.com",
        username="SKIA...", email_password=config.require_secret("smtpPassword"),
    ))

The config is a singleton per tenant, so creating the resource adopts whatever
the tenant has (Python dynamic resources cannot be ``pulumi import``-ed).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic

from qlik_email_resource.mapping import OUTPUTS, SECRET_INPUTS
from qlik_email_resource.provider import TenantEmailConfigProvider
from qlik_email_resource.sdk_patches import unwrap_batch_setitems


@dataclass
class TenantEmailConfigArgs:
    """Desired email configuration of one Qlik Cloud tenant.

    BasicAuth (SMTP, the default) needs ``server_address``, ``server_port``,
    ``security_type`` (``none`` | ``StartTLS`` | ``SSL/TLS``) and
    ``email_address``, plus ``username`` with ``email_password`` when the server
    wants a login. ``service_provider="Microsoft365"`` needs ``client_id``,
    ``client_secret``, ``provider_tenant_id`` and ``email_address``.

    ``tenant_url`` and ``api_key`` override the stack's ``qlik:tenantUrl`` /
    ``qlik:apiKey`` for this resource (one stack, many tenants).
    ``verify_connection=True`` makes every apply check the SMTP login;
    ``test_email_recipient`` makes every apply send a test email there.
    """

    # Written out, not generated from mapping.FIELDS, so that IDEs and type checkers see
    # them; tests/mapping/test_field_table.py checks names and types against the table.
    email_address: pulumi.Input[str] | None = None
    server_address: pulumi.Input[str] | None = None
    server_port: pulumi.Input[int] | None = None
    security_type: pulumi.Input[str] | None = None
    username: pulumi.Input[str] | None = None
    email_password: pulumi.Input[str] | None = None
    sender_name: pulumi.Input[str] | None = None
    service_provider: pulumi.Input[str] | None = None
    client_id: pulumi.Input[str] | None = None
    client_secret: pulumi.Input[str] | None = None
    provider_tenant_id: pulumi.Input[str] | None = None
    tenant_url: pulumi.Input[str] | None = None
    api_key: pulumi.Input[str] | None = None
    verify_connection: pulumi.Input[bool] | None = None
    test_email_recipient: pulumi.Input[str] | None = None

    def __repr__(self) -> str:
        shown = {
            f.name: ("***" if f.name in SECRET_INPUTS else getattr(self, f.name))
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }
        return f"TenantEmailConfigArgs({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


class TenantEmailConfig(pulumi.dynamic.Resource, module="qlik", name="TenantEmailConfig"):
    """The SMTP / Microsoft 365 email provider of a Qlik Cloud tenant.

    Type token ``pulumi-python:dynamic/qlik:TenantEmailConfig``; the id is the
    Qlik ``tenantId``.
    """

    # inputs, echoed as outputs (like the args, checked against mapping.FIELDS by a test)
    server_address: pulumi.Output[str | None]
    server_port: pulumi.Output[int | None]
    security_type: pulumi.Output[str | None]
    username: pulumi.Output[str | None]
    email_address: pulumi.Output[str]
    email_password: pulumi.Output[str | None]
    sender_name: pulumi.Output[str | None]
    service_provider: pulumi.Output[str]
    client_id: pulumi.Output[str | None]
    client_secret: pulumi.Output[str | None]
    provider_tenant_id: pulumi.Output[str | None]
    tenant_url: pulumi.Output[str | None]
    api_key: pulumi.Output[str | None]
    verify_connection: pulumi.Output[bool | None]
    test_email_recipient: pulumi.Output[str | None]
    # what the tenant reports
    tenant_id: pulumi.Output[str]
    is_valid: pulumi.Output[bool]
    error_code: pulumi.Output[str | None]
    auth_failures: pulumi.Output[int | None]
    status_code: pulumi.Output[int | None]
    status_reason: pulumi.Output[str | None]
    password_exists: pulumi.Output[bool]
    modification_time: pulumi.Output[str | None]

    def __init__(
        self,
        resource_name: str,
        args: TenantEmailConfigArgs | None = None,
        opts: pulumi.ResourceOptions | None = None,
        **kwargs: Any,
    ) -> None:
        if args is None:
            args = TenantEmailConfigArgs(**kwargs)
        elif kwargs:
            raise TypeError("pass either a TenantEmailConfigArgs or keyword arguments, not both")
        props: dict[str, Any] = dict.fromkeys(OUTPUTS)
        for f in dataclasses.fields(args):
            value = getattr(args, f.name)
            if value is not None and f.name in SECRET_INPUTS:
                value = pulumi.Output.secret(value)
            props[f.name] = value
        secret_opts = pulumi.ResourceOptions(additional_secret_outputs=list(SECRET_INPUTS))
        opts = pulumi.ResourceOptions.merge(opts, secret_opts)
        unwrap_batch_setitems()  # the SDK's pickling patch piles up otherwise
        super().__init__(TenantEmailConfigProvider(), resource_name, props, opts)
