"""SMTP passwords beyond ASCII letters, over real sockets: the tenant logs in with UTF-8
credentials, and no answer carries a password in any spelling (raw, repr, JSON, URL,
HTML, quotes escaped), even when the SMTP server echoes it back."""

from __future__ import annotations

import asyncio
import html
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

PASSWORDS = ["Grüße", "pa\"ss'word", "Grü\"ß'e\\n ok", "пароль-✓"]
SECURITY = ["SSL/TLS", "StartTLS", "none"]


def spellings(secret: str) -> set[str]:
    """Every way a secret can be written into text an answer carries."""
    utf8 = secret.encode("utf-8", "surrogatepass")  # JSON allows a lone surrogate
    forms = {
        secret, ascii(secret)[1:-1], repr(secret)[1:-1], json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1], repr(utf8)[2:-1],
        quote(utf8, safe=""), quote(utf8, safe="").lower(), quote_plus(utf8),
        html.escape(secret), secret.replace("'", "\\'").replace('"', '\\"'),
    }
    # a repr or JSON text quoted once more (a repr inside a JSON string)
    forms |= {f.replace("\\", "\\\\") for f in forms}
    return {f for f in forms if f}


def assert_no_spelling(text: str, secret: str) -> None:
    for form in spellings(secret):
        assert form not in text, (form, text)


_users = iter(range(1_000_000))


def smtp_user(emu: Any, password: str) -> str:
    name = f"user{next(_users)}@example.com"
    emu.add_smtp_user(name, password)
    return name


@pytest.mark.parametrize("security", SECURITY)
@pytest.mark.parametrize("password", PASSWORDS)
def test_non_ascii_and_quoted_passwords_verify_and_send(qlik_emulator, api, h, password,
                                                         security):
    user = smtp_user(qlik_emulator, password)
    body = h.basic_config(qlik_emulator, security=security, username=user, password=password)
    resp = api.put(body)
    assert resp.status_code == 204, resp.text
    verify = api.action("verify-connection").json()
    assert verify == {"success": True, "connectionFailed": False,
                      "message": "Connection verified", "smtpResponseCode": 235}
    send = api.action("send-test-email", {"recipient": "ops@example.com", "subject": "ü",
                                          "body": "b"}).json()
    assert send["success"] is True, send
    assert [m["subject"] for m in qlik_emulator.mailbox()] == ["ü"]


@pytest.mark.parametrize("wrong", [*PASSWORDS, "lone-\ud800-surrogate"])
def test_a_wrong_password_fails_without_any_spelling_of_it(qlik_emulator, api, h, wrong):
    user = smtp_user(qlik_emulator, "the-right-one")
    resp = api.put(h.basic_config(qlik_emulator, username=user, password=wrong))
    assert resp.status_code == 400
    code, title = h.errors(resp)
    assert code == "INPUTCHECK-1"
    assert "authentication failed" in title and "535" in title
    assert_no_spelling(resp.text, wrong)
    assert_no_spelling(title, wrong)
    # Stored without a check (PATCH), then verified and sent: 200 success:false, no echo.
    patch = [{"op": "replace", "path": p, "value": v} for p, v in (
        ("/serverAddress", "smtp.example.com"), ("/serverPort", 465),
        ("/securityType", "SSL/TLS"), ("/username", user), ("/emailPassword", wrong),
        ("/emailAddress", "noreply@example.com"))]
    assert api.patch(patch).status_code == 204
    for action in ("verify-connection", "send-test-email"):
        resp = api.action(action, {"recipient": "ops@example.com"})
        assert resp.json()["success"] is False
        assert resp.json()["smtpResponseCode"] == 535
        assert_no_spelling(resp.text, wrong)
    assert api.get().json()["errorCode"] == "INVALID_CREDENTIALS"


# --- a server of our own that behaves differently from the bundled one -----------------------


Authenticator = Callable[[bytes, bytes], AuthResult]


class _Handler:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


@pytest.fixture
def own_smtp() -> Iterator[Callable[..., int]]:
    """``start(check, exclude=())`` runs a real aiosmtpd server (plain, AUTH without TLS)
    whose AUTH answer ``check(login, password)`` decides; returns its port."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    servers: list[asyncio.Server] = []

    def start(check: Authenticator, exclude: tuple[str, ...] = ()) -> int:
        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                          data: Any) -> AuthResult:
            assert isinstance(data, LoginPassword)
            return check(data.login, data.password)

        def session() -> SMTP:
            smtp = SMTP(_Handler(), hostname="localhost", authenticator=authenticator,
                        auth_exclude_mechanism=list(exclude), enable_SMTPUTF8=True,
                        loop=loop)
            smtp._auth_require_tls = False  # plain listener, like Qlik's "none"
            return smtp

        async def open_server() -> asyncio.Server:
            return await loop.create_server(session, "127.0.0.1", 0)

        server = asyncio.run_coroutine_threadsafe(open_server(), loop).result(10)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    try:
        yield start
    finally:
        async def close() -> None:
            for server in servers:
                server.close()
                await server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _local_config(port: int, password: str) -> list[dict[str, Any]]:
    return [{"op": "replace", "path": p, "value": v} for p, v in (
        ("/serverAddress", "127.0.0.1"), ("/serverPort", port), ("/securityType", "none"),
        ("/username", "ü-user@example.com"), ("/emailPassword", password),
        ("/emailAddress", "noreply@example.com"))]


@pytest.mark.parametrize("password", PASSWORDS)
def test_a_server_echoing_the_password_never_gets_it_into_an_answer(own_smtp, api, password):
    def echo(login: bytes, sent: bytes) -> AuthResult:
        text = sent.decode("utf-8")
        # A careless server: it quotes what it got, in several escapings.
        echoed = " | ".join(sorted(spellings(text)))
        return AuthResult(success=False, handled=False,
                          message=f"535 5.7.8 bad password {echoed} for {login.decode()}")

    port = own_smtp(echo)
    assert api.patch(_local_config(port, password)).status_code == 204
    resp = api.action("verify-connection")
    result = resp.json()
    assert result["success"] is False and result["smtpResponseCode"] == 535
    assert "bad password" in result["message"]  # the server's words are kept...
    assert_no_spelling(resp.text, password)  # ...without the password in any spelling
    assert_no_spelling(result["message"], password)


def test_login_mechanism_in_utf8_when_plain_is_not_offered(own_smtp, api):
    seen: list[tuple[bytes, bytes]] = []

    def check(login: bytes, password: bytes) -> AuthResult:
        seen.append((login, password))
        return AuthResult(success=password == "Grüße".encode(), handled=False)

    port = own_smtp(check, exclude=("PLAIN",))
    assert api.patch(_local_config(port, "Grüße")).status_code == 204
    assert api.action("verify-connection").json()["success"] is True
    assert seen == [("ü-user@example.com".encode(), "Grüße".encode())]


def test_a_server_without_plain_or_login_is_named(own_smtp, api):
    port = own_smtp(lambda login, password: AuthResult(success=True),
                    exclude=("PLAIN", "LOGIN"))
    assert api.patch(_local_config(port, "Grüße")).status_code == 204
    result = api.action("verify-connection").json()
    assert result["success"] is False
    assert "PLAIN or LOGIN" in result["message"]
