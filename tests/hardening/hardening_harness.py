"""The engine's side of one resource, for the cross-cutting hardening suites.

``Engine`` talks to Pulumi's real dynamic provider server the way the engine
does during ``up`` and ``refresh`` (Check → Create, or Check → Diff → Update;
Read), keeps the resource's state between calls, and records every response and
every error text so that leak scans can search them afterwards.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import struct_pb2
from pulumi.runtime.proto import provider_pb2 as P

from qlik_email_resource import mapping
from qlik_email_resource.emulator import Emulator
from qlik_email_resource.offline.grpc_servers import ProviderServer, to_struct
from qlik_email_resource.offline.wire import (  # noqa: F401  (re-exported to the tests)
    SECRET_SIG,
    clear_text,
    plain,
    serialized_provider,
)

# The tenant that echoes secrets lives with the provider tests; the scans here reuse it.
sys.path.insert(0, str(Path(__file__).parents[1] / "provider"))
from echo_tenant import echoed, serve  # noqa: F401  (re-exported to the tests)

URN = "urn:pulumi:dev::hardening::pulumi-python:dynamic/qlik:TenantEmailConfig::mail"
_names = itertools.count(1)


def fresh_tenant(emu: Emulator, prefix: str = "h") -> str:
    """A tenant of its own per scenario: no rate-limit bucket, log line or provider
    process cache (PATCH gone, tokens) carries over from another test."""
    name = f"{prefix}{next(_names)}"
    emu.add_tenant(name)
    return name


def last_line(details: str) -> str:
    """The exception line of the provider's traceback: what the user reads first."""
    return [line for line in details.strip().splitlines() if line.strip()][-1]


@dataclass
class Engine:
    server: ProviderServer
    provider: str = field(default_factory=serialized_provider)
    id: str = ""
    inputs: struct_pb2.Struct | None = None
    outputs: struct_pb2.Struct | None = None
    responses: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def call(self, method: str, request: Any) -> Any:
        try:
            response = getattr(self.server.stub, method)(request)
        except grpc.RpcError as exc:
            self.errors.append(str(exc.details()))
            raise
        self.responses.append(response)
        return response

    def check(self, props: Mapping[str, Any]) -> struct_pb2.Struct:
        news = to_struct({"__provider": self.provider, **props})
        response = self.call("Check", P.CheckRequest(urn=URN, olds=self.inputs or to_struct({}),
                                                     news=news))
        assert not response.failures, [(f.property, f.reason) for f in response.failures]
        return response.inputs

    def up(self, props: Mapping[str, Any]) -> str:
        """One `pulumi up` of this resource: 'create', 'update' or 'same'.

        State changes only when the provider call succeeds, as in the engine.
        """
        news = self.check(props)
        if not self.id:
            created = self.call("Create", P.CreateRequest(urn=URN, properties=news))
            self.id, self.inputs, self.outputs = created.id, news, created.properties
            return "create"
        assert self.outputs is not None
        diff = self.call("Diff", P.DiffRequest(id=self.id, urn=URN, olds=self.outputs,
                                               news=news))
        if diff.changes != P.DiffResponse.DIFF_SOME:
            self.inputs = news
            return "same"
        updated = self.call("Update", P.UpdateRequest(id=self.id, urn=URN, olds=self.outputs,
                                                      news=news))
        self.inputs, self.outputs = news, updated.properties
        return "update"

    def refresh(self) -> dict[str, Any]:
        """`pulumi refresh`: Read, and state becomes what the tenant says."""
        assert self.outputs is not None and self.inputs is not None
        read = self.call("Read", P.ReadRequest(id=self.id, urn=URN, properties=self.outputs,
                                               inputs=self.inputs))
        self.id, self.outputs = read.id, read.properties
        if read.id:
            self.inputs = read.inputs
        return plain(read.properties)

    def destroy(self) -> None:
        assert self.outputs is not None
        self.call("Delete", P.DeleteRequest(id=self.id, urn=URN, properties=self.outputs))
        self.id, self.inputs, self.outputs = "", None, None


def basic_props(emu: Emulator, tenant: str, **overrides: Any) -> dict[str, Any]:
    """A BasicAuth config for ``tenant``, with its URL and key on the resource."""
    info = emu.tenant(tenant)
    user, password = emu.smtp_user
    props: dict[str, Any] = {
        "tenant_url": info.url,
        "api_key": info.api_key,
        "server_address": "email-smtp.eu-west-2.amazonaws.com",
        "server_port": 465,
        "security_type": "SSL/TLS",
        "email_address": "qlik@example.com",
        "username": user,
        "email_password": password,
    }
    props.update(overrides)
    return {k: v for k, v in props.items() if v is not None}


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
