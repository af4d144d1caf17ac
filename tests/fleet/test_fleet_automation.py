"""The Automation API backend: its reading of the engine's events, and real runs with the CLI."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from pulumi.automation.events import EngineEvent

from qlik_email_resource.emulator import Emulator
from qlik_email_resource.fleet.automation import _Events, result_word, verification
from qlik_email_resource.fleet.cli import main
from qlik_email_resource.fleet.program import RESOURCE_TYPE

REPO = Path(__file__).resolve().parents[2]
needs_cli = pytest.mark.skipif(
    shutil.which("pulumi") is None, reason="needs the Pulumi CLI on PATH"
)


def _event(**body: object) -> EngineEvent:
    # The SDK's own parser turns the CLI's JSON event stream into these objects.
    return EngineEvent.from_json({"sequence": 1, "timestamp": 0, **body})


def _pre(op: str, type_: str = RESOURCE_TYPE, diffs: list[str] | None = None) -> EngineEvent:
    meta = {"op": op, "urn": f"urn:pulumi:s::p::{type_}::email", "type": type_, "provider": ""}
    if diffs is not None:
        meta["diffs"] = diffs
    return _event(resourcePreEvent={"metadata": meta})


def test_fleet_automation_events_give_op_fields_policies_and_error() -> None:
    events = _Events()
    events.handle(_pre("same", type_="pulumi:pulumi:Stack"))
    events.handle(_pre("update", diffs=["sender_name", "__provider"]))
    policy = {
        "message": "m", "color": "never", "policyName": "email-allowed-ports",
        "policyPackName": "qlik-email", "policyPackVersion": "0.1.0",
        "policyPackVersionTag": "", "enforcementLevel": "advisory",
    }
    events.handle(_event(policyEvent=policy))
    events.handle(_event(policyEvent=policy))  # the update phase reports it again
    events.handle(_event(diagnosticEvent={
        "message": "Traceback...\nQlikAuthenticationError: 401 the API key was refused\n",
        "color": "never", "severity": "error",
    }))
    assert events.op == "update"
    assert events.changed == ["sender_name"]
    assert events.violations == ["email-allowed-ports (advisory)"]
    assert not events.mandatory()
    assert events.error() == "QlikAuthenticationError: 401 the API key was refused"


def test_fleet_automation_replacement_is_reported_once() -> None:
    events = _Events()
    for op in ("create-replacement", "replace", "delete-replaced"):
        events.handle(_pre(op, diffs=["tenant_url"]))
    events.handle(_pre("same"))
    assert (events.op, events.changed) == ("replace", ["tenant_url"])


def test_fleet_automation_result_words_and_verification() -> None:
    assert result_word("create", preview=True) == "would create"
    assert result_word("same", preview=True) == "unchanged"
    assert result_word("update", preview=False) == "updated"
    assert verification({"is_valid": True}) == "valid"
    assert verification({"is_valid": False, "error_code": "INVALID_CREDENTIALS"}) == (
        "invalid (INVALID_CREDENTIALS)"
    )
    assert verification({}) == "-"


@needs_cli
def test_fleet_automation_up_twice_against_the_emulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Emulator(tenants=("demo", "acme"), workdir=tmp_path / "emu") as emu:
        info = emu.info
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "test-only")
        monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
        monkeypatch.setenv("QLIK_EMULATOR_API_URL", info["api_url"])
        monkeypatch.setenv("QLIK_EMULATOR_CA", info["ca_file"])
        monkeypatch.setenv("QLIK_EMULATOR_SMTP_PASSWORD", info["smtp"]["password"])
        monkeypatch.setenv("QLIK_DEMO_API_KEY", info["tenants"]["demo"]["api_key"])
        monkeypatch.setenv("QLIK_ACME_API_KEY", info["tenants"]["acme"]["api_key"])
        args = ["up", str(REPO / "examples" / "tenants.yaml"), "--policy-pack",
                str(REPO / "policies"), "--state-dir", str(tmp_path / "state")]
        out = io.StringIO()
        assert main(args, stdout=out, stderr=io.StringIO()) == 0, out.getvalue()
        assert "up: 2 tenants: 2 created" in out.getvalue()
        emu.clear_requests()
        out = io.StringIO()
        assert main(args, stdout=out, stderr=io.StringIO()) == 0, out.getvalue()
        assert "up: 2 tenants: 2 unchanged" in out.getvalue()
        assert [r for r in emu.requests() if r["method"] != "GET"] == []
        for secret in (info["smtp"]["password"], info["tenants"]["demo"]["api_key"]):
            assert secret not in out.getvalue()
        # state lives in the file backend under --state-dir, secrets encrypted
        state_text = "".join(p.read_text() for p in (tmp_path / "state").rglob("*.json"))
        assert info["tenants"]["acme"]["api_key"] not in state_text
