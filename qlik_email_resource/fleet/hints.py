"""Fixes in the tenants file's own words.

The provider's errors end with a fix that names stack config (``qlik:apiKey``,
``QLIK_TENANT_URL``, ...), which is right for a Pulumi program and wrong for a
fleet user, who never wrote those keys: the fleet sets them from the tenants
file. Here a known fix is replaced by one that names the tenant's entry
(``tenants.north: api_key_env: NORTH_KEY``); any other mention of a stack config
key is renamed to the tenants-file key that feeds it.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from qlik_email_resource import errors
from qlik_email_resource.fleet.tenants import Tenant


def _credential(tenant: Tenant) -> str:
    if tenant.api_key_env:
        return (
            f"the API key in ${tenant.api_key_env} (tenants.{tenant.name}: "
            f"api_key_env: {tenant.api_key_env})"
        )
    return (
        f"the OAuth client in ${tenant.client_id_env} / ${tenant.client_secret_env} "
        f"(tenants.{tenant.name}: client_id_env: {tenant.client_id_env}, "
        f"client_secret_env: {tenant.client_secret_env})"
    )


def _url(tenant: Tenant) -> str:
    return f"tenants.{tenant.name}.url ({tenant.url})"


def _ca_bundle(tenant: Tenant) -> str:
    return f"tenants.{tenant.name}.ca_bundle"


# Error class -> the fix a fleet user can act on.
_FIXES: dict[type[errors.QlikError], Callable[[Tenant], str]] = {
    errors.QlikAuthenticationError: lambda t: (
        f"Check {_credential(t)}: it may be mistyped, expired, revoked or issued for "
        "another tenant"
    ),
    errors.QlikNotFoundError: lambda t: (
        f"Check {_url(t)}: the tenant URL, e.g. https://your-tenant.eu.qlikcloud.com, "
        "with no path after the host"
    ),
    errors.QlikConnectionError: lambda t: (
        f"Check {_url(t)}, DNS and the proxy settings (HTTPS_PROXY / NO_PROXY)"
    ),
    errors.QlikTLSError: lambda t: (
        f"If a proxy or private CA signs the certificate, set {_ca_bundle(t)} to its CA "
        "file; TLS verification is never turned off"
    ),
    errors.QlikRateLimitedError: lambda t: (
        "Qlik allows 100 writes and 1000 reads per minute per user; wait and run again, "
        "or raise the budget with the environment variable QLIK_MAX_RETRIES"
    ),
    errors.QlikTimeoutError: lambda t: (
        f"Check the network path to {t.url}, or raise the environment variable "
        "QLIK_READ_TIMEOUT (a write waits while Qlik tests the SMTP server)"
    ),
}


def _renames(tenant: Tenant) -> list[tuple[re.Pattern[str], str]]:
    password = tenant.secret_env.get("email_password")
    pairs = [
        (r"(stack config )?qlik:apiKey|QLIK_API_KEY", f"api_key_env: {tenant.api_key_env}"
         if tenant.api_key_env else "api_key_env"),
        (r"(stack config )?qlik:tenantUrl|QLIK_TENANT_URL", f"tenants.{tenant.name}.url"),
        (r"(stack config )?qlik:caBundle|QLIK_CA_BUNDLE", _ca_bundle(tenant)),
        (r"(stack config )?qlik:clientId|QLIK_CLIENT_ID",
         f"client_id_env: {tenant.client_id_env or 'VARIABLE'}"),
        (r"(stack config )?qlik:clientSecret|QLIK_CLIENT_SECRET",
         f"client_secret_env: {tenant.client_secret_env or 'VARIABLE'}"),
        (r"(stack config )?email:(emailPassword|password)",
         f"email_password_env: {password or 'VARIABLE'}"),
    ]
    return [(re.compile(pattern), text) for pattern, text in pairs]


def in_tenants_file_terms(message: str, tenant: Tenant) -> str:
    """``message`` with its fix naming the tenants file's keys for ``tenant``."""
    for cls, fix in _FIXES.items():
        if cls.fix and cls.fix in message:
            return message.replace(cls.fix, fix(tenant))
    for pattern, text in _renames(tenant):
        message = pattern.sub(text, message)
    return message
