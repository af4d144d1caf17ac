"""Pulumi's wire form of a secret value: ``{SIG_KEY: SECRET_SIG, "value": v}``.

The one home of the two signature literals (``pulumi.runtime.rpc._special_sig_key`` and
``_special_secret_sig``, which are private to the SDK): the provider marks secrets with
them, the mapping, policy pack, fleet and offline runner recognise them. Kept free of
any import of ``pulumi`` so that ``mapping`` stays pure and fast to import; a test
checks that the literals still equal the SDK's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


def wrap(value: Any) -> dict[str, Any]:
    """``value`` marked secret on the provider's gRPC wire."""
    return {SIG_KEY: SECRET_SIG, "value": value}


def is_wrapped(value: Any) -> bool:
    """Whether ``value`` is a wire secret: the one predicate of the package and its tests.

    Strict like the SDK's ``rpc.is_rpc_secret``: the signature's value is compared too,
    since Pulumi's other special values (assets, resource references) share its key.
    """
    return isinstance(value, Mapping) and value.get(SIG_KEY) == SECRET_SIG


def unwrap(value: Any) -> Any:
    """The plain value of a wire secret; anything else unchanged."""
    return value.get("value") if is_wrapped(value) else value
