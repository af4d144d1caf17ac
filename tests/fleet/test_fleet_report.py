"""The final table and the progress lines."""

from __future__ import annotations

import io

from qlik_email_resource.fleet.report import Progress, TenantResult, redact, render_table


def test_fleet_report_table_has_a_row_per_tenant_and_errors_below() -> None:
    results = [
        TenantResult("beta", "updated", changed=["server_port"], verification="valid"),
        TenantResult("alpha", "created", changed=["(new)"], verification="valid",
                     violations=["email-allowed-ports (advisory)"]),
        TenantResult("gamma", "failed", error="HTTP 500 from https://g/api/v1/transports"),
    ]
    table = render_table(results, "up")
    lines = table.splitlines()
    assert lines[0].split() == ["TENANT", "RESULT", "CHANGED", "POLICY", "VERIFIED", "ERROR"]
    rows = [line.split()[0] for line in lines[2:5]]
    assert rows == ["alpha", "beta", "gamma"]  # sorted, readable
    assert "email-allowed-ports (advisory)" in lines[2]
    assert "up: 3 tenants: 1 created, 1 failed, 1 updated" in table
    assert "  gamma: HTTP 500 from https://g/api/v1/transports" in table
    assert "1 of 3 tenants failed" in table


def test_fleet_report_all_good_has_no_error_section() -> None:
    table = render_table([TenantResult("a", "unchanged", verification="valid")], "up")
    assert "Errors:" not in table and "failed" not in table


def test_fleet_report_progress_prints_one_line_per_finished_tenant() -> None:
    stream = io.StringIO()
    progress = Progress(3, "up", stream)
    progress.start("a")
    progress.finish(TenantResult("a", "updated", changed=["sender_name"], seconds=0.25))
    progress.finish(TenantResult("b", "failed", error="boom\ntraceback"))
    progress.finish(TenantResult("c", "blocked", error="x" * 300))
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[:2] == [
        "[1/3] a: updated (sender_name) in 0.2s",
        "[2/3] b: failed (boom) in 0.0s",
    ]
    assert lines[2] == f"[3/3] c: blocked ({'x' * 97}...) in 0.0s"


def test_fleet_report_redact_replaces_every_secret() -> None:
    assert redact("key abc and abcdef", ["abc", "abcdef", ""]) == "key [secret] and [secret]"
