"""Real SMTP behind the API: TLS, STARTTLS and plain, right and wrong passwords, routing."""

from __future__ import annotations

import socket

import pytest

SECURITY = ["SSL/TLS", "StartTLS", "none"]


def _local_port(emu, security):
    return {"SSL/TLS": emu.smtp.tls_port, "StartTLS": emu.smtp.starttls_port,
            "none": emu.smtp.plain_port}[security]


@pytest.mark.parametrize("security", SECURITY)
def test_routed_host_right_password(qlik_emulator, api, h, security):
    # A public host name is routed to the bundled listener for its securityType.
    body = h.basic_config(qlik_emulator, security=security, host="smtp.office365.com",
                          port=587)
    assert api.put(body).status_code == 204
    verify = api.action("verify-connection").json()
    assert verify == {"success": True, "connectionFailed": False,
                      "message": "Connection verified", "smtpResponseCode": 235}
    sent = api.action("send-test-email", {"recipient": "r@example.com", "subject": security,
                                          "body": "x"}).json()
    assert sent["success"] is True
    assert [m["subject"] for m in qlik_emulator.mailbox()] == [security]


@pytest.mark.parametrize("security", SECURITY)
def test_wrong_password_put_and_verify(qlik_emulator, api, h, security):
    resp = api.put(h.basic_config(qlik_emulator, security=security, password="bad-pw-xyz"))
    assert resp.status_code == 400
    assert h.errors(resp)[0] == "INPUTCHECK-1"
    assert "535" in h.errors(resp)[1]
    assert "bad-pw-xyz" not in resp.text
    # stored by PATCH (no verification), then verify-connection reports and counts it
    ops = [{"op": "replace", "path": f"/{k}", "value": v}
           for k, v in h.basic_config(qlik_emulator, security=security,
                                      password="bad-pw-xyz")["providerConfig"].items()
           if k != "senderName"]
    assert api.patch(ops).status_code == 204
    for expected_failures in (1, 2):
        verify = api.action("verify-connection").json()
        assert verify["success"] is False and verify["connectionFailed"] is False
        assert verify["smtpResponseCode"] == 535
        assert "bad-pw-xyz" not in verify["message"]
        got = api.get().json()
        assert got["authFailures"] == expected_failures
        assert got["errorCode"] == "INVALID_CREDENTIALS"


@pytest.mark.parametrize("security", SECURITY)
def test_localhost_is_dialled_as_configured(qlik_emulator, api, h, security):
    port = _local_port(qlik_emulator, security)
    assert api.put(h.basic_config(qlik_emulator, security=security, host="localhost",
                                  port=port)).status_code == 204
    assert api.action("verify-connection").json()["success"] is True


def test_localhost_wrong_port_fails(qlik_emulator, api, h):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    resp = api.put(h.basic_config(qlik_emulator, host="127.0.0.1", port=free))
    assert resp.status_code == 400
    assert "refused" in h.errors(resp)[1]


def test_security_mismatch_is_connection_failure(qlik_emulator, api, h):
    # SSL/TLS against the STARTTLS listener: the TLS handshake fails, Qlik's "SSL mismatch".
    resp = api.put(h.basic_config(qlik_emulator, security="SSL/TLS", host="localhost",
                                  port=qlik_emulator.smtp.starttls_port))
    assert resp.status_code == 400
    ops = [{"op": "replace", "path": "/serverAddress", "value": "localhost"},
           {"op": "replace", "path": "/serverPort", "value": qlik_emulator.smtp.starttls_port},
           {"op": "replace", "path": "/securityType", "value": "SSL/TLS"},
           {"op": "replace", "path": "/emailAddress", "value": "a@example.com"}]
    assert api.patch(ops).status_code == 204
    verify = api.action("verify-connection").json()
    assert verify["success"] is False and verify["connectionFailed"] is True
    assert api.get().json()["authFailures"] == 0


def test_smtp_delay_still_answers(qlik_emulator_factory, h):
    emu = qlik_emulator_factory(smtp_delay=0.05)
    api = h.Api(emu, emu.tenant("demo"))
    assert api.put(h.basic_config(emu)).status_code == 204
    assert api.action("verify-connection").json()["success"] is True
