"""The fleet command end to end, offline: 20 tenants of one emulator, real provider and pack."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from qlik_email_resource.emulator import Emulator
from qlik_email_resource.fleet.cli import main
from qlik_email_resource.policy_pack.rules import ALLOWED_PORTS, TENANT_URL, TLS_REQUIRED

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
            "policy_config": {TENANT_URL: {"allowLocalhost": True}},
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


def _run(fleet: Fleet, operation: str, state: Path, *extra: str,
         stdin: io.StringIO | None = None) -> Run:
    out, err = io.StringIO(), io.StringIO()
    packs = ["--policy-pack", POLICIES] if operation in ("preview", "up") else []
    code = main(
        [operation, str(fleet.file), "--offline", *packs,
         "--state-dir", str(state), "--parallel", "4", *extra],
        stdout=out, stderr=err, stdin=stdin,
    )
    run = Run(code, out.getvalue(), err.getvalue())
    for secret in fleet.secrets:
        assert secret not in run.out + run.err, "a secret reached the fleet's output"
    return run


def _writes(emu: Emulator) -> list[dict]:
    return [r for r in emu.requests() if r["method"] in WRITES]


def _gets(emu: Emulator) -> list[dict]:
    return [r for r in emu.requests() if r["method"] == "GET"]


def _edited(fleet: Fleet, folder: Path, edit: Callable[[dict], None]) -> Fleet:
    document = yaml.safe_load(fleet.file.read_text())
    edit(document)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tenants.yaml"
    path.write_text(yaml.safe_dump(document))
    return Fleet(fleet.emu, path, fleet.secrets)


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
    # a converged fleet costs one read per tenant (the refresh) and no write
    assert _writes(emu) == []
    assert sorted(r["tenant"] for r in _gets(emu)) == sorted(TENANTS)
    assert third.row("tenant-00")[4] == "valid"  # what the tenant said in this run

    # a change in the defaults reaches every tenant as an update of that field
    document = yaml.safe_load(fleet.file.read_text())
    document["defaults"]["sender_name"] = "Reports"
    changed_file = tmp_path / "changed.yaml"
    changed_file.write_text(yaml.safe_dump(document))
    emu.clear_requests()
    fourth = _run(Fleet(emu, changed_file, fleet.secrets), "up", tmp_path)
    assert fourth.code == 0
    assert fourth.row("tenant-03")[:3] == [
        "tenant-03", "updated", "sender_name: (unset) → 'Reports'"
    ]
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
    assert run.code == 5  # the Pulumi CLI's exit code for a policy violation
    row = run.row("tenant-05")
    assert row[:2] == ["tenant-05", "blocked"]
    assert f"{TLS_REQUIRED} (mandatory)" in row[3]
    assert run.row("tenant-06")[:2] == ["tenant-06", "created"]
    assert {r["tenant"] for r in _writes(emu)} == {"tenant-06"}

    # the gate holds in a preview too: non-zero, "blocked", and the tenant untouched
    emu.clear_requests()
    preview = _run(Fleet(emu, path, fleet.secrets), "preview", tmp_path / "state",
                   "--tenant", "tenant-05", "--tenant", "tenant-06")
    assert preview.code == 5, preview.out
    assert preview.row("tenant-05")[:2] == ["tenant-05", "blocked"]
    assert preview.row("tenant-06")[:2] == ["tenant-06", "unchanged"]
    assert _writes(emu) == []


def test_fleet_offline_missing_credential_fails_that_tenant_only(
    fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet.emu.reset()
    monkeypatch.delenv("KEY_TENANT_09")
    run = _run(fleet, "up", tmp_path, "--tenant", "tenant-09", "--tenant", "tenant-10")
    assert run.code == 1
    assert run.row("tenant-09")[:2] == ["tenant-09", "failed"]
    assert "environment variable KEY_TENANT_09 is not set (tenants file: `api_key_env: " \
        "KEY_TENANT_09`)" in run.out
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


def _console_change(emu: Emulator, tenant: str, **fields: object) -> None:
    """An out-of-band change, as if made in the Qlik console."""
    smtp = emu.info["smtp"]
    emu.set_config(tenant, {
        "serverAddress": "email-smtp.eu-west-2.amazonaws.com", "serverPort": 2465,
        "securityType": "SSL/TLS", "username": smtp["username"],
        "emailAddress": "reports@example.com", "emailPassword": smtp["password"], **fields,
    })


def test_fleet_offline_drift_is_seen_checked_and_repaired(fleet: Fleet, tmp_path: Path) -> None:
    emu = fleet.emu
    emu.reset()
    names = ["--tenant", "tenant-11", "--tenant", "tenant-12"]
    assert _run(fleet, "up", tmp_path, *names).code == 0
    state_file = tmp_path / "tenant-11.json"
    recorded = state_file.read_bytes()

    _console_change(emu, "tenant-11", senderName="Console")
    emu.clear_requests()
    preview = _run(fleet, "preview", tmp_path, *names, "--json", str(tmp_path / "p.json"))
    assert preview.code == 0, preview.out
    # the refresh read the tenant: the change the stack would undo shows as old -> new
    assert preview.row("tenant-11")[:3] == [
        "tenant-11", "would update", "sender_name: 'Console' → (unset)"
    ]
    assert preview.row("tenant-12")[:2] == ["tenant-12", "unchanged"]
    assert "1 drifted" in preview.out
    # one GET per tenant; the drifted one is read again by the refresh that records it
    assert _writes(emu) == []
    assert sorted(r["tenant"] for r in _gets(emu)) == ["tenant-11", "tenant-11", "tenant-12"]
    assert state_file.read_bytes() == recorded  # a preview writes no state
    report = json.loads((tmp_path / "p.json").read_text())
    drift = next(t for t in report["tenants"] if t["tenant"] == "tenant-11")["drift"]
    assert {"field": "sender_name", "old": None, "new": "Console", "secret": False} in drift

    # a drift check from cron: any pending change fails the run
    check = _run(fleet, "preview", tmp_path, *names, "--expect-no-changes")
    assert check.code == 7, check.out
    assert "--expect-no-changes: 1 tenant(s) had changes: tenant-11" in check.out

    # `refresh` records the drift in state and says so
    refreshed = _run(fleet, "refresh", tmp_path, *names)
    assert refreshed.code == 0, refreshed.out
    assert refreshed.row("tenant-11")[:3] == [
        "tenant-11", "drifted", "-"
    ]
    assert state_file.read_bytes() != recorded

    # `up` repairs it; afterwards the drift check passes
    emu.clear_requests()
    repaired = _run(fleet, "up", tmp_path, *names)
    assert repaired.code == 0, repaired.out
    assert repaired.row("tenant-11")[:3] == [
        "tenant-11", "updated", "sender_name: 'Console' → (unset)"
    ]
    assert {r["tenant"] for r in _writes(emu)} == {"tenant-11"}
    assert _run(fleet, "preview", tmp_path, *names, "--expect-no-changes").code == 0


def test_fleet_offline_verified_is_what_the_tenant_says_now(
    fleet: Fleet, tmp_path: Path
) -> None:
    emu = fleet.emu
    emu.reset()
    names = ["--tenant", "tenant-13"]
    first = _run(fleet, "up", tmp_path, *names)
    assert first.row("tenant-13")[4] == "valid"
    # the console drops the password: the tenant now says its config is incomplete
    smtp = emu.info["smtp"]
    emu.set_config("tenant-13", {
        "serverAddress": "email-smtp.eu-west-2.amazonaws.com", "serverPort": 2465,
        "securityType": "SSL/TLS", "username": smtp["username"],
        "emailAddress": "reports@example.com",
    })
    preview = _run(fleet, "preview", tmp_path, *names)
    assert preview.row("tenant-13")[4].startswith("invalid ("), preview.out
    # without a refresh nobody asked the tenant: no stale "valid" from state
    emu.clear_requests()
    blind = _run(fleet, "preview", tmp_path, *names, "--no-refresh")
    assert blind.row("tenant-13")[:2] == ["tenant-13", "unchanged"]
    assert blind.row("tenant-13")[4] == "-"
    assert emu.requests() == []  # --no-refresh: not one call


def test_fleet_offline_destroy_asks_before_deleting_many(fleet: Fleet, tmp_path: Path) -> None:
    emu = fleet.emu
    emu.reset()
    names = ["--tenant", "tenant-16", "--tenant", "tenant-17"]
    assert _run(fleet, "up", tmp_path, *names).code == 0
    emu.clear_requests()

    refused = _run(fleet, "destroy", tmp_path, *names)  # no terminal, no --yes
    assert refused.code == 2
    assert "pass --yes to confirm" in refused.err
    assert emu.requests() == []

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    wrong = _run(fleet, "destroy", tmp_path, *names, stdin=Terminal("nope\n"))
    assert wrong.code == 2 and "nothing was destroyed" in wrong.err
    assert emu.requests() == []

    typed = _run(fleet, "destroy", tmp_path, *names, stdin=Terminal("qlik-email\n"))
    assert typed.code == 0, typed.out
    assert "Type the project name (qlik-email) to confirm" in typed.err
    assert typed.row("tenant-16")[:3] == ["tenant-16", "deleted", "(configuration deleted)"]
    deletes = [r for r in emu.requests() if r["method"] == "DELETE"]
    assert sorted(r["tenant"] for r in deletes) == ["tenant-16", "tenant-17"]

    again = _run(fleet, "destroy", tmp_path, *names, "--yes")
    assert again.code == 0
    assert again.row("tenant-16")[:2] == ["tenant-16", "not deployed"]


@pytest.mark.parametrize(
    ("policy_config", "expected"),
    [
        ({"email-tls-requird": {"allowStartTls": False}},
         "policy_config.email-tls-requird: no policy of this name in the policy pack "
         f"(did you mean '{TLS_REQUIRED}'?)"),
        ({ALLOWED_PORTS: {"allowedPort": [465]}},
         f"policy_config.{ALLOWED_PORTS}.allowedPort: unknown setting "
         "(did you mean 'allowedPorts'?)"),
        ({ALLOWED_PORTS: {"allowedPorts": "465"}},
         f"policy_config.{ALLOWED_PORTS}.allowedPorts: '465' is not of type 'array'"),
        ({ALLOWED_PORTS: {"allowedPorts": [465, "x"]}},
         f"policy_config.{ALLOWED_PORTS}.allowedPorts.1: 'x' is not of type 'integer'"),
        ({TLS_REQUIRED: "mandatroy"},
         f"policy_config.{TLS_REQUIRED}.enforcementLevel: 'mandatroy' is not an "
         "enforcement level"),
        ({"all": "strict"}, "policy_config.all.enforcementLevel: 'strict' is not"),
    ],
)
def test_fleet_offline_policy_config_is_checked_before_anything_runs(
    fleet: Fleet, tmp_path: Path, policy_config: dict, expected: str
) -> None:
    emu = fleet.emu
    emu.reset()
    bad = _edited(fleet, tmp_path, lambda d: d.update(policy_config=policy_config))
    run = _run(bad, "up", tmp_path / "state")
    assert run.code == 2
    assert expected in run.err, run.err
    assert emu.requests() == []  # not one tenant was touched
    assert not list((tmp_path / "state").glob("*.json"))


def test_fleet_offline_policy_config_without_a_pack_is_an_error(
    fleet: Fleet, tmp_path: Path
) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(["preview", str(fleet.file), "--offline", "--no-policy-pack",
                 "--state-dir", str(tmp_path)], stdout=out, stderr=err)
    assert code == 2
    assert "policy_config is set but no policy pack runs (--no-policy-pack)" in err.getvalue()


def test_fleet_offline_shorthand_levels_and_all_reach_the_pack(
    fleet: Fleet, tmp_path: Path
) -> None:
    emu = fleet.emu
    emu.reset()

    def edit(document: dict) -> None:
        document["tenants"]["tenant-18"]["email"] = {"security_type": "none",
                                                     "server_port": 2587}
        # every policy advisory: the plain-SMTP tenant is reported, not blocked
        document["policy_config"] = {"all": "advisory",
                                     TENANT_URL: {"allowLocalhost": True}}

    relaxed = _edited(fleet, tmp_path, edit)
    run = _run(relaxed, "preview", tmp_path / "state", "--tenant", "tenant-18")
    assert run.code == 0, run.out + run.err
    assert run.row("tenant-18")[:2] == ["tenant-18", "would create"]
    assert f"{TLS_REQUIRED} (advisory)" in run.row("tenant-18")[3]


def test_fleet_offline_error_hint_names_the_tenants_file_key(
    fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet.emu.reset()
    monkeypatch.setenv("KEY_TENANT_19", "not-the-key")
    run = _run(fleet, "up", tmp_path, "--tenant", "tenant-19")
    assert run.code == 1
    error = next(line for line in run.out.splitlines() if line.startswith("  tenant-19: "))
    assert "$KEY_TENANT_19 (tenants.tenant-19: api_key_env: KEY_TENANT_19)" in error, error
    assert "qlik:apiKey" not in error and "QLIK_API_KEY" not in error


def test_fleet_offline_a_secret_pasted_into_a_setting_is_not_shown(
    fleet: Fleet, tmp_path: Path
) -> None:
    emu = fleet.emu
    emu.reset()
    password = emu.info["smtp"]["password"]
    names = ["--tenant", "tenant-08"]
    assert _run(fleet, "up", tmp_path / "state", *names).code == 0
    # someone pastes the SMTP password into the sender name
    pasted = _edited(fleet, tmp_path, lambda d: d["tenants"]["tenant-08"].update(
        email={"sender_name": f"{password} reports"}))
    report = tmp_path / "report.json"
    run = _run(pasted, "preview", tmp_path / "state", *names, "--json", str(report))
    assert run.row("tenant-08")[:3] == [
        "tenant-08", "would update", "sender_name: (unset) → '[secret] reports'"
    ]
    assert password not in report.read_text()  # _run scanned the table and progress
