"""The qlik.dev email-provider tutorial, byte for byte, against the emulator."""

from __future__ import annotations

import json

import requests

# The tutorial's PATCH body, verbatim (https://qlik.dev/manage/tenants/email-provider/),
# serverPort as a JSON number.
TUTORIAL_PATCH = (
    '[{"op":"replace","path":"/serverAddress","value":"email-smtp.eu-west-2.amazonaws.com"},'
    '{"op":"replace","path":"/serverPort","value":2465},'
    '{"op":"replace","path":"/securityType","value":"SSL/TLS"},'
    '{"op":"replace","path":"/username","value":"SKIARX3IRHQ7J3ZLGABC"},'
    '{"op":"replace","path":"/emailAddress","value":"qlik@mydomain.com"},'
    '{"op":"replace","path":"/emailPassword","value":"YourPasswordHere"}]'
)


def test_tutorial_flow(qlik_emulator, api, h):
    qlik_emulator.add_smtp_user(h.TUTORIAL_USER, h.TUTORIAL_PASSWORD)
    headers = {"Content-Type": "application/json"}

    resp = api.call("PATCH", data=TUTORIAL_PATCH.encode(), headers=headers)
    assert resp.status_code == 204
    assert resp.content == b""

    resp = api.get()
    assert resp.status_code == 200
    got = resp.json()
    # Every field of the tutorial's GET output, with the same values where they are not
    # generated (ids and times are the tenant's own).
    expected = {
        "serverAddress": "email-smtp.eu-west-2.amazonaws.com", "serverPort": 2465,
        "securityType": "SSL/TLS", "emailAddress": "qlik@mydomain.com", "isValid": True,
        "authFailures": 0, "status": {"statusCode": 0, "statusReason": "OK"},
        "username": "SKIARX3IRHQ7J3ZLGABC", "passwordExists": True,
    }
    assert {k: got[k] for k in expected} == expected
    assert got["tenantId"] == api.tenant.tenant_id
    assert len(got["_id"]) == 24
    assert got["modificationTime"].endswith("Z")
    assert "YourPasswordHere" not in resp.text

    resp = api.action("send-test-email", {"recipient": "test@example.com",
                                          "subject": "Test email from Qlik Cloud",
                                          "body": "Hello from the tutorial"})
    assert resp.status_code == 200
    assert resp.json() == {"connectionFailed": False, "message": "Email sent",
                           "smtpResponseCode": 250, "accepted": ["test@example.com"],
                           "rejected": [], "success": True}

    (mail,) = qlik_emulator.mailbox()
    assert mail["from"] == "qlik@mydomain.com"
    assert mail["to"] == ["test@example.com"]
    assert mail["subject"] == "Test email from Qlik Cloud"
    assert mail["body"].strip() == "Hello from the tutorial"

    listing = requests.get(qlik_emulator.mailbox_url, timeout=10)
    assert listing.headers["Content-Type"].startswith("application/json")
    assert listing.json() == qlik_emulator.mailbox()
    page = requests.get(qlik_emulator.mailbox_url, headers={"Accept": "text/html"}, timeout=10)
    assert page.headers["Content-Type"].startswith("text/html")
    assert "Test email from Qlik Cloud" in page.text
    assert "test@example.com" in page.text

    log = [(r["method"], r["path"], r["status"]) for r in qlik_emulator.requests()]
    assert log == [
        ("PATCH", h.CONFIG, 204), ("GET", h.CONFIG, 200),
        ("POST", h.CONFIG + "/actions/send-test-email", 200),
    ]
    assert json.dumps(qlik_emulator.requests()).count("YourPasswordHere") == 0


def test_tutorial_wrong_password_fails_at_send(qlik_emulator, api, h):
    # With another password for the tutorial user on the SMTP server, the PATCH still
    # succeeds (PATCH does not verify) and the send answers 200 success:false, counted.
    qlik_emulator.add_smtp_user(h.TUTORIAL_USER, "not-the-tutorial-password")
    assert api.call("PATCH", data=TUTORIAL_PATCH.encode(),
                    headers={"Content-Type": "application/json"}).status_code == 204
    resp = api.action("send-test-email", {"recipient": "test@example.com", "subject": "s",
                                          "body": "b"})
    assert resp.status_code == 200
    body = resp.json()
    assert body["success"] is False and body["connectionFailed"] is False
    assert body["smtpResponseCode"] == 535
    got = api.get().json()
    assert got["authFailures"] == 1
    assert got["isValid"] is False
    assert got["errorCode"] == "INVALID_CREDENTIALS"
    assert qlik_emulator.mailbox() == []
