"""The final table, the JSON report and the progress lines."""

from __future__ import annotations

import io
import json
from pathlib import Path

from qlik_email_resource.fleet.report import (
    NEW,
    FieldChange,
    PolicyFinding,
    Progress,
    TenantResult,
    redact,
    render_table,
    write_json,
)
from qlik_email_resource.policy_pack.rules import ALLOWED_PORTS

ADVISORY = PolicyFinding(ALLOWED_PORTS, "advisory", "TenantEmailConfig fails ...")


def _results() -> list[TenantResult]:
    return [
        TenantResult("beta", "updated", changes=[FieldChange("server_port", 587, 465.0)],
                     verification="valid"),
        TenantResult("alpha", "created", changes=[NEW], verification="valid",
                     violations=[ADVISORY]),
        TenantResult("gamma", "failed", error="HTTP 500 from https://g/api/v1/transports"),
        TenantResult("delta", "updated", changes=[FieldChange("email_password", secret=True)],
                     verification="invalid (INVALID_CREDENTIALS)"),
    ]


def test_fleet_report_table_has_a_row_per_tenant_and_errors_below() -> None:
    table = render_table(_results(), "up")
    lines = table.splitlines()
    assert lines[0].split() == ["TENANT", "RESULT", "CHANGED", "POLICY", "VERIFIED", "ERROR"]
    rows = [line.split()[0] for line in lines[2:6]]
    assert rows == ["alpha", "beta", "delta", "gamma"]  # sorted, readable
    assert f"{ALLOWED_PORTS} (advisory)" in lines[2]
    assert "up: 4 tenants: 1 created, 1 failed, 2 updated" in table
    assert "  gamma: HTTP 500 from https://g/api/v1/transports" in table
    assert "1 of 4 tenants failed or were blocked" in table


def test_fleet_report_changed_shows_old_to_new_and_hides_secrets() -> None:
    table = render_table(_results(), "up")
    beta = next(line for line in table.splitlines() if line.startswith("beta"))
    assert "server_port: 587 → 465" in beta  # a port read back as 465.0 prints as 465
    delta = next(line for line in table.splitlines() if line.startswith("delta"))
    assert "email_password (changed)" in delta and "→" not in delta
    assert FieldChange("sender_name", None, "Acme").text() == "sender_name: (unset) → 'Acme'"
    long = FieldChange("sender_name", "a" * 80, "b").text()
    assert len(long) == 60 and long.endswith("...")


def test_fleet_report_all_good_has_no_error_section() -> None:
    table = render_table([TenantResult("a", "unchanged", verification="valid")], "up")
    assert "Errors:" not in table and "failed" not in table


def test_fleet_report_json_has_every_field_per_tenant(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    results = _results()
    results[0].drift = [FieldChange("server_port", 465, 587)]
    write_json(path, results, operation="up", project="p", backend="offline", exit_code=1,
               seconds=1.5, options={"refresh": True})
    document = json.loads(path.read_text())
    assert document["exit_code"] == 1 and document["options"] == {"refresh": True}
    assert document["summary"] == {"updated": 2, "created": 1, "failed": 1}
    by_name = {t["tenant"]: t for t in document["tenants"]}
    assert set(by_name["beta"]) == {
        "tenant", "result", "changes", "drift", "policy", "verification", "error",
        "unexpected_changes", "seconds",
    }
    assert by_name["beta"]["changes"] == [
        {"field": "server_port", "old": 587, "new": 465.0, "secret": False}
    ]
    assert by_name["beta"]["drift"][0]["old"] == 465
    # a secret change says only that it changed
    assert by_name["delta"]["changes"] == [{"field": "email_password", "secret": True}]
    assert by_name["alpha"]["policy"] == [
        {"policy": ALLOWED_PORTS, "level": "advisory",
         "message": "TenantEmailConfig fails ..."}
    ]
    assert by_name["gamma"]["error"].startswith("HTTP 500")
    assert by_name["alpha"]["error"] is None


def test_fleet_report_progress_on_a_terminal_prints_every_tenant_live() -> None:
    stream = io.StringIO()
    progress = Progress(3, "up", stream, live=True)
    progress.start("a")
    progress.finish(TenantResult("a", "updated", changes=[FieldChange("sender_name", "x", "y")],
                                 seconds=0.25))
    progress.finish(TenantResult("b", "unchanged"))
    progress.finish(TenantResult("c", "blocked", error="x" * 300))
    progress.close()
    text = stream.getvalue()
    assert "\r\033[K" in text  # the live counter is redrawn in place
    lines = [line.split("\r\033[K")[-1] for line in text.split("\n") if "[" in line]
    assert any(line.startswith("[1/3] a: updated (sender_name) in 0.2s") for line in lines)
    assert any("[2/3] b: unchanged in 0.0s" in line for line in lines)
    assert any(f"[3/3] c: blocked ({'x' * 97}...) in 0.0s" in line for line in lines)


def test_fleet_report_progress_in_ci_is_quiet(monkeypatch) -> None:
    class FakeTty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("CI", "true")  # a CI runner that hands jobs a pseudo-tty
    stream = FakeTty()
    progress = Progress(3, "up", stream)
    progress.start("a")
    progress.finish(TenantResult("a", "unchanged"))
    progress.finish(TenantResult("b", "failed", error="boom\ntraceback"))
    progress.finish(TenantResult("c", "updated", changes=[FieldChange("sender_name", "x", "y")]))
    progress.close()
    # no control characters, nothing for the unchanged tenant
    assert stream.getvalue().splitlines() == [
        "[2/3] b: failed (boom) in 0.0s",
        "[3/3] c: updated (sender_name) in 0.0s",
    ]
    monkeypatch.delenv("CI")
    assert Progress(1, "up", FakeTty()).tty is True
    assert Progress(1, "up", io.StringIO()).tty is False


def test_fleet_report_redact_replaces_every_secret() -> None:
    assert redact("key abc and abcdef", ["abc", "abcdef", ""]) == "key [secret] and [secret]"


def test_fleet_report_redact_changes_scrubs_values_not_fields() -> None:
    from qlik_email_resource.fleet.report import redact_changes

    cleaned = redact_changes(
        [FieldChange("sender_name", "pw-123 reports", "x"), FieldChange("email_password",
                                                                        secret=True)],
        ["pw-123"],
    )
    assert cleaned[0] == FieldChange("sender_name", "[secret] reports", "x")
    assert cleaned[1] == FieldChange("email_password", secret=True)
