"""The repository's program end to end through the offline runner, against the emulator.

Real parts only: the program (``__main__.py`` + ``Pulumi.yaml`` + the example
stack file), Pulumi's dynamic-provider host running ``TenantEmailConfig``, the
``policies/`` pack in its analyzer, and the emulated tenant over HTTPS with its
SMTP server behind it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from qlik_email_resource.emulator import Emulator
from qlik_email_resource.offline import (
    OfflineStack,
    PolicyViolationError,
    Secret,
)
from qlik_email_resource.offline.grpc_servers import AnalyzerServer, ProviderServer
from qlik_email_resource.policy_pack.rules import TENANT_URL, TLS_REQUIRED

ROOT = Path(__file__).resolve().parents[2]
WRITES = {"PUT", "PATCH", "POST", "DELETE"}
POLICY_CONFIG = {TENANT_URL: {"allowLocalhost": True}}
EMAIL_PATH = "/api/v1/transports/email-config"


@pytest.fixture(scope="module")
def analyzer() -> Iterator[AnalyzerServer]:
    server = AnalyzerServer(ROOT / "policies")
    server.configure(POLICY_CONFIG)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def provider() -> Iterator[ProviderServer]:
    # One host for the module, started where `pulumi up` starts it (the program dir).
    server = ProviderServer(cwd=ROOT, project="email")
    yield server
    server.stop()


def settings(emu: Emulator, tenant: str = "demo") -> dict[str, Any]:
    info = emu.tenant(tenant)
    smtp = emu.info["smtp"]
    return {
        "qlik:tenantUrl": info.url,
        "qlik:apiKey": Secret(info.api_key),
        "qlik:caBundle": emu.ca_file,
        # the rest of Pulumi.tenant-a.yaml stays: the SES host is routed to the
        # emulator's SMTP server by security type
        "email:username": smtp["username"],
        "email:password": Secret(smtp["password"]),
        "email:emailAddress": "reports@example.com",
    }


@pytest.fixture
def make_stack(
    qlik_emulator: Emulator, tmp_path: Path, provider: ProviderServer, analyzer: AnalyzerServer
) -> Any:
    def make(program: Any = ROOT, **overrides: Any) -> OfflineStack:
        return OfflineStack(
            program, stack="tenant-a", project="email",
            config={**settings(qlik_emulator), **overrides},
            state_file=tmp_path / "tenant-a.json",
            provider_server=provider, analyzer=analyzer, quiet=True,
        )

    return make


def tenant_config(emu: Emulator, tenant: str = "demo") -> dict[str, Any] | None:
    info = emu.tenant(tenant)
    answer = requests.get(
        info.url + EMAIL_PATH, headers={"Authorization": f"Bearer {info.api_key}"},
        verify=emu.ca_file, timeout=10,
    )
    if answer.status_code == 404:
        return None
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    # An unconfigured tenant answers 200 with errorCode CONFIG_NOT_SET.
    return None if body.get("errorCode") == "CONFIG_NOT_SET" else body


def writes(emu: Emulator) -> list[tuple[str, str]]:
    return [(r["method"], r["path"]) for r in emu.requests() if r["method"] in WRITES]


def test_first_up_creates_the_mail_settings(make_stack: Any, qlik_emulator: Emulator) -> None:
    result = make_stack().up()
    assert [(s.op, s.type) for s in result.steps] == [
        ("create", "pulumi-python:dynamic/qlik:TenantEmailConfig")
    ]
    assert result.outputs["is_valid"] is True
    assert result.outputs["server"] == "email-smtp.eu-west-2.amazonaws.com"
    assert result.outputs["port"] == 2465
    assert result.outputs["password_exists"] is True
    assert result.outputs["tenant_id"] == qlik_emulator.tenant("demo").tenant_id
    assert writes(qlik_emulator), "the first up must write the tenant's config"
    config = json.dumps(tenant_config(qlik_emulator))
    assert "email-smtp.eu-west-2.amazonaws.com" in config and "2465" in config


def test_noop_up_sends_no_write_to_the_tenant(make_stack: Any, qlik_emulator: Emulator) -> None:
    stack = make_stack()
    stack.up()
    qlik_emulator.clear_requests()
    result = stack.up()
    assert [s.op for s in result.steps] == ["same"]
    assert writes(qlik_emulator) == []


def test_update_changes_one_field(make_stack: Any, qlik_emulator: Emulator) -> None:
    make_stack().up()
    qlik_emulator.clear_requests()
    result = make_stack(**{"email:senderName": "Reports team"}).up()
    assert [(s.op, s.changed_fields) for s in result.steps] == [("update", ("sender_name",))]
    assert writes(qlik_emulator)
    assert "Reports team" in json.dumps(tenant_config(qlik_emulator))


def test_refresh_shows_out_of_band_change_and_up_repairs_it(
    make_stack: Any, qlik_emulator: Emulator
) -> None:
    stack = make_stack()
    stack.up()
    qlik_emulator.set_config("demo", {
        "serverAddress": "smtp.elsewhere.example.com", "serverPort": 2465,
        "securityType": "SSL/TLS", "emailAddress": "reports@example.com",
        "username": qlik_emulator.info["smtp"]["username"],
    })
    refreshed = stack.refresh()
    assert [s.op for s in refreshed.steps] == ["read"]
    assert "server_address" in refreshed.steps[0].changed_fields

    repaired = stack.up()
    assert [s.op for s in repaired.steps] == ["update"]
    assert "server_address" in repaired.steps[0].changed_fields
    assert "email-smtp.eu-west-2.amazonaws.com" in json.dumps(tenant_config(qlik_emulator))
    assert [s.op for s in stack.up().steps] == ["same"]


def test_destroy_deletes_the_config(make_stack: Any, qlik_emulator: Emulator) -> None:
    stack = make_stack()
    stack.up()
    qlik_emulator.clear_requests()
    result = stack.destroy()
    assert [s.op for s in result.steps] == ["delete"]
    assert ("DELETE", "/t/demo" + EMAIL_PATH) in writes(qlik_emulator) or any(
        m == "DELETE" for m, _ in writes(qlik_emulator)
    )
    assert tenant_config(qlik_emulator) is None
    assert stack.state().resources == []


def test_resource_removed_from_the_program_is_deleted(
    make_stack: Any, qlik_emulator: Emulator
) -> None:
    make_stack().up()
    qlik_emulator.clear_requests()
    result = make_stack(lambda: None).up()  # the same stack, now declaring nothing
    assert [s.op for s in result.steps] == ["delete"]
    assert any(m == "DELETE" for m, _ in writes(qlik_emulator))
    assert tenant_config(qlik_emulator) is None


def test_policy_violation_blocks_up_and_nothing_is_written(
    make_stack: Any, qlik_emulator: Emulator, tmp_path: Path
) -> None:
    stack = make_stack(**{"email:securityType": "none", "email:serverPort": "25"})
    with pytest.raises(PolicyViolationError) as info:
        stack.up()
    assert TLS_REQUIRED in {v.policy for v in info.value.violations}
    assert writes(qlik_emulator) == []
    assert tenant_config(qlik_emulator) is None
    assert not (tmp_path / "tenant-a.json").exists()


def test_policies_judge_the_provider_checked_security_type(
    make_stack: Any, qlik_emulator: Emulator
) -> None:
    """The engine runs resource policies on Check's output (stepGenerator.
    continueStepsFromImport, analyzeAll on ``resp.Properties``): the provider
    normalises ``ssl/tls`` to ``SSL/TLS``, so email-tls-required has nothing to say."""
    stack = make_stack(**{"email:securityType": "ssl/tls"})
    preview = stack.preview()
    assert preview.ok
    assert TLS_REQUIRED not in {v.policy for v in preview.violations}
    result = stack.up()
    assert result.outputs["security"] == "SSL/TLS"


def test_state_file_holds_no_secret_in_clear(
    make_stack: Any, qlik_emulator: Emulator, tmp_path: Path
) -> None:
    make_stack().up()
    text = (tmp_path / "tenant-a.json").read_text()
    secrets = (qlik_emulator.info["smtp"]["password"], qlik_emulator.tenant("demo").api_key)
    for secret in secrets:
        assert secret not in text
    resource = json.loads(text)["resources"][0]
    assert set(resource["inputs"]["email_password"]) == {"secure"}
    assert set(resource["outputs"]["email_password"]) == {"secure"}
    # __provider is encrypted when the resource marks it secret; either way the
    # pickled provider must hold no credential.
    provider = resource["inputs"]["__provider"]
    if isinstance(provider, str):
        pickled = base64.b64decode(provider)
        for secret in secrets:
            assert secret.encode() not in pickled
    else:
        assert set(provider) == {"secure"}


def test_missing_secret_config_names_the_key(make_stack: Any, qlik_emulator: Emulator) -> None:
    stack = make_stack()
    del stack.config["email:password"]
    with pytest.raises(Exception, match="email:password"):
        stack.preview()
    assert writes(qlik_emulator) == []
