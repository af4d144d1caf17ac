"""The real ``TenantEmailConfig`` class, declared under Pulumi mocks, checked by the real pack.

The mocks record what the resource registers (its type token and inputs, secrets
still wrapped, ports as floats: exactly what the engine hands the analyzer), and
the recording goes through the analyzer server's Analyze and AnalyzeStack. This
pins the contract between resource.py and policies/rules.py: property names,
type token, secrets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime
from google.protobuf import json_format
from pulumi.runtime.proto import analyzer_pb2

from qlik_email_resource import TenantEmailConfig, TenantEmailConfigArgs
from qlik_email_resource.offline.grpc_servers import AnalyzerServer
from qlik_email_resource.policy_pack.rules import (
    ALLOWED_PORTS,
    ONE_CONFIG_PER_TENANT,
    RESOURCE_TYPE,
    TLS_REQUIRED,
)

PACK_DIR = Path(__file__).resolve().parents[2] / "policies"
PASSWORD = "canary-program-PASSWORD"
API_KEY = "canary-program-APIKEY"


class Recorder(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[dict[str, Any]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(
            {
                "type": args.typ,
                "urn": f"urn:pulumi:dev::tenants::{args.typ}::{args.name}",
                "name": args.name,
                "properties": dict(args.inputs),
            }
        )
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        return {}, None


def declare(**configs: dict[str, Any]) -> list[dict[str, Any]]:
    """Run a tiny program declaring one TenantEmailConfig per entry; return what it registered."""
    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, project="tenants", stack="dev", preview=True)

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        made = [
            TenantEmailConfig(name, TenantEmailConfigArgs(**args)) for name, args in configs.items()
        ]
        return pulumi.Output.all(*[r.id for r in made])

    program()
    return recorder.resources


def tutorial(**changes: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "server_address": "email-smtp.eu-west-2.amazonaws.com",
        "server_port": 2465,
        "security_type": "SSL/TLS",
        "username": "SKIARX3IRHQ7J3ZLGABC",
        "email_address": "qlik@mydomain.com",
        "email_password": pulumi.Output.secret(PASSWORD),
        "tenant_url": "https://mytenant.eu.qlikcloud.com",
        "api_key": pulumi.Output.secret(API_KEY),
        "verify_connection": True,
    }
    args.update(changes)
    return args


def analyze_all(pack: AnalyzerServer, registered: list[dict[str, Any]]) -> list[Any]:
    found: list[analyzer_pb2.AnalyzeDiagnostic] = []
    for r in registered:
        found += pack.analyze(
            type_=r["type"], urn=r["urn"], name=r["name"], properties=r["properties"]
        )
    found += pack.analyze_stack(registered)
    text = "\n".join(json_format.MessageToJson(d) for d in found) + pack.stderr()
    assert PASSWORD not in text and API_KEY not in text
    return found


def test_resource_registers_what_the_rules_read() -> None:
    [registered] = declare(mail=tutorial())
    assert registered["type"] == RESOURCE_TYPE
    props = registered["properties"]
    assert props["server_port"] == 2465.0 and props["security_type"] == "SSL/TLS"
    assert props["email_password"]["value"] == PASSWORD  # wrapped as a secret


def test_tutorial_program_passes_the_default_pack(pack: AnalyzerServer) -> None:
    pack.configure()
    assert analyze_all(pack, declare(mail=tutorial())) == []


def test_unsafe_program_is_stopped(pack: AnalyzerServer) -> None:
    pack.configure()
    registered = declare(
        mail=tutorial(security_type="none", server_port=25),
        again=tutorial(tenant_url="https://MyTenant.eu.qlikcloud.com/"),
    )
    found = analyze_all(pack, registered)
    got = {(d.policyName, d.urn.rsplit("::", 1)[-1], d.enforcementLevel) for d in found}
    assert got == {
        (TLS_REQUIRED, "", analyzer_pb2.MANDATORY),
        (ALLOWED_PORTS, "", analyzer_pb2.MANDATORY),
        # The stack rule names the later one by URN ("again" sorts before "mail").
        (ONE_CONFIG_PER_TENANT, "mail", analyzer_pb2.MANDATORY),
    }
