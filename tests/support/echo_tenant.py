"""A tiny real HTTP tenant (http.server on 127.0.0.1) that echoes secrets back.

It plays a careless server: every error it sends repeats what it was sent (the
SMTP password of a PUT or PATCH, the bearer token) in the escaped forms servers
really use: Python ``repr``/``ascii``, JSON ``\\uXXXX`` escapes and URL encoding,
plus the plain text. Tests point the client or the provider host at it and check
that no form survives into an error, a log or a traceback.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, quote_plus

TENANT_ID = "echo-tenant-id"
CONFIG_PATH = "/api/v1/transports/email-config"


def echoed(secret: str) -> str:
    """How a careless server repeats ``secret``: every form at once."""
    return (
        f"repr={secret!r} ascii={secret!a} json={json.dumps(secret)} "
        f"url={quote(secret, safe='')} plain={secret}"
    )


def leak_forms(secret: str) -> list[str]:
    """What a scan looks for: the secret in each escaped form (quotes stripped)."""
    raw = secret.encode()
    return sorted({
        secret, repr(secret)[1:-1], ascii(secret)[1:-1], json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1], quote(secret, safe=""),
        quote_plus(secret), base64.b64encode(raw).decode(),
    })


def leaks(text: str, secrets: list[str]) -> list[str]:
    return [form for secret in secrets for form in leak_forms(secret) if form in text]


class EchoTenant(BaseHTTPRequestHandler):
    # Set per server (see serve()): "reject" answers writes with 400; "accept" stores them
    # and answers verify-connection with an SMTP failure that echoes the password.
    mode = "reject"
    token = ""
    config: dict[str, Any] | None = None
    password = ""  # the last one stored, echoed by verify-connection

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else None

    def _send(self, status: int, payload: Any = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: str, echo: str) -> None:
        self._send(status, {"errors": [{"code": code, "title": f"rejected: {echo}",
                                        "detail": f"you sent {echo}"}]})

    def _bearer(self) -> str:
        return self.headers.get("Authorization", "").removeprefix("Bearer ")

    def _password(self, body: Any) -> str:
        if isinstance(body, dict):
            config = body.get("providerConfig") or {}
            return str(config.get("emailPassword") or config.get("clientSecret") or "")
        if isinstance(body, list):
            return "".join(str(op.get("value")) for op in body if "Password" in op.get("path", ""))
        return ""

    def _handle(self) -> None:
        path = self.path.split("?")[0]
        body = self._body()
        cls = type(self)
        if path.endswith("/oauth/token"):
            self._send(200, {"access_token": cls.token, "token_type": "bearer",
                             "expires_in": 3600})
            return
        if cls.mode == "echo-token":
            self._error(401, "HTTP-401", f"unknown token {echoed(self._bearer())}")
            return
        if not path.endswith(CONFIG_PATH) and "/actions/" not in path:
            self._error(404, "HTTP-404", echoed(self._bearer()))
            return
        if self.command == "GET":
            self._send(200, cls.config or {"tenantId": TENANT_ID, "isValid": False,
                                           "passwordExists": False,
                                           "errorCode": "CONFIG_NOT_SET"})
        elif self.command in ("PUT", "PATCH"):
            password = self._password(body)
            if cls.mode == "reject":
                self._error(400, "INPUTCHECK-1", f"SMTP login failed: {echoed(password)}, "
                            f"key {echoed(self._bearer())}")
                return
            provider_config = dict(body.get("providerConfig") or {})
            cls.config = {
                "tenantId": TENANT_ID, "serviceProvider": body.get("serviceProvider"),
                "providerConfig": {k: v for k, v in provider_config.items()
                                   if k != "emailPassword"},
                "passwordExists": bool(password), "isValid": True, "errorCode": "OK",
                "modificationTime": "2025-01-01T00:00:00.000Z",
            }
            cls.password = password
            self._send(204)
        elif path.endswith("/actions/verify-connection"):
            self._send(200, {"success": False, "smtpResponseCode": 535,
                             "message": f"535 authentication failed for {echoed(cls.password)}"})
        else:
            self._error(400, "HTTP-400", echoed(self._bearer()))

    do_GET = do_PUT = do_PATCH = do_POST = do_DELETE = _handle

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def serve(mode: str = "reject", token: str = "") -> Iterator[str]:
    """Run an echoing tenant; yields its tenant URL (plain http on 127.0.0.1)."""
    handler = type("EchoTenantHandler", (EchoTenant,), {"mode": mode, "token": token,
                                                        "config": None, "password": ""})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/t/echo"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
