"""50 concurrent clients, each on its own tenant, get their own correct answers."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

CLIENTS = 50


def test_fifty_concurrent_clients(qlik_emulator, h):
    tenants = [qlik_emulator.add_tenant(f"load-{i}") for i in range(CLIENTS)]
    barrier = threading.Barrier(CLIENTS)

    def client(i: int) -> dict:
        tenant = tenants[i]
        api = h.Api(qlik_emulator, tenant)
        barrier.wait(timeout=30)
        body = h.basic_config(qlik_emulator, host=f"smtp{i}.example.com",
                              security=("SSL/TLS", "StartTLS", "none")[i % 3])
        put = api.put(body)
        got = api.get().json()
        patch = api.patch([{"op": "replace", "path": "/username",
                            "value": qlik_emulator.smtp_user[0]}])
        verify = api.action("verify-connection").json()
        sent = api.action("send-test-email", {"recipient": f"client{i}@example.com",
                                              "subject": f"load {i}", "body": str(i)}).json()
        return {"put": put.status_code, "patch": patch.status_code, "got": got,
                "verify": verify["success"], "sent": sent["success"],
                "tenant_id": tenant.tenant_id}

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(client, range(CLIENTS)))

    for i, r in enumerate(results):
        assert (r["put"], r["patch"], r["verify"], r["sent"]) == (204, 204, True, True), i
        assert r["got"]["tenantId"] == r["tenant_id"]
        assert r["got"]["serverAddress"] == f"smtp{i}.example.com"
    subjects = sorted(m["subject"] for m in qlik_emulator.mailbox())
    assert subjects == sorted(f"load {i}" for i in range(CLIENTS))
    assert len(qlik_emulator.requests()) == CLIENTS * 5
    assert {r["status"] for r in qlik_emulator.requests()} == {200, 204}
