"""The bundled mail server: what a tenant's SMTP settings point at when run offline.

Three aiosmtpd listeners share one event loop in one background thread:

- implicit TLS (``SSL/TLS``): TLS from the first byte, like port 465;
- STARTTLS (``StartTLS``): plain greeting, ``STARTTLS`` required before anything else;
- plain (``none``): no TLS at all, credentials in clear, as Qlik's ``none`` sends them.

Every listener requires AUTH (PLAIN or LOGIN) before MAIL, so a wrong password fails
as it would on a real relay. Recipients in the RFC 2606 ``.invalid`` domain are refused
with 550, so a rejected recipient can be tested. Accepted mail is parsed and kept in an
in-memory mailbox that tests and people read.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import ssl
import threading
import weakref
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, TLSSetupException

from .certs import CertPaths

log = logging.getLogger(__name__)


class _QuietAiosmtpdLog(logging.Filter):
    """Drop a warning aiosmtpd 1.4 logs on every successful AUTH, about its own use of
    the deprecated ``Session.login_data``: noise that says nothing about our sessions."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Session.login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_QuietAiosmtpdLog())

# The name the server greets with; also what certs.py makes the leaf valid for.
SERVER_NAME = "localhost"
START_TIMEOUT = 10.0
REJECTED_DOMAIN_SUFFIX = ".invalid"
# Just enough of RFC 5321 to refuse what no relay would take; UTF-8 allowed (SMTPUTF8).
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


class _Handler:
    """aiosmtpd hooks: check credentials, refuse ``.invalid`` recipients, store mail."""

    def __init__(self, owner: SmtpServer) -> None:
        self._owner = owner

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = self._owner._check_password(data.login, data.password)
        # handled=False with no message makes aiosmtpd answer "535 5.7.8 Authentication
        # credentials invalid", what real relays (Postfix, SES) answer.
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if not _ADDRESS.match(address):
            return f"553 5.1.7 <{address}>: Sender address rejected: malformed address"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if not _ADDRESS.match(address):
            return f"553 5.1.3 <{address}>: Recipient address rejected: malformed address"
        domain = address.rpartition("@")[2].lower().rstrip(".")
        if domain.endswith(REJECTED_DOMAIN_SUFFIX):
            return f"550 5.1.1 <{address}>: Recipient address rejected: domain does not exist"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):
            # A client that fails the STARTTLS handshake (e.g. it does not trust our CA) is
            # an expected event here, not a server fault worth a traceback.
            log.info("SMTP client failed the STARTTLS handshake: %s", error.__cause__ or error)
            return "454 4.7.0 TLS not available"
        log.exception("SMTP session error")
        return f"451 4.3.0 Local error: {type(error).__name__}"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        self._owner._deliver(_parse(raw, envelope))
        return "250 2.0.0 OK: queued"


def _parse(raw: bytes, envelope: Envelope) -> dict[str, Any]:
    # SMTP carries CRLF; the email package works in LF and would leave "\r" in the body.
    msg = BytesParser(policy=policy.default).parsebytes(raw.replace(b"\r\n", b"\n"))
    assert isinstance(msg, EmailMessage)
    sender = str(envelope.mail_from or "")
    from_header = msg["From"]
    if from_header is not None and from_header.addresses:
        sender = from_header.addresses[0].addr_spec
    body = ""
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is not None:
        content = part.get_content()
        if isinstance(content, str):
            # set_content() always ends the body with a newline; give back what was sent.
            body = content[:-1] if content.endswith("\n") else content
    return {
        "from": sender,
        "to": list(envelope.rcpt_tos),
        "subject": str(msg["Subject"] or ""),
        "body": body,
    }


class _Session(SMTP):
    """One SMTP session; ``auth_in_clear`` allows AUTH without STARTTLS.

    aiosmtpd counts only STARTTLS as TLS for ``auth_require_tls``, so the implicit-TLS
    listener (encrypted from the first byte) needs it off, as does the plain listener
    (Qlik's ``none`` sends credentials in clear). Passing ``auth_require_tls=False``
    together with ``auth_required=True`` makes aiosmtpd warn on every connection, so the
    session is built with the default and the flag is lowered afterwards.
    """

    def __init__(self, handler: Any, *, auth_in_clear: bool, **options: Any) -> None:
        super().__init__(handler, auth_require_tls=True, **options)
        if auth_in_clear:
            self._auth_require_tls = False


class SmtpServer:
    """Three SMTP listeners (implicit TLS, STARTTLS, plain) and a shared mailbox."""

    def __init__(
        self, certs: CertPaths, host: str = "127.0.0.1", users: dict[str, str] | None = None
    ) -> None:
        self.certs = certs
        self.host = host
        self.tls_port = 0
        self.starttls_port = 0
        self.plain_port = 0
        self._users: dict[bytes, bytes] = {}
        self._lock = threading.Lock()
        self._mailbox: list[dict[str, Any]] = []
        self._lifecycle = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.Server] = []
        self._sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()
        self._handler = _Handler(self)
        for username, password in (users or {}).items():
            self.add_user(username, password)

    def __repr__(self) -> str:
        return (
            f"SmtpServer(host={self.host!r}, tls_port={self.tls_port}, "
            f"starttls_port={self.starttls_port}, plain_port={self.plain_port})"
        )

    def __enter__(self) -> SmtpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # users and mailbox (any thread)

    def add_user(self, username: str, password: str) -> None:
        """Add or replace an SMTP user; takes effect for the next AUTH."""
        # Credentials are compared as the UTF-8 bytes the client sends in AUTH (RFC 4616);
        # surrogatepass keeps a lone surrogate from JSON comparable instead of an error.
        with self._lock:
            self._users[username.encode("utf-8", "surrogatepass")] = password.encode(
                "utf-8", "surrogatepass")

    def mailbox(self) -> list[dict[str, Any]]:
        """Copies of the received messages, in arrival order."""
        with self._lock:
            return [{**m, "to": list(m["to"])} for m in self._mailbox]

    def clear_mailbox(self) -> None:
        with self._lock:
            self._mailbox.clear()

    def _check_password(self, login: bytes, password: bytes) -> bool:
        with self._lock:
            expected = self._users.get(login)
        # compare_digest on both branches so an unknown user costs the same as a wrong one.
        return hmac.compare_digest(expected or b"\0" * 32, password) and expected is not None

    def _deliver(self, message: dict[str, Any]) -> None:
        with self._lock:
            self._mailbox.append(message)

    # lifecycle

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Open the three listeners on free ports; returns once all of them accept."""
        with self._lifecycle:
            if self.running:
                return
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="qlik-emulator-smtp", daemon=True
            )
            thread.start()
            self._loop, self._thread = loop, thread
            try:
                asyncio.run_coroutine_threadsafe(self._open(), loop).result(START_TIMEOUT)
            except BaseException:
                self._shutdown()
                raise
            log.info("SMTP server listening: %r", self)

    def stop(self) -> None:
        """Close the listeners and every open session; safe to call any number of times."""
        with self._lifecycle:
            self._shutdown()

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_tls.load_cert_chain(self.certs.cert_file, self.certs.key_file)

        def factory(**smtp_options: Any) -> Any:
            def make() -> SMTP:
                session = _Session(
                    self._handler,
                    hostname=SERVER_NAME,
                    enable_SMTPUTF8=True,
                    auth_required=True,
                    authenticator=self._handler.authenticate,
                    loop=loop,
                    **smtp_options,
                )
                self._sessions.add(session)
                return session

            return make

        tls = await loop.create_server(factory(auth_in_clear=True), self.host, 0, ssl=server_tls)
        starttls = await loop.create_server(
            factory(tls_context=server_tls, require_starttls=True, auth_in_clear=False),
            self.host,
            0,
        )
        plain = await loop.create_server(factory(auth_in_clear=True), self.host, 0)
        self._servers = [tls, starttls, plain]
        for server in self._servers:
            await server.start_serving()
        self.tls_port, self.starttls_port, self.plain_port = (
            s.sockets[0].getsockname()[1] for s in self._servers
        )

    async def _close(self) -> None:
        for server in self._servers:
            server.close()
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
        for server in self._servers:
            await server.wait_closed()
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Let the closing (TLS) transports run their last callbacks before the loop stops.
        for _ in range(3):
            await asyncio.sleep(0)

    def _shutdown(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            if thread.is_alive():
                asyncio.run_coroutine_threadsafe(self._close(), loop).result(START_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(START_TIMEOUT)
            if not thread.is_alive():
                loop.close()
            self._loop, self._thread, self._servers = None, None, []
            log.info("SMTP server stopped")
