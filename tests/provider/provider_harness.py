"""Helpers that drive TenantEmailConfig through Pulumi's real provider server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
from google.protobuf import struct_pb2
from pulumi.runtime.proto import provider_pb2 as P

from qlik_email_resource.emulator import Emulator
from qlik_email_resource.offline.grpc_servers import ProviderServer, to_struct
from qlik_email_resource.offline.wire import (  # noqa: F401  (re-exported to the tests)
    SECRET_SIG,
    clear_text,
    plain,
    serialized_provider,
)
from qlik_email_resource.offline.wire import secret_on_wire as is_secret  # noqa: F401

URN = "urn:pulumi:dev::proj::pulumi-python:dynamic/qlik:TenantEmailConfig::mail"
# Short waits so retry tests stay fast; the budget itself stays real (3 retries).
FAST_RETRIES = {
    "QLIK_MAX_RETRIES": "3",
    "QLIK_BACKOFF_FACTOR": "0.01",
    "QLIK_RETRY_AFTER_MAX": "0",
    "QLIK_LOG_LEVEL": "DEBUG",
}


class Lifecycle:
    """The engine's side of the conversation: Check, Diff, Create, Read, Update, Delete.

    Every response (and every error text) is kept for the leak scans.
    """

    def __init__(self, server: ProviderServer) -> None:
        self.server = server
        self.provider = serialized_provider()
        self.responses: list[Any] = []
        self.errors: list[str] = []

    def _call(self, method: str, request: Any) -> Any:
        try:
            response = getattr(self.server.stub, method)(request)
        except grpc.RpcError as exc:
            self.errors.append(str(exc.details()))
            raise
        self.responses.append(response)
        return response

    def news(self, props: Mapping[str, Any]) -> dict[str, Any]:
        return {"__provider": self.provider, **props}

    def check(
        self, news: Mapping[str, Any], olds: struct_pb2.Struct | None = None
    ) -> P.CheckResponse:
        return self._call(
            "Check",
            P.CheckRequest(urn=URN, olds=olds or to_struct({}), news=to_struct(self.news(news))),
        )

    def checked(self, news: Mapping[str, Any]) -> struct_pb2.Struct:
        response = self.check(news)
        assert not response.failures, [(f.property, f.reason) for f in response.failures]
        return response.inputs

    def create(self, inputs: struct_pb2.Struct) -> P.CreateResponse:
        return self._call("Create", P.CreateRequest(urn=URN, properties=inputs))

    def diff(self, id_: str, olds: struct_pb2.Struct, news: struct_pb2.Struct) -> P.DiffResponse:
        return self._call("Diff", P.DiffRequest(id=id_, urn=URN, olds=olds, news=news))

    def update(
        self, id_: str, olds: struct_pb2.Struct, news: struct_pb2.Struct
    ) -> P.UpdateResponse:
        return self._call("Update", P.UpdateRequest(id=id_, urn=URN, olds=olds, news=news))

    def read(
        self, id_: str, props: struct_pb2.Struct, inputs: struct_pb2.Struct
    ) -> P.ReadResponse:
        return self._call("Read", P.ReadRequest(id=id_, urn=URN, properties=props, inputs=inputs))

    def delete(self, id_: str, props: struct_pb2.Struct) -> None:
        self._call("Delete", P.DeleteRequest(id=id_, urn=URN, properties=props))

    def up(self, props: Mapping[str, Any]) -> tuple[str, struct_pb2.Struct, struct_pb2.Struct]:
        """check + create: (id, inputs, outputs)."""
        inputs = self.checked(props)
        created = self.create(inputs)
        return created.id, inputs, created.properties


def basic_props(emu: Emulator, **overrides: Any) -> dict[str, Any]:
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


def calls(emu: Emulator, tenant: str = "demo") -> list[tuple[str, str, int]]:
    """The emulator's request log as (method, path tail, status)."""
    return [
        (r["method"], r["path"].removeprefix("/api/v1/transports/email-config") or "/", r["status"])
        for r in emu.requests()
        if r["tenant"] == tenant
    ]


def start_server(emu: Emulator, config: Mapping[str, str], **env: str) -> ProviderServer:
    server = ProviderServer(env={**FAST_RETRIES, "QLIK_CA_BUNDLE": emu.ca_file, **env})
    server.configure(config)
    return server


