"""The secret signature literals are the SDK's own (they are private there)."""

from __future__ import annotations

from pulumi.runtime import rpc

from qlik_email_resource import secret_wire


def test_literals_equal_the_sdks() -> None:
    assert rpc._special_sig_key == secret_wire.SIG_KEY
    assert rpc._special_secret_sig == secret_wire.SECRET_SIG


def test_wrap_and_unwrap_round_trip() -> None:
    wrapped = secret_wire.wrap("pw")
    assert secret_wire.is_wrapped(wrapped)
    assert secret_wire.unwrap(wrapped) == "pw"
    assert secret_wire.unwrap("plain") == "plain"
    assert not secret_wire.is_wrapped({"value": "pw"})


def test_only_the_secret_signature_is_a_secret() -> None:
    # Assets and resource references carry the same key with another signature.
    asset = {secret_wire.SIG_KEY: rpc._special_asset_sig, "path": "a.txt"}
    assert not secret_wire.is_wrapped(asset)
    assert secret_wire.unwrap(asset) == asset
    assert rpc.is_rpc_secret(secret_wire.wrap("pw"))
