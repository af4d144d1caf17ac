"""The engine's side of one dynamic resource, spoken to Pulumi's real provider host.

``ProviderDriver`` sends what the engine sends to ``python -m pulumi.dynamic``
(a ``ProviderServer``): single calls (Check, Diff, Create, Update, Read, Delete)
with the caller's own olds and news, and the composite steps of ``pulumi up``
(Check → Create, or Check → Diff → Update), ``pulumi refresh`` (Read) and
``pulumi destroy`` (Delete) on the state it keeps between them. Every response
and every error text is recorded, so a caller can search them afterwards (the
leak scans do). The tests, the hardening suites and the benchmarks drive the
provider through this one class; so can anyone testing a dynamic provider of
their own (pass its instance to ``serialized_provider``).

The offline runner (``mocks.py``) does not use it: it works on the runner's
``ResourceState`` (plain values, secrets re-marked after each call) and turns a
failed call into an ``OfflineRunError``, where this driver keeps the wire's
own Structs and lets ``grpc.RpcError`` through, as a test wants to see it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import grpc
from google.protobuf import struct_pb2
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime._serialization import _serialize
from pulumi.runtime.proto import provider_pb2 as P

from qlik_email_resource.offline.grpc_servers import ProviderServer, to_struct

DEFAULT_URN = "urn:pulumi:dev::proj::pulumi-python:dynamic/qlik:TenantEmailConfig::mail"
PROVIDER_KEY = "__provider"


def serialized_provider(provider: Any = None) -> str:
    """``__provider`` exactly as ``pulumi.dynamic.Resource.__init__`` builds it
    (default: this package's ``TenantEmailConfigProvider``)."""
    if provider is None:
        # Imported here: the offline runner imports this package without the provider.
        from qlik_email_resource.provider import TenantEmailConfigProvider

        provider = TenantEmailConfigProvider()
    serialized, _ = _serialize(True, serialize_provider, provider)
    return str(serialized)


class CheckFailedError(Exception):
    """Check answered with failures where the caller needed valid inputs."""

    def __init__(self, failures: list[tuple[str, str]]) -> None:
        super().__init__(f"check failed: {failures}")
        self.failures = failures


class Resource(NamedTuple):
    """One resource as the engine keeps it after a create: its id, inputs and outputs."""

    id: str
    inputs: struct_pb2.Struct
    outputs: struct_pb2.Struct


class ProviderDriver:
    """The engine's calls for one resource against a running ``ProviderServer``.

    ``provider`` is the serialized ``__provider`` (see ``serialized_provider``);
    ``urn`` names the resource in every request. ``id``, ``inputs`` and
    ``outputs`` are the state that ``up``, ``refresh`` and ``destroy`` keep; the
    single calls leave it alone.
    """

    def __init__(
        self, server: ProviderServer, provider: str | None = None, urn: str = DEFAULT_URN
    ) -> None:
        self.server = server
        self.provider = serialized_provider() if provider is None else provider
        self.urn = urn
        self.id = ""
        self.inputs: struct_pb2.Struct | None = None
        self.outputs: struct_pb2.Struct | None = None
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

    # -- single calls ---------------------------------------------------------------

    def check(
        self, news: Mapping[str, Any], olds: struct_pb2.Struct | None = None
    ) -> P.CheckResponse:
        """Check of the declared ``news`` (``__provider`` added, as the SDK registers it)."""
        request = P.CheckRequest(
            urn=self.urn, olds=olds or to_struct({}),
            news=to_struct({PROVIDER_KEY: self.provider, **news}),
        )
        return self._call("Check", request)

    def checked(
        self, news: Mapping[str, Any], olds: struct_pb2.Struct | None = None
    ) -> struct_pb2.Struct:
        """Check's inputs; ``CheckFailedError`` when the provider refused them."""
        response = self.check(news, olds)
        if response.failures:
            raise CheckFailedError([(f.property, f.reason) for f in response.failures])
        return response.inputs

    def diff(self, id_: str, olds: struct_pb2.Struct, news: struct_pb2.Struct) -> P.DiffResponse:
        return self._call("Diff", P.DiffRequest(id=id_, urn=self.urn, olds=olds, news=news))

    def create(self, inputs: struct_pb2.Struct) -> P.CreateResponse:
        return self._call("Create", P.CreateRequest(urn=self.urn, properties=inputs))

    def update(
        self, id_: str, olds: struct_pb2.Struct, news: struct_pb2.Struct
    ) -> P.UpdateResponse:
        return self._call("Update", P.UpdateRequest(id=id_, urn=self.urn, olds=olds, news=news))

    def read(
        self, id_: str, outputs: struct_pb2.Struct, inputs: struct_pb2.Struct
    ) -> P.ReadResponse:
        return self._call(
            "Read", P.ReadRequest(id=id_, urn=self.urn, properties=outputs, inputs=inputs)
        )

    def delete(self, id_: str, outputs: struct_pb2.Struct) -> None:
        self._call("Delete", P.DeleteRequest(id=id_, urn=self.urn, properties=outputs))

    def check_and_create(self, news: Mapping[str, Any]) -> Resource:
        """Check, then Create, keeping no state: a new resource each time it is called."""
        inputs = self.checked(news)
        created = self.create(inputs)
        return Resource(created.id, inputs, created.properties)

    # -- the engine's steps, on the kept state ------------------------------------------

    def up(self, news: Mapping[str, Any]) -> str:
        """One ``pulumi up`` of this resource: 'create', 'update' or 'same'.

        The state changes only when the provider call succeeds, as in the engine.
        """
        inputs = self.checked(news, olds=self.inputs)
        if not self.id:
            created = self.create(inputs)
            self.id, self.inputs, self.outputs = created.id, inputs, created.properties
            return "create"
        assert self.outputs is not None
        if self.diff(self.id, self.outputs, inputs).changes != P.DiffResponse.DIFF_SOME:
            self.inputs = inputs
            return "same"
        updated = self.update(self.id, self.outputs, inputs)
        self.inputs, self.outputs = inputs, updated.properties
        return "update"

    def refresh(self) -> P.ReadResponse:
        """``pulumi refresh``: Read, and the state becomes what the tenant says
        (no id: the resource is gone)."""
        assert self.outputs is not None and self.inputs is not None, "refresh before up"
        answer = self.read(self.id, self.outputs, self.inputs)
        self.id, self.outputs = answer.id, answer.properties
        if answer.id:
            self.inputs = answer.inputs
        return answer

    def destroy(self) -> None:
        """``pulumi destroy``: Delete with the last outputs; the state is empty after."""
        assert self.outputs is not None, "destroy before up"
        self.delete(self.id, self.outputs)
        self.id, self.inputs, self.outputs = "", None, None
