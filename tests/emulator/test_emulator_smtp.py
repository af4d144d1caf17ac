"""The bundled SMTP server and the tenant-side SMTP client, over real sockets."""

from __future__ import annotations

import base64
import json
import logging
import smtplib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qlik_email_resource.emulator import certs
from qlik_email_resource.emulator.smtp_client import SmtpTarget, send, verify
from qlik_email_resource.emulator.smtp_server import SmtpServer

USER = "mailer@example.com"
PASSWORD = "S3cret-smtp-pw-7f1c"
WRONG = "Wrong-pw-0000-9a2d"

SECRETS = (PASSWORD, WRONG, "Late-pw-42")


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> certs.CertPaths:
    return certs.generate(tmp_path_factory.mktemp("smtp-certs"))


@pytest.fixture(scope="module")
def server(paths: certs.CertPaths) -> Iterator[SmtpServer]:
    srv = SmtpServer(paths, users={USER: PASSWORD})
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _empty_mailbox(server: SmtpServer) -> None:
    server.clear_mailbox()


PORTS = {"SSL/TLS": "tls_port", "StartTLS": "starttls_port", "none": "plain_port"}


def target(
    server: SmtpServer,
    paths: certs.CertPaths,
    security: str,
    *,
    password: str | None = PASSWORD,
    username: str | None = USER,
    port: int | None = None,
    **kwargs: Any,
) -> SmtpTarget:
    return SmtpTarget(
        host=server.host,
        port=port if port is not None else getattr(server, PORTS[security]),
        security_type=security,
        username=username,
        password=password,
        ca_file=kwargs.pop("ca_file", paths.ca_file),
        **kwargs,
    )


def record(result: dict[str, Any]) -> dict[str, Any]:
    """Every result in this module passes here: none may carry a password."""
    dumped = json.dumps(result)
    for secret in SECRETS:
        assert secret not in dumped
    return result


def do_send(t: SmtpTarget, **overrides: Any) -> dict[str, Any]:
    fields = {
        "sender": "noreply@example.com",
        "sender_name": "Qlik Tenant",
        "recipient": "admin@example.com",
        "subject": "Test email",
        "body": "Hello from the tenant",
    }
    fields.update(overrides)
    return record(send(t, **fields))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- verify and send with right and wrong passwords, on each listener -------------------

SECURITY = ["SSL/TLS", "StartTLS", "none"]


@pytest.mark.parametrize("security", SECURITY)
def test_verify_with_right_password(
    server: SmtpServer, paths: certs.CertPaths, security: str
) -> None:
    result = record(verify(target(server, paths, security)))
    assert result == {
        "success": True,
        "connectionFailed": False,
        "message": "Connection verified",
        "smtpResponseCode": 235,
    }


@pytest.mark.parametrize("security", SECURITY)
def test_verify_with_wrong_password_is_535(
    server: SmtpServer, paths: certs.CertPaths, security: str
) -> None:
    result = record(verify(target(server, paths, security, password=WRONG)))
    assert result["success"] is False
    assert result["connectionFailed"] is False
    assert result["smtpResponseCode"] == 535
    assert "535 5.7.8 Authentication credentials invalid" in result["message"]
    assert USER in result["message"]


def test_verify_unknown_user_is_535(server: SmtpServer, paths: certs.CertPaths) -> None:
    result = record(verify(target(server, paths, "SSL/TLS", username="nobody@example.com")))
    assert (result["success"], result["smtpResponseCode"]) == (False, 535)


def test_verify_without_username_only_handshakes(
    server: SmtpServer, paths: certs.CertPaths
) -> None:
    result = record(verify(target(server, paths, "StartTLS", username=None, password=None)))
    assert result["success"] is True
    assert result["smtpResponseCode"] == 250


@pytest.mark.parametrize("security", SECURITY)
def test_send_arrives_in_mailbox(server: SmtpServer, paths: certs.CertPaths, security: str) -> None:
    result = do_send(target(server, paths, security), subject=f"Over {security}")
    assert result == {
        "success": True,
        "connectionFailed": False,
        "message": "Email sent",
        "smtpResponseCode": 250,
        "accepted": ["admin@example.com"],
        "rejected": [],
    }
    assert server.mailbox() == [
        {
            "from": "noreply@example.com",
            "to": ["admin@example.com"],
            "subject": f"Over {security}",
            "body": "Hello from the tenant",
        }
    ]


@pytest.mark.parametrize("security", SECURITY)
def test_send_with_wrong_password_stores_nothing(
    server: SmtpServer, paths: certs.CertPaths, security: str
) -> None:
    result = do_send(target(server, paths, security, password=WRONG))
    assert result["success"] is False
    assert result["connectionFailed"] is False
    assert result["smtpResponseCode"] == 535
    assert result["accepted"] == []
    assert server.mailbox() == []


def test_send_without_auth_is_refused(server: SmtpServer, paths: certs.CertPaths) -> None:
    result = do_send(target(server, paths, "none", username=None, password=None))
    assert result["success"] is False
    assert result["connectionFailed"] is False
    assert result["smtpResponseCode"] == 530
    assert server.mailbox() == []


def test_non_ascii_subject_body_and_sender_name_round_trip(
    server: SmtpServer, paths: certs.CertPaths
) -> None:
    result = do_send(
        target(server, paths, "SSL/TLS"),
        sender_name="Zoë Ünïcode",
        subject="Prüfung ✓ 検証",
        body="Grüße\nzweite Zeile ✓\n",
    )
    assert result["success"] is True
    (mail,) = server.mailbox()
    assert mail["subject"] == "Prüfung ✓ 検証"
    assert mail["body"] == "Grüße\nzweite Zeile ✓"
    assert mail["from"] == "noreply@example.com"


def test_rejected_recipient(server: SmtpServer, paths: certs.CertPaths) -> None:
    result = do_send(target(server, paths, "StartTLS"), recipient="someone@nowhere.invalid")
    assert result["success"] is False
    assert result["connectionFailed"] is False
    assert result["smtpResponseCode"] == 550
    assert result["accepted"] == []
    assert result["rejected"] == ["someone@nowhere.invalid"]
    assert "someone@nowhere.invalid" in result["message"]
    assert server.mailbox() == []


def test_header_injection_in_sender_name_is_refused_not_raised(
    server: SmtpServer, paths: certs.CertPaths
) -> None:
    result = do_send(target(server, paths, "none"), sender_name="x\r\nBcc: evil@example.com")
    assert result["success"] is False
    assert server.mailbox() == []


# --- the server's AUTH rules, spoken to directly -----------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_server_accepts_plain_and_login(
    server: SmtpServer, paths: certs.CertPaths, mechanism: str
) -> None:
    ctx = ssl.create_default_context(cafile=paths.ca_file)
    for password, expected in ((PASSWORD, 235), (WRONG, 535)):
        with smtplib.SMTP_SSL(
            server.host, server.tls_port, context=ctx, local_hostname="test.localhost", timeout=5
        ) as smtp:
            smtp.ehlo()
            assert mechanism in smtp.esmtp_features["auth"].split()
            smtp.user, smtp.password = USER, password
            method = smtp.auth_plain if mechanism == "PLAIN" else smtp.auth_login
            try:
                code, _ = smtp.auth(mechanism, method, initial_response_ok=False)
            except smtplib.SMTPAuthenticationError as exc:
                code = exc.smtp_code
            assert code == expected


def test_starttls_listener_refuses_auth_before_starttls(server: SmtpServer) -> None:
    with smtplib.SMTP(
        server.host, server.starttls_port, local_hostname="test.localhost", timeout=5
    ) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        assert not smtp.has_extn("auth")
        code, reply = smtp.docmd("AUTH", "PLAIN AG1haWxlckBleGFtcGxlLmNvbQBw")
        assert code == 530
        assert b"STARTTLS" in reply


def test_none_against_starttls_listener_fails_naming_starttls(
    server: SmtpServer, paths: certs.CertPaths
) -> None:
    result = record(verify(target(server, paths, "none", port=server.starttls_port)))
    assert result["success"] is False
    assert result["connectionFailed"] is True
    assert "StartTLS" in result["message"]


def test_add_user_takes_effect(server: SmtpServer, paths: certs.CertPaths) -> None:
    t = target(server, paths, "SSL/TLS", username="late@example.com", password="Late-pw-42")
    assert record(verify(t))["smtpResponseCode"] == 535
    server.add_user("late@example.com", "Late-pw-42")
    assert record(verify(t))["success"] is True


# --- connection failures ------------------------------------------------------------------


def test_ssl_tls_against_plain_port_fails_handshake(
    server: SmtpServer, paths: certs.CertPaths
) -> None:
    result = record(verify(target(server, paths, "SSL/TLS", port=server.plain_port)))
    assert result["success"] is False
    assert result["connectionFailed"] is True
    assert result["smtpResponseCode"] == 0
    assert result["message"].startswith("TLS handshake failed")


def test_plain_against_tls_port_fails(server: SmtpServer, paths: certs.CertPaths) -> None:
    # The TLS listener waits for a ClientHello; the plain client waits for a greeting.
    result = record(verify(target(server, paths, "none", port=server.tls_port, timeout=1.0)))
    assert result["success"] is False
    assert result["connectionFailed"] is True
    assert result["smtpResponseCode"] == 0
    assert "SSL/TLS" in result["message"]


def test_starttls_against_plain_only_server_fails(
    paths: certs.CertPaths, server: SmtpServer
) -> None:
    # The implicit-TLS port never offers STARTTLS inside its TLS session.
    t = target(server, paths, "StartTLS", port=server.tls_port, timeout=1.0)
    result = record(verify(t))
    assert result["connectionFailed"] is True
    assert result["success"] is False


def test_closed_port_is_connection_refused(server: SmtpServer, paths: certs.CertPaths) -> None:
    port = free_port()
    for security in SECURITY:
        result = record(verify(target(server, paths, security, port=port)))
        assert result == {
            "success": False,
            "connectionFailed": True,
            "message": f"connection refused by 127.0.0.1:{port}",
            "smtpResponseCode": 0,
        }
    result = do_send(target(server, paths, "SSL/TLS", port=port))
    assert (result["connectionFailed"], result["accepted"], result["rejected"]) == (True, [], [])


def test_unresolvable_host(paths: certs.CertPaths) -> None:
    t = SmtpTarget(
        host="smtp.example.invalid",
        port=25,
        security_type="none",
        username=USER,
        password=PASSWORD,
        timeout=2.0,
    )
    result = record(verify(t))
    assert result["connectionFailed"] is True
    assert "could not resolve host 'smtp.example.invalid'" in result["message"]


def test_foreign_ca_fails_certificate_verification(
    server: SmtpServer, paths: certs.CertPaths, tmp_path: Path
) -> None:
    other = certs.generate(tmp_path / "other-ca")
    for security in ("SSL/TLS", "StartTLS"):
        result = record(verify(target(server, paths, security, ca_file=other.ca_file)))
        assert result["success"] is False
        assert result["connectionFailed"] is True
        assert result["message"].startswith("TLS certificate verification failed")
        assert "unable to get local issuer certificate" in result["message"]


def test_system_trust_store_does_not_trust_the_emulator(
    server: SmtpServer, paths: certs.CertPaths
) -> None:
    result = record(verify(target(server, paths, "SSL/TLS", ca_file=None)))
    assert result["connectionFailed"] is True
    assert "certificate verification failed" in result["message"]


# --- routed names -------------------------------------------------------------------------


@pytest.mark.parametrize("security", ["SSL/TLS", "StartTLS"])
def test_routed_name_verified_as_localhost(
    server: SmtpServer, paths: certs.CertPaths, security: str
) -> None:
    # What the emulator does with email-smtp.eu-west-2.amazonaws.com: dial 127.0.0.1,
    # verify the certificate as localhost.
    t = target(server, paths, security, server_hostname="localhost")
    assert record(verify(t))["success"] is True
    assert do_send(t)["success"] is True
    assert len(server.mailbox()) == 1


@pytest.mark.parametrize("security", ["SSL/TLS", "StartTLS"])
def test_wrong_server_hostname_fails(
    server: SmtpServer, paths: certs.CertPaths, security: str
) -> None:
    name = "email-smtp.eu-west-2.amazonaws.com"
    result = record(verify(target(server, paths, security, server_hostname=name)))
    assert result["success"] is False
    assert result["connectionFailed"] is True
    assert "certificate verification failed" in result["message"]
    assert name in result["message"]


def test_ip_address_is_verified_against_ip_san(server: SmtpServer, paths: certs.CertPaths) -> None:
    assert server.host == "127.0.0.1"
    assert record(verify(target(server, paths, "SSL/TLS")))["success"] is True


# --- concurrency, secrets, lifecycle ------------------------------------------------------


def test_concurrent_sends_all_arrive(server: SmtpServer, paths: certs.CertPaths) -> None:
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        security = SECURITY[i % 3]
        r = do_send(
            target(server, paths, security),
            subject=f"concurrent {i}",
            recipient=f"user{i}@example.com",
        )
        with lock:
            results.append(r)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r["success"] for r in results] == [True] * 20
    mail = server.mailbox()
    assert sorted(m["subject"] for m in mail) == sorted(f"concurrent {i}" for i in range(20))
    assert all(m["to"] == [f"user{m['subject'].split()[1]}@example.com"] for m in mail)


def test_mailbox_returns_copies(server: SmtpServer, paths: certs.CertPaths) -> None:
    do_send(target(server, paths, "none"))
    server.mailbox()[0]["to"].append("intruder@example.com")
    assert server.mailbox()[0]["to"] == ["admin@example.com"]
    server.clear_mailbox()
    assert server.mailbox() == []


def test_password_not_in_target_repr(server: SmtpServer, paths: certs.CertPaths) -> None:
    assert PASSWORD not in repr(target(server, paths, "none"))
    assert PASSWORD not in repr(server)


def test_stop_is_clean_and_idempotent(paths: certs.CertPaths) -> None:
    srv = SmtpServer(paths, users={USER: PASSWORD})
    srv.stop()  # before start: nothing to do
    srv.start()
    srv.start()  # already running: nothing to do
    assert srv.running
    t = SmtpTarget(
        host=srv.host,
        port=srv.starttls_port,
        security_type="StartTLS",
        username=USER,
        password=PASSWORD,
        ca_file=paths.ca_file,
    )
    assert record(verify(t))["success"] is True
    # An idle client still connected must not keep stop() waiting.
    idle = socket.create_connection((srv.host, srv.plain_port), timeout=5)
    assert idle.recv(100).startswith(b"220 ")
    srv.stop()
    srv.stop()
    assert not srv.running
    assert idle.recv(100) == b""  # the server closed the session
    idle.close()
    for port in (srv.tls_port, srv.starttls_port, srv.plain_port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((srv.host, port), timeout=2).close()


def test_no_password_in_logs_at_debug(
    server: SmtpServer, paths: certs.CertPaths, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for security in SECURITY:
        for password in (PASSWORD, WRONG):
            record(verify(target(server, paths, security, password=password)))
        do_send(target(server, paths, security))
    # smtplib.login sends PLAIN as one base64 blob and LOGIN's password on its own line.
    encoded = [base64.b64encode(f"\0{USER}\0{p}".encode()).decode() for p in (PASSWORD, WRONG)] + [
        base64.b64encode(p.encode()).decode() for p in (PASSWORD, WRONG)
    ]
    assert "AUTH" in caplog.text  # the exchange was logged, sanitised
    for secret in (PASSWORD, WRONG, *encoded):
        assert secret not in caplog.text


def test_malformed_recipient_is_rejected(server: SmtpServer, paths: certs.CertPaths) -> None:
    result = do_send(target(server, paths, "none"), recipient="not an address")
    assert (result["success"], result["smtpResponseCode"]) == (False, 553)
    assert result["rejected"] == ["not an address"]
    assert server.mailbox() == []
