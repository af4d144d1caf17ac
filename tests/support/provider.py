"""What the provider and hardening suites share around ``ProviderDriver``.

Views of what crosses the provider's gRPC wire (properties with secrets
unwrapped, a leak-scan text of a response with every secret cut out), props
for the emulator's tenants, the emulator's request log and record as a test
compares them, and provider hosts started with a fast retry budget. The
engine's calls themselves are ``qlik_email_resource.offline.provider_driver``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format, struct_pb2

from qlik_email_resource import mapping, secret_wire
from qlik_email_resource.emulator import Emulator
from qlik_email_resource.offline.grpc_servers import ProviderServer, from_struct
from qlik_email_resource.offline.provider_driver import PROVIDER_KEY
from qlik_email_resource.offline.state import unwrap_all

SECRET_MASK = "[secret]"
# Short waits so retry tests stay fast; the budget itself stays real (3 retries).
FAST_RETRIES = {
    "QLIK_MAX_RETRIES": "3",
    "QLIK_BACKOFF_FACTOR": "0.01",
    "QLIK_RETRY_AFTER_MAX": "0",
    "QLIK_LOG_LEVEL": "DEBUG",
}
_tenant_numbers = itertools.count(1)


# --- the wire, as a test reads it --------------------------------------------------------


def plain(struct: struct_pb2.Struct) -> dict[str, Any]:
    """Properties with secrets unwrapped and ``__provider`` dropped."""
    return {
        key: unwrap_all(value)
        for key, value in from_struct(struct).items()
        if key != PROVIDER_KEY
    }


def is_secret(struct: struct_pb2.Struct, key: str) -> bool:
    """Whether ``key`` travels as a Pulumi secret."""
    return secret_wire.is_wrapped(from_struct(struct).get(key))


def clear_text(message: Any) -> str:
    """A gRPC message as text with every secret-wrapped value cut out (for leak scans)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            if secret_wire.is_wrapped(value):
                return SECRET_MASK
            return {k: strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return repr(strip(json_format.MessageToDict(message)))


def last_line(details: str) -> str:
    """The exception line of the provider's traceback: what the user reads first."""
    return [line for line in details.strip().splitlines() if line.strip()][-1]


# --- the emulator's side -----------------------------------------------------------------


def start_server(emu: Emulator, config: Mapping[str, str], **env: str) -> ProviderServer:
    """A provider host trusting the emulator's CA, with a fast retry budget."""
    server = ProviderServer(env={**FAST_RETRIES, "QLIK_CA_BUNDLE": emu.ca_file, **env})
    server.configure(config)
    return server


def basic_props(emu: Emulator, **overrides: Any) -> dict[str, Any]:
    """A BasicAuth config on the stack's tenant (an override of None drops the key)."""
    user, password = emu.smtp_user
    props = {
        "server_address": "email-smtp.eu-west-2.amazonaws.com",
        "server_port": 465,
        "security_type": "SSL/TLS",
        "email_address": "qlik@example.com",
        "username": user,
        "email_password": password,
    }
    props.update(overrides)
    return {k: v for k, v in props.items() if v is not None}


def tenant_props(emu: Emulator, tenant: str, **overrides: Any) -> dict[str, Any]:
    """A BasicAuth config for ``tenant``, with its URL and key on the resource."""
    info = emu.tenant(tenant)
    return basic_props(emu, **{"tenant_url": info.url, "api_key": info.api_key, **overrides})


def fresh_tenant(emu: Emulator, prefix: str = "h") -> str:
    """A tenant of its own per scenario: no rate-limit bucket, log line or provider
    process cache (PATCH gone, tokens) carries over from another test."""
    name = f"{prefix}{next(_tenant_numbers)}"
    emu.add_tenant(name)
    return name


def calls(emu: Emulator, tenant: str = "demo") -> list[tuple[str, str, int]]:
    """The emulator's request log as (method, path tail, status)."""
    return [
        (r["method"], r["path"].removeprefix("/api/v1/transports/email-config") or "/", r["status"])
        for r in emu.requests()
        if r["tenant"] == tenant
    ]


def stored(emu: Emulator, tenant: str) -> dict[str, Any] | None:
    """What the tenant really holds (the emulator's own record, password included)."""
    obj = emu.backend.tenant(tenant)
    assert obj is not None
    with obj.lock:
        cfg = obj.config
        if cfg is None:
            return None
        return {"serviceProvider": cfg.service_provider, **cfg.fields, "secret": cfg.secret}


def as_stored(desired: Mapping[str, Any]) -> dict[str, Any]:
    """The record a successful write of ``desired`` leaves on the tenant."""
    body = mapping.expand_put(desired)
    config = dict(body["providerConfig"])
    secret = config.pop("emailPassword", None) or config.pop("clientSecret", None)
    return {"serviceProvider": body["serviceProvider"], **config, "secret": secret}


def agrees(state: Mapping[str, Any], record: Mapping[str, Any] | None) -> list[str]:
    """Fields where refreshed state and the tenant's record disagree (empty = agree)."""
    if record is None:
        return [] if not state else ["state exists but the tenant has no config"]
    expected = as_stored({k: state.get(k) for k in mapping.API_FIELDS})
    keys = (set(expected) | set(record)) - {"secret"}
    wrong = sorted(k for k in keys if expected.get(k) != record.get(k))
    if state.get("password_exists") != bool(record.get("secret")):
        wrong.append("password_exists")
    if state.get("email_password") not in (None, record.get("secret")):
        wrong.append("email_password")
    return wrong
