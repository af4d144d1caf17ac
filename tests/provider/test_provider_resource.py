"""resource.py under Pulumi's mocks: type token, inputs sent, secrets marked, typed args."""

from __future__ import annotations

import base64
from typing import Any

import dill
import pulumi
import pytest
from pulumi.runtime import rpc

from qlik_email_resource import TenantEmailConfig, TenantEmailConfigArgs
from qlik_email_resource.provider import TenantEmailConfigProvider


class Recorder(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.seen: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.seen.append(args)
        # echo the inputs as the provider does: secret inputs stay secret outputs
        return "tenant-id-1", {**args.inputs, "tenant_id": "tenant-id-1", "is_valid": True}

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}


@pytest.fixture
def mocks() -> Recorder:
    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, project="proj", stack="dev", preview=False)
    return recorder


def test_resource_registers_typed_inputs_with_secrets(mocks: Recorder) -> None:
    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        mail = TenantEmailConfig("mail", TenantEmailConfigArgs(
            server_address="smtp.example.com", server_port=587, security_type="StartTLS",
            email_address="a@example.com", username="bot", email_password="pw-secret",
            tenant_url="https://t.example.com", api_key="key-secret",
        ))
        return pulumi.Output.all(mail.id, mail.tenant_id, mail.is_valid,
                                 mail.email_password, mail.server_port)

    program()
    args = mocks.seen[-1]
    assert args.typ == "pulumi-python:dynamic/qlik:TenantEmailConfig"
    for key in ("email_password", "api_key"):
        assert rpc.is_rpc_secret(args.inputs[key]), key
    assert args.inputs["server_port"] == 587
    assert "client_secret" not in args.inputs or args.inputs["client_secret"] is None
    provider = args.inputs["__provider"]
    raw = base64.b64decode(rpc.unwrap_rpc_secret(provider))
    assert isinstance(dill.loads(raw), TenantEmailConfigProvider)
    assert b"key-secret" not in raw and b"pw-secret" not in raw


def test_outputs_are_attributes_and_secret(mocks: Recorder) -> None:
    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        mail = TenantEmailConfig("mail", email_address="a@example.com",
                                 service_provider="Microsoft365", client_id="c",
                                 client_secret="s3cret", provider_tenant_id="p")

        def check(values: list[Any]) -> None:
            tenant_id, secret_flag = values
            assert tenant_id == "tenant-id-1"
            assert secret_flag is True

        return pulumi.Output.all(mail.tenant_id,
                                 pulumi.Output.from_input(mail.client_secret.is_secret())
                                 ).apply(check)

    program()


def test_args_repr_hides_secrets() -> None:
    text = repr(TenantEmailConfigArgs(email_password="pw-1", api_key="k-1",
                                      client_secret="s-1", username="bot"))
    assert "pw-1" not in text and "k-1" not in text and "s-1" not in text
    assert "username='bot'" in text


def test_args_and_kwargs_are_exclusive() -> None:
    with pytest.raises(TypeError, match="not both"):
        TenantEmailConfig("x", TenantEmailConfigArgs(), username="bot")
