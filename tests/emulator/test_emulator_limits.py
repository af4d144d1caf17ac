"""Rate limits, fault injection and the admin interface."""

from __future__ import annotations

import time

import pytest
import requests


def test_rate_limit_429_with_retry_after(qlik_emulator_factory, h):
    emu = qlik_emulator_factory(rate_limits={"tier1": 3, "tier2": 2, "window": 60})
    api = h.Api(emu, emu.tenant("demo"))
    assert [api.get().status_code for _ in range(3)] == [200, 200, 200]
    resp = api.get()
    assert resp.status_code == 429
    retry = int(resp.headers["Retry-After"])
    assert 1 <= retry <= 20
    assert resp.json() == {"errors": [{
        "code": "HTTP-429", "title": "API rate limit reached.",
        "detail": f"You need to wait {retry} seconds until limit is lifted."}]}
    # Tier 2 has its own bucket
    assert [api.action("validate").status_code for _ in range(3)] == [200, 200, 429]
    # per user: the viewer key of the same tenant has its own buckets
    viewer = h.Api(emu, emu.tenant("demo"), token=emu.tenant("demo").viewer_api_key)
    assert viewer.action("validate").status_code == 200
    # the 429s are logged
    assert [r["status"] for r in emu.requests()].count(429) == 2


def test_rate_limit_refills(qlik_emulator_factory, h):
    emu = qlik_emulator_factory(rate_limits={"tier1": 600, "tier2": 1, "window": 0.1})
    api = h.Api(emu, emu.tenant("demo"))
    assert api.get().status_code == 200
    resp = api.get()
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "1"
    time.sleep(0.15)  # 600/min = 10 per second: a token is back
    assert api.get().status_code == 200


def test_rate_limits_off(qlik_emulator_factory, h):
    emu = qlik_emulator_factory(rate_limits=False)
    api = h.Api(emu, emu.tenant("demo"))
    assert {api.action("validate").status_code for _ in range(5)} == {200}


def test_rate_limit_bad_settings(qlik_emulator_factory):
    with pytest.raises(ValueError, match="tier1"):
        qlik_emulator_factory(rate_limits={"tier3": 1})


def test_fault_status(qlik_emulator, api, h):
    qlik_emulator.add_fault("demo", "status", status=503, count=2)
    assert [api.get().status_code for _ in range(3)] == [503, 503, 200]
    qlik_emulator.add_fault("demo", "status", status=429, count=1, retry_after=7)
    resp = api.get()
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "7"
    assert resp.json()["errors"][0]["code"] == "HTTP-429"
    # only the named methods
    qlik_emulator.add_fault("demo", "status", status=500, count=1, methods=["PUT"])
    assert api.get().status_code == 200
    resp = api.put(h.basic_config(qlik_emulator))
    assert resp.status_code == 500
    assert h.errors(resp)[0] == "HTTP-500"
    # other tenants are untouched
    qlik_emulator.add_fault("demo", "status", status=502, count=1)
    assert h.Api(qlik_emulator, qlik_emulator.tenant("acme")).get().status_code == 200


def test_fault_latency(qlik_emulator, api):
    qlik_emulator.add_fault("demo", "latency", seconds=0.3, count=1)
    started = time.monotonic()
    assert api.get().status_code == 200
    slow = time.monotonic() - started
    # the latency is really applied (a lower bound, not a speed assertion)
    assert slow >= 0.3
    assert qlik_emulator.list_faults() == []


def test_fault_drop(qlik_emulator, api):
    qlik_emulator.add_fault("demo", "drop", count=1)
    with pytest.raises(requests.ConnectionError):
        api.get()
    assert api.get().status_code == 200
    assert [r["status"] for r in qlik_emulator.requests()] == [0, 200]


def test_fault_patch_removed(qlik_emulator, api, h):
    qlik_emulator.add_fault("demo", "patch_removed")
    for _ in range(2):
        resp = api.patch([{"op": "replace", "path": "/username", "value": "x"}])
        assert resp.status_code == 405
        assert h.errors(resp)[0] == "HTTP-405"
    assert api.put(h.basic_config(qlik_emulator)).status_code == 204
    qlik_emulator.clear_faults()
    qlik_emulator.add_fault("demo", "patch_removed", status=410)
    assert api.patch([]).status_code == 410


def test_admin_interface(qlik_emulator, qlik_admin, api, h):
    admin, session = qlik_emulator.admin_url, qlik_admin  # the plugin's token-bearing session
    assert session.get(admin + "/health", timeout=10).json() == {"status": "ok"}
    api.get()
    assert session.get(admin + "/requests", timeout=10).json() == [
        {"tenant": "demo", "method": "GET", "path": h.CONFIG, "status": 200}]
    assert session.delete(admin + "/requests", timeout=10).status_code == 204
    assert session.get(admin + "/requests", timeout=10).json() == []

    resp = session.post(admin + "/faults", json={"tenant": "demo", "kind": "status",
                                                 "status": 503, "count": 1}, timeout=10)
    assert resp.status_code == 201
    assert api.get().status_code == 503
    session.post(admin + "/faults", json={"tenant": "demo", "kind": "status",
                                          "status": 503, "count": 5}, timeout=10)
    assert session.delete(admin + "/faults", timeout=10).status_code == 204
    assert api.get().status_code == 200

    for bad in ({"tenant": "demo", "kind": "explode"}, {"tenant": "ghost", "kind": "drop"},
                {"tenant": "demo", "kind": "status"}, {"kind": "drop"},
                {"tenant": "demo", "kind": "latency", "seconds": -1}):
        resp = session.post(admin + "/faults", json=bad, timeout=10)
        assert resp.status_code == 400, bad
        assert resp.json()["errors"][0]["title"]

    # SMTP users and tenants
    assert session.post(admin + "/smtp-users", json={"username": "u1", "password": "p1"},
                        timeout=10).status_code == 204
    resp = session.post(admin + "/tenants", json={"name": "beta"}, timeout=10)
    assert resp.status_code == 201
    beta = qlik_emulator.tenant("beta")
    assert resp.json()["api_key"] == beta.api_key
    assert h.Api(qlik_emulator, beta).get().status_code == 200
    assert "beta" in session.get(admin + "/tenants", timeout=10).json()
    resp = session.get(admin + "/nope", timeout=10)
    assert resp.status_code == 404
    assert h.errors(resp)[0] == "ADMIN-404"


def test_admin_refuses_tenant_tokens(qlik_emulator, qlik_tenant, h):
    for path in ("/requests", "/mailbox", "/health"):
        resp = requests.get(qlik_emulator.admin_url + path, timeout=10,
                            headers={"Authorization": f"Bearer {qlik_tenant.api_key}"})
        assert resp.status_code == 403
        assert h.errors(resp)[0] == "ADMIN-403"


def test_admin_not_reachable_from_tenant_url(qlik_emulator, api):
    for path in ("/requests", "/faults", "/mailbox"):
        assert api.call("GET", path).status_code == 404
        assert api.call("GET", "/../.." + path).status_code == 404


def test_mailbox_html_escapes(qlik_emulator, api, h):
    assert api.put(h.basic_config(qlik_emulator)).status_code == 204
    api.action("send-test-email", {"recipient": "r@example.com",
                                   "subject": "<script>alert(1)</script>", "body": "<b>x"})
    page = requests.get(qlik_emulator.mailbox_url, headers={"Accept": "text/html"},
                        timeout=10).text
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert requests.delete(qlik_emulator.admin_url + "/mailbox", timeout=10,
                           headers=qlik_emulator.admin_headers).status_code == 204
    assert qlik_emulator.mailbox() == []
