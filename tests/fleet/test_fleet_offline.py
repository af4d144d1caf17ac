"""The fleet command end to end, offline: 20 tenants of one emulator, real provider and pack."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from qlik_email_resource.emulator import Emulator
from qlik_email_resource.fleet.cli import main

REPO = Path(__file__).resolve().parents[2]
POLICIES = str(REPO / "policies")
TENANTS = [f"tenant-{i:02d}" for i in range(20)]
FAILING = "tenant-07"
WRITES = ("PUT", "PATCH", "POST", "DELETE")


@dataclass
class Fleet:
    emu: Emulator
    file: Path
    secrets: list[str]


@dataclass
class Run:
    code: int
    out: str
    err: str

    def row(self, tenant: str) -> list[str]:
        for line in self.out.splitlines():
            if line.startswith(tenant + " "):
                return re.split(r"\s{2,}", line.strip())
        raise AssertionError(f"no row for {tenant} in:\n{self.out}")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    work = tmp_path_factory.mktemp("fleet")
    emu = Emulator(tenants=TENANTS, workdir=work / "emulator")
    emu.start()
    info = emu.info
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FLEET_SMTP_PASSWORD", info["smtp"]["password"])
        tenants = {}
        for name, tenant in info["tenants"].items():
            var = "KEY_" + name.upper().replace("-", "_")
            env.setenv(var, tenant["api_key"])
            tenants[name] = {"url": tenant["url"], "api_key_env": var,
                             "ca_bundle": info["ca_file"]}
        document = {
            "defaults": {
                "server_address": "email-smtp.eu-west-2.amazonaws.com",
                "server_port": 2465,
                "security_type": "SSL/TLS",
                "username": info["smtp"]["username"],
                "email_password_env": "FLEET_SMTP_PASSWORD",
                "email_address": "reports@example.com",
                "verify_connection": True,
            },
            "tenants": tenants,
            "policy_config": {"email-tenant-url": {"allowLocalhost": True}},
        }
        path = work / "tenants.yaml"
        path.write_text(yaml.safe_dump(document))
        secrets = [info["smtp"]["password"]] + [
            t[k] for t in info["tenants"].values() for k in ("api_key", "client_secret")
        ]
        try:
            yield Fleet(emu, path, secrets)
        finally:
            emu.stop()


def _run(fleet: Fleet, operation: str, state: Path, *extra: str) -> Run:
    out, err = io.StringIO(), io.StringIO()
    code = main(
        [operation, str(fleet.file), "--offline", "--policy-pack", POLICIES,
         "--state-dir", str(state), "--parallel", "4", *extra],
        stdout=out, stderr=err,
    )
    run = Run(code, out.getvalue(), err.getvalue())
    for secret in fleet.secrets:
        assert secret not in run.out + run.err, "a secret reached the fleet's output"
    return run


def _writes(emu: Emulator) -> list[dict]:
    return [r for r in emu.requests() if r["method"] in WRITES]


def test_fleet_offline_twenty_tenants_one_failing_then_repaired_then_noop(
    fleet: Fleet, tmp_path: Path
) -> None:
    emu = fleet.emu
    emu.reset()
    emu.add_fault(FAILING, "status", status=500, count=1000)

    first = _run(fleet, "up", tmp_path)
    assert first.code == 1, first.out
    assert first.row(FAILING)[:2] == [FAILING, "failed"]
    for tenant in TENANTS:
        if tenant != FAILING:
            assert first.row(tenant) == [tenant, "created", "(new)", "-", "valid", "-"]
    assert "up: 20 tenants: 19 created, 1 failed" in first.out
    assert re.search(rf"  {FAILING}: .*HTTP 500", first.out), first.out
    assert "1 of 20 tenants failed" in first.out
    # progress: a header naming the offline runner, then one line per tenant
    assert "through the offline runner" in first.err and "not the Pulumi CLI" in first.err
    assert len(re.findall(r"^\[\s*\d+/20\] ", first.err, re.M)) == 20
    written = {r["tenant"] for r in _writes(emu) if r["method"] == "PUT"}
    assert written == set(TENANTS) - {FAILING}

    emu.clear_faults()
    emu.clear_requests()
    second = _run(fleet, "up", tmp_path)
    assert second.code == 0, second.out
    assert second.row(FAILING)[:3] == [FAILING, "created", "(new)"]
    assert "up: 20 tenants: 1 created, 19 unchanged" in second.out
    assert {r["tenant"] for r in _writes(emu)} == {FAILING}

    emu.clear_requests()
    third = _run(fleet, "up", tmp_path)
    assert third.code == 0
    assert "up: 20 tenants: 20 unchanged" in third.out
    assert _writes(emu) == []  # a converged fleet costs reads only

    # a change in the defaults reaches every tenant as an update of that field
    document = yaml.safe_load(fleet.file.read_text())
    document["defaults"]["sender_name"] = "Reports"
    changed_file = tmp_path / "changed.yaml"
    changed_file.write_text(yaml.safe_dump(document))
    emu.clear_requests()
    fourth = _run(Fleet(emu, changed_file, fleet.secrets), "up", tmp_path)
    assert fourth.code == 0
    assert fourth.row("tenant-03")[:3] == ["tenant-03", "updated", "sender_name"]
    assert {r["tenant"] for r in _writes(emu) if r["method"] in ("PUT", "PATCH")} == set(TENANTS)


def test_fleet_offline_preview_writes_nothing(fleet: Fleet, tmp_path: Path) -> None:
    emu = fleet.emu
    emu.reset()
    run = _run(fleet, "preview", tmp_path, "--tenant", "tenant-01", "--tenant", "tenant-02")
    assert run.code == 0, run.out
    assert run.row("tenant-01")[:2] == ["tenant-01", "would create"]
    assert "preview: 2 tenants: 2 would create" in run.out
    assert _writes(emu) == []
    assert not list(tmp_path.glob("*.json"))  # no state either


def test_fleet_offline_policy_violation_blocks_only_that_tenant(
    fleet: Fleet, tmp_path: Path
) -> None:
    emu = fleet.emu
    emu.reset()
    document = yaml.safe_load(fleet.file.read_text())
    document["tenants"]["tenant-05"]["email"] = {"security_type": "none", "server_port": 2587}
    path = tmp_path / "tenants.yaml"
    path.write_text(yaml.safe_dump(document))
    run = _run(Fleet(emu, path, fleet.secrets), "up", tmp_path / "state",
               "--tenant", "tenant-05", "--tenant", "tenant-06")
    assert run.code == 1
    row = run.row("tenant-05")
    assert row[:2] == ["tenant-05", "blocked"]
    assert "email-tls-required (mandatory)" in row[3]
    assert run.row("tenant-06")[:2] == ["tenant-06", "created"]
    assert {r["tenant"] for r in _writes(emu)} == {"tenant-06"}


def test_fleet_offline_missing_credential_fails_that_tenant_only(
    fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet.emu.reset()
    monkeypatch.delenv("KEY_TENANT_09")
    run = _run(fleet, "up", tmp_path, "--tenant", "tenant-09", "--tenant", "tenant-10")
    assert run.code == 1
    assert run.row("tenant-09")[:2] == ["tenant-09", "failed"]
    assert "environment variable KEY_TENANT_09 (api_key_env) is not set" in run.out
    assert run.row("tenant-10")[:2] == ["tenant-10", "created"]


def test_fleet_offline_oauth_client_tenant(
    fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = fleet.emu
    emu.reset()
    tenant = emu.tenant("tenant-15")
    monkeypatch.setenv("T15_CLIENT_ID", tenant.client_id)
    monkeypatch.setenv("T15_CLIENT_SECRET", tenant.client_secret)
    document = yaml.safe_load(fleet.file.read_text())
    entry = document["tenants"]["tenant-15"]
    del entry["api_key_env"]
    entry.update(client_id_env="T15_CLIENT_ID", client_secret_env="T15_CLIENT_SECRET")
    path = tmp_path / "tenants.yaml"
    path.write_text(yaml.safe_dump(document))
    # An API-key tenant first: its provider config must not leak into the OAuth one.
    run = _run(Fleet(emu, path, fleet.secrets), "up", tmp_path / "state",
               "--tenant", "tenant-14", "--tenant", "tenant-15")
    assert run.code == 0, run.out
    assert run.row("tenant-15") == ["tenant-15", "created", "(new)", "-", "valid", "-"]
    token_calls = [r for r in emu.requests() if r["path"].endswith("/oauth/token")]
    assert {r["tenant"] for r in token_calls} == {"tenant-15"}
