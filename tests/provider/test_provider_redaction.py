"""No secret in any error, whatever form a server echoes it in.

The helper alone (redaction.py), the client against a real HTTP tenant that
echoes secrets (tests/support/echo_tenant.py), and the provider host end to end: create
errors, SMTP check messages and check failures.
"""

from __future__ import annotations

import base64
import json
import traceback
from urllib.parse import quote, quote_plus

import grpc
import pytest

from qlik_email_resource.client import QlikClient
from qlik_email_resource.emulator import Emulator
from qlik_email_resource.errors import (
    QlikAuthenticationError,
    QlikValidationError,
    SmtpCheckError,
    error_for_status,
)
from qlik_email_resource.offline.grpc_servers import ProviderServer
from qlik_email_resource.offline.provider_driver import ProviderDriver
from qlik_email_resource.redaction import REDACTED, redact
from qlik_email_resource.settings import RetryPolicy, Settings
from tests.support.echo_tenant import echoed, leaks, serve
from tests.support.provider import basic_props, calls

PASSWORD = "Grüße \"CANARY\" 'pw' \\ 😀"
API_KEY = "qlikemu_ECHO-CANARY-KEY-27182"
CLIENT_SECRET = "ECHO-CANARY-CLIENT-SECRET-31415"
TOKEN = "ECHO-CANARY-TOKEN-16180"
SECRETS = [PASSWORD, API_KEY, CLIENT_SECRET, TOKEN]
FAST = RetryPolicy(max_retries=0, backoff_factor=0.01, retry_after_max=0)


def texts_of(exc: BaseException) -> str:
    return "\n".join([str(exc), repr(exc), "".join(traceback.format_exception(exc))])


# --- the helper ------------------------------------------------------------------------


@pytest.mark.parametrize("secret", [PASSWORD, "Grüße", "pa\"ss'wo\\rd", API_KEY, "x y+z/é"])
def test_every_escaped_form_is_redacted(secret: str) -> None:
    raw = secret.encode()
    forms = {
        "plain": secret, "repr": repr(secret), "ascii": ascii(secret),
        "json": json.dumps(secret), "json-utf8": json.dumps(secret, ensure_ascii=False),
        "json-upper-hex": json.dumps(secret).upper() if secret.isascii() else
        json.dumps(secret).replace("\\u00fc", "\\u00FC"),
        "url": quote(secret, safe=""), "form": quote_plus(secret),
        "url-twice": quote(quote(secret, safe=""), safe=""),
        "bytes-repr": repr(raw), "repr-in-json": json.dumps(repr(secret)),
        "base64": base64.b64encode(raw).decode(),
        "auth-plain": base64.b64encode(b"\0user\0" + raw).decode(),
        "auth-plain-2": base64.b64encode(b"user\0user\0" + raw).decode(),
    }
    for name, form in forms.items():
        text = redact(f"the server said <{form}> at 12:00", [secret, None, ""])
        assert REDACTED in text, (name, form, text)
        assert not leaks(text, [secret]), (name, text)
        assert text.startswith("the server said <") and text.endswith("> at 12:00"), text


def test_longest_secret_first_and_nothing_else_touched() -> None:
    assert redact("key abc and abcdef", ["abc", "abcdef", ""]) == "key [secret] and [secret]"
    assert redact("HTTP 400 INPUTCHECK-1", [PASSWORD, API_KEY]) == "HTTP 400 INPUTCHECK-1"
    assert redact("anything", []) == "anything"


def test_error_for_status_redacts_before_cutting() -> None:
    # The secret sits across the 300-character cut: redacting after the cut would
    # leave its first half in the message.
    title = "x" * 290 + PASSWORD
    error = error_for_status(400, [{"code": "INPUTCHECK-1", "title": title}],
                             secrets=[PASSWORD])
    assert PASSWORD[:8] not in str(error) and REDACTED[:5] in str(error)


def test_redacted_error_keeps_class_and_fields() -> None:
    error = QlikValidationError(status=400, code="INPUTCHECK-1", title=f"bad {PASSWORD!r}",
                                operation="write email config (PUT)")
    clean = error.redacted([PASSWORD])
    assert type(clean) is QlikValidationError
    assert (clean.status, clean.code, clean.operation) == (400, "INPUTCHECK-1",
                                                           "write email config (PUT)")
    assert clean.title == f"bad '{REDACTED}'"
    assert not leaks(texts_of(clean), [PASSWORD]) and clean.fix == error.fix


# --- the client against a tenant that echoes ---------------------------------------------


def test_client_errors_hold_no_echoed_password_or_key() -> None:
    with serve("reject") as url:
        client = QlikClient(Settings(tenant_url=url, api_key=API_KEY, retry=FAST))
        body = {"serviceProvider": "BasicAuth",
                "providerConfig": {"serverAddress": "smtp.example.com",
                                   "emailPassword": PASSWORD}}
        with pytest.raises(QlikValidationError) as put:
            client.put_config(body)
        with pytest.raises(QlikValidationError) as patch:
            client.patch_config([{"op": "replace", "path": "/emailPassword", "value": PASSWORD}])
    for info in (put, patch):
        text = texts_of(info.value)
        assert not leaks(text, SECRETS), (leaks(text, SECRETS), text)
        assert "HTTP 400 INPUTCHECK-1" in str(info.value) and REDACTED in str(info.value)
        # the server really did echo them (else this test proves nothing)
        assert "SMTP login failed" in str(info.value)


def test_client_errors_hold_no_echoed_oauth_token() -> None:
    with serve("echo-token", token=TOKEN) as url:
        client = QlikClient(Settings(tenant_url=url, client_id="cid",
                                     client_secret=CLIENT_SECRET, retry=FAST))
        with pytest.raises(QlikAuthenticationError) as info:
            client.get_config()
    text = texts_of(info.value)
    assert "unknown token" in text and REDACTED in text
    assert not leaks(text, SECRETS), text


# --- the provider host end to end --------------------------------------------------------


def echo_server(url: str) -> ProviderServer:
    server = ProviderServer(env={"QLIK_MAX_RETRIES": "0", "QLIK_LOG_LEVEL": "DEBUG"})
    server.configure({"qlik:tenantUrl": url, "qlik:apiKey": API_KEY})
    return server


def smtp_props(**extra: object) -> dict[str, object]:
    return {"server_address": "smtp.example.com", "server_port": 587,
            "security_type": "StartTLS", "email_address": "qlik@example.com",
            "username": "bot", "email_password": PASSWORD, **extra}


def test_provider_create_error_holds_no_echoed_secret() -> None:
    with serve("reject") as url:
        server = echo_server(url)
        try:
            driver = ProviderDriver(server)
            with pytest.raises(grpc.RpcError):
                driver.create(driver.checked(smtp_props()))
            stderr = server.stderr()
        finally:
            server.stop()
    (details,) = driver.errors
    assert "QlikValidationError" in details and "HTTP 400 INPUTCHECK-1" in details
    assert not leaks(details, SECRETS), details
    assert not leaks(stderr, SECRETS)


def test_provider_smtp_check_message_holds_no_echoed_password() -> None:
    with serve("accept") as url:
        server = echo_server(url)
        try:
            driver = ProviderDriver(server)
            with pytest.raises(grpc.RpcError):
                driver.create(driver.checked(smtp_props(verify_connection=True)))
        finally:
            server.stop()
    (details,) = driver.errors
    assert SmtpCheckError.__name__ in details and "535 authentication failed" in details
    assert not leaks(details, SECRETS), details


@pytest.mark.parametrize("field", ["server_address", "email_address", "sender_name"])
def test_check_failure_never_quotes_a_pasted_secret(
    driver: ProviderDriver, qlik_emulator: Emulator, field: str
) -> None:
    password = "pa'ss\"wörd-CANARY\r\n"
    response = driver.check(basic_props(qlik_emulator, email_password=password,
                                           **{field: password}))
    reasons = [f.reason for f in response.failures]
    assert [f.property for f in response.failures] == [field]
    assert not leaks("\n".join(reasons), [password, password.strip()]), reasons
    assert calls(qlik_emulator) == []


def test_check_failure_never_quotes_the_api_key(
    driver: ProviderDriver, qlik_emulator: Emulator
) -> None:
    key = qlik_emulator.tenant("acme").api_key
    response = driver.check(basic_props(qlik_emulator, tenant_url=f"ftp://{key}",
                                           api_key=key))
    reasons = "\n".join(f.reason for f in response.failures)
    assert "tenant_url" in [f.property for f in response.failures]
    assert not leaks(reasons, [key]) and REDACTED in reasons


def test_the_echo_really_carries_the_forms() -> None:
    # Guard: the server's echo holds every form the scans look for.
    assert all(form in echoed(PASSWORD) for form in (repr(PASSWORD), json.dumps(PASSWORD),
                                                     quote(PASSWORD, safe="")))
