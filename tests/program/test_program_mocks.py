"""The repository's Pulumi program (``__main__.py``) under plain ``pulumi.runtime`` mocks.

A recording mock, no provider: what the program declares (type token, inputs,
secrets) is what ``pulumi up`` would send to the engine.
"""

from __future__ import annotations

import asyncio
import contextvars
import runpy
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime
import pytest
import yaml
from pulumi.runtime import rpc

from qlik_email_resource.policy_pack.rules import RESOURCE_TYPE as TYPE

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "smtp-pw-9d1e33aa"
CONFIG = {
    "qlik:tenantUrl": "https://tenant-a.eu.qlikcloud.com",
    "email:serverAddress": "email-smtp.eu-west-2.amazonaws.com",
    "email:serverPort": "2465",
    "email:securityType": "SSL/TLS",
    "email:username": "AKIAEXAMPLE",
    "email:emailAddress": "reports@tenant-a.example.com",
    "email:password": PASSWORD,
    "email:senderName": "Tenant A",
}


class Recorder(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.registered: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.registered.append(args)
        outputs = {**args.inputs, "tenant_id": "t" * 32, "is_valid": True, "password_exists": True}
        return "t" * 32, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        return {}, None


def run_program(config: dict[str, str]) -> tuple[Recorder, dict[str, Any]]:
    """Run __main__.py under mocks in a fresh context and event loop."""
    recorder = Recorder()
    exported: dict[str, Any] = {}

    def body() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            pulumi.runtime.set_all_config(config, ["email:password"])
            pulumi.runtime.set_mocks(recorder, project="email", stack="tenant-a", preview=False)

            @pulumi.runtime.test
            def program() -> Any:
                runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")
                stack = pulumi.runtime.get_root_resource()
                outputs = dict(stack.outputs)  # type: ignore[union-attr]
                exported.update(outputs)
                return pulumi.Output.all(*outputs.values())

            program()
            for name, value in list(exported.items()):
                out = pulumi.Output.from_input(value)
                secret = loop.run_until_complete(out.is_secret())
                exported[name] = ("[secret]", None) if secret else (
                    loop.run_until_complete(out.future()), None
                )
        finally:
            loop.close()
            asyncio.set_event_loop(asyncio.new_event_loop())

    contextvars.Context().run(body)
    return recorder, {k: v[0] for k, v in exported.items()}


def test_program_declares_one_tenant_email_config_with_wrapped_secret() -> None:
    recorder, outputs = run_program(CONFIG)
    assert [r.typ for r in recorder.registered] == [TYPE]
    args = recorder.registered[0]
    assert args.name == "email" and args.custom
    inputs = args.inputs
    assert inputs["tenant_url"] == CONFIG["qlik:tenantUrl"]
    assert inputs["server_address"] == "email-smtp.eu-west-2.amazonaws.com"
    assert inputs["server_port"] == 2465
    assert inputs["security_type"] == "SSL/TLS"
    assert inputs["username"] == "AKIAEXAMPLE"
    assert inputs["email_address"] == "reports@tenant-a.example.com"
    assert inputs["sender_name"] == "Tenant A"
    assert inputs["verify_connection"] is True
    assert rpc.is_rpc_secret(inputs["email_password"])
    assert rpc.unwrap_rpc_secret(inputs["email_password"]) == PASSWORD
    # credentials stay provider config: never an input, never in state
    assert "api_key" not in inputs or inputs["api_key"] is None
    assert outputs["tenant_id"] == "t" * 32
    assert outputs["port"] == 2465
    assert outputs["password_exists"] is True
    assert PASSWORD not in repr(outputs)


def test_program_defaults_match_pulumi_yaml() -> None:
    minimal = {k: v for k, v in CONFIG.items()
               if k in ("qlik:tenantUrl", "email:serverAddress", "email:emailAddress",
                        "email:password")}
    recorder, _ = run_program(minimal)
    inputs = recorder.registered[0].inputs
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    assert inputs["server_port"] == declared["serverPort"]["default"]
    assert inputs["security_type"] == declared["securityType"]["default"]
    assert inputs["verify_connection"] is declared["verifyConnection"]["default"]
    for empty in ("username", "sender_name", "test_email_recipient"):
        assert inputs.get(empty) is None


def test_program_without_tenant_url_fails_naming_the_key() -> None:
    config = {k: v for k, v in CONFIG.items() if k != "qlik:tenantUrl"}
    with pytest.raises(Exception, match="qlik:tenantUrl"):
        run_program(config)


def test_pulumi_yaml_declares_every_email_setting() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    config = project["config"]
    source = (ROOT / "__main__.py").read_text()
    for key, spec in config.items():
        assert ":" not in key, "only the project's own keys may carry a schema"
        assert spec["type"] in ("string", "integer", "boolean")
        assert spec["description"]
        assert f'"{key}"' in source, f"{key} is declared but the program never reads it"
    assert config["password"]["secret"] is True
    assert [k for k, s in config.items() if s.get("secret")] == ["password"]


@pytest.mark.parametrize("stack", ["tenant-a", "tenant-b"])
def test_example_stack_files_hold_no_secret_values(stack: str) -> None:
    text = (ROOT / f"Pulumi.{stack}.yaml").read_text()
    config = yaml.safe_load(text)["config"]
    assert "qlik:tenantUrl" in config
    for secret in ("qlik:apiKey", "qlik:clientSecret", "email:password"):
        assert secret not in config
    assert "pulumi config set --secret" in text
