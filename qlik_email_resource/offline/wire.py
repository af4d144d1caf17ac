"""What crosses the provider's gRPC wire, as a test reads it.

Shared by every suite that talks to the real provider host: properties with
secrets unwrapped, a leak-scan view of a response with every secret-wrapped
value cut out, and ``__provider`` built exactly as ``pulumi.dynamic.Resource`` does.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime._serialization import _serialize

from qlik_email_resource.offline.grpc_servers import from_struct
from qlik_email_resource.offline.state import is_secret, unwrap_all

SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_MASK = "[secret]"


def serialized_provider(provider: Any = None) -> str:
    """``__provider`` exactly as ``pulumi.dynamic.Resource.__init__`` builds it."""
    if provider is None:
        from qlik_email_resource.provider import TenantEmailConfigProvider

        provider = TenantEmailConfigProvider()
    serialized, _ = _serialize(True, serialize_provider, provider)
    return str(serialized)


def plain(struct: struct_pb2.Struct) -> dict[str, Any]:
    """Properties with secrets unwrapped and ``__provider`` dropped."""
    return {
        key: unwrap_all(value)
        for key, value in from_struct(struct).items()
        if key != "__provider"
    }


def secret_on_wire(struct: struct_pb2.Struct, key: str) -> bool:
    """Whether ``key`` travels as a Pulumi secret."""
    return is_secret(from_struct(struct).get(key))


def clear_text(message: Any) -> str:
    """A gRPC message as text with every secret-wrapped value cut out (for leak scans)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            if SECRET_SIG in value:
                return SECRET_MASK
            return {k: strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return repr(strip(json_format.MessageToDict(message)))
