"""What a Qlik tenant does to an SMTP server: verify the connection, send a test email.

Both calls answer Qlik's ``smtpResult`` (``success``, ``connectionFailed``, ``message``,
``smtpResponseCode``) and never raise: Qlik reports SMTP failures as HTTP 200 with
``success: false``. ``connectionFailed`` is true for what Qlik's spec lists (the name does
not resolve, connection refused or timed out, TLS mismatch) and false once the server
speaks SMTP and refuses something (wrong credentials, a rejected recipient).

Response codes: a verified connection reports the server's last reply, 235 after AUTH
("Authentication successful") or 250 (EHLO) when no username is set, as a real relay
answers; a sent email reports 250, as in Qlik's tutorial output. With no SMTP reply at
all, the code is 0.

TLS is always verified (``ssl.create_default_context``: certificate chain and host name).
The name verified may differ from the host dialled (``server_hostname``): the emulator
routes e.g. ``email-smtp.eu-west-2.amazonaws.com`` to 127.0.0.1 and verifies the
certificate as ``localhost``.
"""

from __future__ import annotations

import base64
import email.utils
import logging
import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any, TypeVar

from ..redaction import redact

T = TypeVar("T")
log = logging.getLogger(__name__)

SECURITY_TYPES = ("none", "StartTLS", "SSL/TLS")
# What the client says in EHLO; a fixed name avoids socket.getfqdn(), which can stall on
# a host without working reverse DNS.
CLIENT_NAME = "qlik-tenant.localhost"


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    security_type: str  # "none" | "StartTLS" | "SSL/TLS"
    username: str | None
    password: str | None = field(repr=False)
    ca_file: str | None = None
    server_hostname: str | None = None
    timeout: float = 10.0

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def tls_name(self) -> str:
        return self.server_hostname or self.host


class _Failure(Exception):
    """One smtpResult failure: raised inside this module, turned into a dict at the edge."""

    def __init__(
        self, message: str, *, connection_failed: bool, code: int = 0, rejected: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.connection_failed = connection_failed
        self.code = code
        self.rejected = rejected  # the server refused the recipient

    def result(self, target: SmtpTarget) -> dict[str, Any]:
        return _result(False, _redact(self.message, target), self.code, self.connection_failed)


def _result(success: bool, message: str, code: int, connection_failed: bool) -> dict[str, Any]:
    return {
        "success": success,
        "connectionFailed": connection_failed,
        "message": message,
        "smtpResponseCode": code,
    }


def _unexpected(exc: Exception, target: SmtpTarget) -> dict[str, Any]:
    # The contract is "never raise": name what broke, by its type only. An exception's
    # text or repr may hold what it was working on (a UnicodeEncodeError holds the whole
    # AUTH string, password included), so it goes to the log, redacted, never into an answer.
    log.warning("SMTP client error with %s: %s", target.address,
                _redact(f"{type(exc).__name__}: {exc}", target))
    return _result(False, f"unexpected error talking to {target.address} "
                          f"({type(exc).__name__}); see the emulator log", 0, False)


def _redact(text: str, target: SmtpTarget) -> str:
    # Belt and braces: no message we build carries the password, but a server may echo
    # anything back to us, in any escaping.
    return redact(text, [target.password])


def _reply_text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _tls_context(target: SmtpTarget) -> ssl.SSLContext:
    # Hostname checking stays on: the emulator is trusted through its CA file, never by
    # turning verification off.
    return ssl.create_default_context(cafile=target.ca_file)


def _connect(target: SmtpTarget) -> tuple[smtplib.SMTP, int]:
    """Connect, secure the session as ``security_type`` says, EHLO, AUTH if configured.

    Returns the session and the code of the server's last reply (235 after AUTH, else 250).
    """
    if target.security_type not in SECURITY_TYPES:
        raise _Failure(
            f"unknown securityType {target.security_type!r}: use one of "
            + ", ".join(SECURITY_TYPES),
            connection_failed=True,
        )
    try:
        context = _tls_context(target)
    except (OSError, ssl.SSLError) as exc:
        raise _Failure(
            f"cannot load the CA file {target.ca_file!r}: {exc}", connection_failed=True
        ) from exc

    smtp: smtplib.SMTP
    if target.security_type == "SSL/TLS":
        smtp = smtplib.SMTP_SSL(local_hostname=CLIENT_NAME, timeout=target.timeout, context=context)
    else:
        smtp = smtplib.SMTP(local_hostname=CLIENT_NAME, timeout=target.timeout)
    # smtplib verifies the certificate against the name it was constructed with (its
    # `_host`, used by SMTP_SSL and starttls()). Constructing without a host and setting
    # that name before connect() lets us dial one address and verify another.
    smtp._host = target.tls_name  # type: ignore[attr-defined]
    try:
        code, reply = _step("connect", target, lambda: smtp.connect(target.host, target.port))
        if code != 220:
            raise _Failure(
                f"{target.address} did not greet with 220: {code} {_reply_text(reply)}",
                connection_failed=True,
                code=code,
            )
        code, _ = _step("EHLO", target, smtp.ehlo)
        if target.security_type == "StartTLS":
            if not smtp.has_extn("starttls"):
                raise _Failure(
                    f"{target.address} does not offer STARTTLS: use securityType none for a "
                    "server without TLS, or SSL/TLS for an implicit-TLS port (usually 465)",
                    connection_failed=True,
                )
            _step("STARTTLS", target, lambda: smtp.starttls(context=context))
            code, _ = _step("EHLO", target, smtp.ehlo)
        if target.username:
            code = _login(smtp, target)
        return smtp, code
    except BaseException:
        smtp.close()
        raise


def _login(smtp: smtplib.SMTP, target: SmtpTarget) -> int:
    if not smtp.has_extn("auth"):
        hint = (
            "; it may require STARTTLS first: use securityType StartTLS"
            if smtp.has_extn("starttls")
            else ""
        )
        raise _Failure(
            f"{target.address} does not offer AUTH on this connection{hint}",
            connection_failed=target.security_type == "none" and bool(hint),
        )
    assert target.username is not None
    # surrogatepass: a lone surrogate (JSON allows "\ud800") goes out as sent, and the
    # server refuses it, instead of an encoding error here.
    username = target.username.encode("utf-8", "surrogatepass")
    password = (target.password or "").encode("utf-8", "surrogatepass")
    # smtplib's login() encodes credentials as ASCII and fails on "Grüße". RFC 4616 (PLAIN)
    # and common practice for LOGIN carry UTF-8, so the exchange is done here, in UTF-8.
    offered = str(smtp.esmtp_features.get("auth", "")).upper().split()
    if "PLAIN" in offered:
        blob = _b64(b"\0" + username + b"\0" + password)
        code, reply = _step("AUTH", target, lambda: smtp.docmd("AUTH", "PLAIN " + blob))
    elif "LOGIN" in offered:
        code, reply = _step("AUTH", target, lambda: smtp.docmd("AUTH", "LOGIN " + _b64(username)))
        if code == 334:
            code, reply = _step("AUTH", target, lambda: smtp.docmd(_b64(password)))
    else:
        raise _Failure(
            f"{target.address} offers AUTH {' '.join(offered) or '(no mechanism)'}; the "
            "tenant logs in with PLAIN or LOGIN: enable one of them on the server",
            connection_failed=False,
        )
    if code != 235:
        raise _Failure(
            f"authentication failed for user {target.username!r} at {target.address}: "
            f"{code} {_reply_text(reply)}",
            connection_failed=False,
            code=code,
        )
    return code


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _step(phase: str, target: SmtpTarget, call: Callable[[], T]) -> T:
    """Run one protocol step, translating every failure into a _Failure naming the cause."""
    where = target.address
    try:
        return call()
    except _Failure:
        raise
    except smtplib.SMTPRecipientsRefused as exc:
        (address, (code, reply)), *_ = exc.recipients.items()
        raise _Failure(
            f"recipient {address} rejected by {where}: {code} {_reply_text(reply)}",
            connection_failed=False,
            code=code,
            rejected=True,
        ) from exc
    except smtplib.SMTPResponseException as exc:
        raise _Failure(
            f"{phase} refused by {where}: {exc.smtp_code} {_reply_text(exc.smtp_error)}",
            connection_failed=False,
            code=exc.smtp_code,
        ) from exc
    except smtplib.SMTPServerDisconnected as exc:
        raise _Failure(
            f"{where} closed the connection or sent no SMTP reply during {phase} ({exc}); "
            "check the port and securityType (SSL/TLS needs an implicit-TLS port, usually "
            "465; StartTLS and none a plain one, usually 587 or 25)",
            connection_failed=True,
        ) from exc
    except smtplib.SMTPNotSupportedError as exc:
        raise _Failure(f"{where}: {exc}", connection_failed=True) from exc
    except ssl.SSLCertVerificationError as exc:
        raise _Failure(
            f"TLS certificate verification failed for {target.tls_name!r} at {where}: "
            f"{exc.verify_message}; trust the server's CA (ca_file) or use the name its "
            "certificate is issued for",
            connection_failed=True,
        ) from exc
    except ssl.SSLError as exc:
        raise _Failure(
            f"TLS handshake failed with {where} during {phase}: {exc.reason or exc}; "
            "check securityType (SSL/TLS is TLS from the first byte, usually port 465; "
            "StartTLS upgrades a plain session, usually port 587)",
            connection_failed=True,
        ) from exc
    except socket.gaierror as exc:
        raise _Failure(
            f"could not resolve host {target.host!r}: {exc.strerror or exc}",
            connection_failed=True,
        ) from exc
    except ConnectionRefusedError as exc:
        raise _Failure(f"connection refused by {where}", connection_failed=True) from exc
    except TimeoutError as exc:
        raise _Failure(
            f"{phase} with {where} timed out after {target.timeout:g}s",
            connection_failed=True,
        ) from exc
    except OSError as exc:
        raise _Failure(
            f"{phase} with {where} failed: {exc.strerror or exc}", connection_failed=True
        ) from exc


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def verify(target: SmtpTarget) -> dict[str, Any]:
    """Handshake (TLS as configured), EHLO and AUTH, no mail: Qlik's verify-connection."""
    try:
        smtp, code = _connect(target)
    except _Failure as failure:
        return failure.result(target)
    except Exception as exc:
        return _unexpected(exc, target)
    _quit(smtp)
    return _result(True, "Connection verified", code, False)


def _message(
    sender: str, sender_name: str | None, recipient: str, subject: str, body: str
) -> EmailMessage:
    msg = EmailMessage()
    try:
        msg["From"] = Address(display_name=sender_name or "", addr_spec=sender)
    except Exception as exc:  # the email package raises several unrelated types here
        raise _Failure(
            f"invalid sender address {sender!r} or sender name {sender_name!r}: use a plain "
            "address such as noreply@example.com and a one-line name",
            connection_failed=False,
        ) from exc
    try:
        msg["To"] = recipient
        msg["Subject"] = subject
        msg["Date"] = email.utils.formatdate(localtime=False)
        msg["Message-ID"] = email.utils.make_msgid(domain=sender.rpartition("@")[2])
        msg.set_content(body)
    except Exception as exc:
        raise _Failure(
            f"cannot build the email: {exc or type(exc).__name__}", connection_failed=False
        ) from exc
    return msg


def send(
    target: SmtpTarget,
    *,
    sender: str,
    sender_name: str | None,
    recipient: str,
    subject: str,
    body: str,
) -> dict[str, Any]:
    """Really send one email: Qlik's send-test-email, smtpResult plus accepted/rejected."""
    try:
        msg = _message(sender, sender_name, recipient, subject, body)
        smtp, _ = _connect(target)
        try:
            refused = _step(
                "sending",
                target,
                lambda: smtp.send_message(msg, from_addr=sender, to_addrs=[recipient]),
            )
        finally:
            _quit(smtp)
    except _Failure as failure:
        rejected = [recipient] if failure.rejected else []
        return {**failure.result(target), "accepted": [], "rejected": rejected}
    except Exception as exc:
        return {**_unexpected(exc, target), "accepted": [], "rejected": []}
    # With one recipient, a refusal raises SMTPRecipientsRefused; `refused` is then empty.
    rejected = [addr for addr in refused if addr == recipient]
    accepted = [] if rejected else [recipient]
    return {**_result(True, "Email sent", 250, False), "accepted": accepted, "rejected": rejected}
