"""Werkzeug WSGI apps: the tenant API in Qlik's wire format, and the admin interface.

Routing and wire format only: rules live in ``model.py``, rate limits and faults in
``limits.py`` (applied here, in front of the handlers, in one place).
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from .limits import FaultError, Faults, RateLimiter
from .model import Backend, Principal, QlikError, Tenant

log = logging.getLogger("qlik_email_resource.emulator")

MAX_BODY = 64 * 1024
EMAIL_CONFIG = "/api/v1/transports/email-config"

_STATUS_TITLES = {
    400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
    405: "Method not allowed", 409: "Conflict", 410: "Gone", 413: "Request body too large",
    429: "API rate limit reached.", 500: "Internal server error", 502: "Bad gateway",
    503: "Service unavailable", 504: "Gateway timeout",
}


class _Request(Request):
    max_content_length = MAX_BODY


def qlik_error(status: int, code: str | None = None, title: str | None = None,
               headers: Mapping[str, str] | None = None, detail: str | None = None) -> Response:
    """Qlik's error body: ``{"errors":[{"code","title"}]}`` (reference §5)."""
    err: dict[str, str] = {"code": code or f"HTTP-{status}",
                           "title": title or _STATUS_TITLES.get(status, "Error")}
    if detail:
        err["detail"] = detail
    return json_response({"errors": [err]}, status, headers)


def rate_limited(retry_after: int) -> Response:
    return qlik_error(429, "HTTP-429", "API rate limit reached.",
                      {"Retry-After": str(retry_after)},
                      detail=f"You need to wait {retry_after} seconds until limit is lifted.")


def json_response(data: Any, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(data), status=status, headers=dict(headers or {}),
                    mimetype="application/json")


# [I] Qlik documents PATCH as deprecated (2026-01-13, with PUT) and sunset in 2026-11, but
# not whether its answers carry the RFC 9745 / RFC 8594 headers. The emulator sends them,
# so that a client's deprecation notice is exercised end to end; the day is a guess.
PATCH_DEPRECATION = {
    "Deprecation": "@1768262400",  # 2026-01-13T00:00:00Z
    "Sunset": "Mon, 30 Nov 2026 23:59:59 GMT",
    "Link": '<https://qlik.dev/apis/rest/transports/>; rel="deprecation"',
}


def no_content() -> Response:
    response = Response(status=204)
    del response.headers["Content-Type"]  # no body, so no type
    return response


class RequestLog:
    """What the admin ``/requests`` call returns: ``{"tenant","method","path","status"}``."""

    def __init__(self, limit: int = 100_000):
        self._items: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._limit = limit

    def add(self, tenant: str | None, method: str, path: str, status: int) -> None:
        with self._lock:
            self._items.append({"tenant": tenant, "method": method, "path": path,
                                "status": status})
            if len(self._items) > self._limit:
                del self._items[: len(self._items) - self._limit]

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(i) for i in self._items]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_API_RULES = Map([
    Rule(EMAIL_CONFIG, endpoint="config", methods=["GET", "PUT", "PATCH", "DELETE"]),
    Rule(EMAIL_CONFIG + "/actions/send-test-email", endpoint="send", methods=["POST"]),
    Rule(EMAIL_CONFIG + "/actions/validate", endpoint="validate", methods=["POST"]),
    Rule(EMAIL_CONFIG + "/actions/verify-connection", endpoint="verify", methods=["POST"]),
    Rule("/oauth/token", endpoint="token", methods=["POST"]),
], strict_slashes=False)

# Which calls need the Tenant Admin role. The spec documents 403 for these only;
# validate and verify-connection document no 403, so viewers may call them (reference §6).
_ADMIN_ONLY = {("config", "GET"), ("config", "PUT"), ("config", "PATCH"),
               ("config", "DELETE"), ("send", "POST")}


def _drop_connection(environ: Mapping[str, Any]) -> None:
    """Close the client connection without an answer (the ``drop`` fault).

    Shutting the socket down makes Werkzeug's later write fail with a broken pipe, which it
    treats as a dropped connection: the client sees the connection close, no response."""
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class ApiApp:
    """Every tenant under ``/t/{name}``; the API paths below it exactly as on Qlik."""

    def __init__(self, backend: Backend, limiter: RateLimiter, faults: Faults,
                 request_log: RequestLog):
        self.backend = backend
        self.limiter = limiter
        self.faults = faults
        self.request_log = request_log

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        request = _Request(environ)
        tenant_name, rel_path = _split_tenant(request.path)
        started = time.monotonic()
        try:
            response = self._handle(request, tenant_name, rel_path)
        except _Dropped:
            self._log(tenant_name, request.method, rel_path or request.path, 0, started)
            _drop_connection(environ)
            # Werkzeug needs a status to write; the write then fails on the closed socket.
            start_response("500 Dropped", [])
            return []
        except Exception:
            # A bug must still answer in Qlik's shape, never hang or leak a traceback.
            log.exception("unhandled error on %s %s", request.method, request.path)
            response = qlik_error(500)
        self._log(tenant_name, request.method, rel_path or request.path,
                  response.status_code, started)
        return response(environ, start_response)

    def _log(self, tenant: str | None, method: str, path: str, status: int,
             started: float) -> None:
        self.request_log.add(tenant, method, path, status)
        # Path and status only: tokens travel in headers and bodies, never logged.
        log.info("%s %s %s %s %.1fms", tenant or "-", method, path, status or "dropped",
                 (time.monotonic() - started) * 1000)

    def _handle(self, request: Request, tenant_name: str | None, rel_path: str) -> Response:
        if tenant_name is None:
            if request.path in ("/health", "/health/"):
                if request.method not in ("GET", "HEAD"):
                    return qlik_error(405, "HTTP-405", "Method not allowed: /health takes GET",
                                      {"Allow": "GET, HEAD"})
                return json_response({"status": "ok"})
            return qlik_error(404, "HTTP-404", "Not found: tenant APIs live under "
                              "/t/{tenant}/api/v1/...")
        tenant = self.backend.tenant(tenant_name)
        if tenant is None:
            return qlik_error(404, "HTTP-404", f"Unknown tenant {tenant_name!r}")

        action = self.faults.take(tenant.name, request.method, rel_path)
        if action.sleep:
            time.sleep(action.sleep)
        if action.drop:
            raise _Dropped()
        if action.status is not None:
            headers = {}
            if action.status == 429 or action.retry_after is not None:
                headers["Retry-After"] = str(action.retry_after or 1)
            if action.status == 429:
                return rate_limited(action.retry_after or 1)
            return qlik_error(action.status, headers=headers)

        try:
            endpoint, _ = _API_RULES.bind("emulator").match(rel_path, method=request.method)
        except MethodNotAllowed as exc:
            allow = ", ".join(exc.valid_methods or [])
            return qlik_error(405, "HTTP-405", f"Method {request.method} not allowed here",
                              {"Allow": allow})
        except (NotFound, HTTPException):
            return qlik_error(404, "HTTP-404", f"Not found: {rel_path}")

        try:
            if endpoint == "token":
                retry = self.limiter.check(tenant.name, "oauth-token", "POST")
                if retry:
                    return rate_limited(retry)
                return json_response(self.backend.issue_token(tenant, _json_body(request)))
            principal = self.backend.authenticate(tenant, _bearer(request))
            if principal is None:
                return qlik_error(401, "HTTP-401", "Unauthorized")
            retry = self.limiter.check(tenant.name, principal.user, request.method)
            if retry:
                return rate_limited(retry)
            if (endpoint, request.method) in _ADMIN_ONLY and not principal.admin:
                return qlik_error(403, "ROLECHECK-1", "Must be a tenant admin")
            return self._dispatch(endpoint, request, tenant, principal)
        except QlikError as exc:
            return qlik_error(exc.status, exc.code, exc.title, exc.headers)
        except HTTPException as exc:  # e.g. 413 from the body cap
            return qlik_error(exc.code or 400)

    def _dispatch(self, endpoint: str, request: Request, tenant: Tenant,
                  principal: Principal) -> Response:
        b = self.backend
        if endpoint == "config":
            if request.method == "GET":
                return json_response(b.get_config(tenant))
            if request.method == "DELETE":
                b.delete_config(tenant)
                return no_content()
            body = _json_body(request)
            if request.method == "PUT":
                b.put_config(tenant, body)
                return no_content()
            b.patch_config(tenant, body)
            response = no_content()
            response.headers.update(PATCH_DEPRECATION)
            return response
        if endpoint == "validate":
            return json_response(b.validate(tenant))
        if endpoint == "verify":
            return json_response(b.verify_connection(tenant))
        return json_response(b.send_test_email(tenant, _json_body(request)))


class _Dropped(Exception):
    pass


def _split_tenant(path: str) -> tuple[str | None, str]:
    if not path.startswith("/t/"):
        return None, ""
    name, _, rest = path[3:].partition("/")
    return (name or None), "/" + rest


def _bearer(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _json_body(request: Request) -> Any:
    raw = request.get_data(cache=True)  # raises RequestEntityTooLarge over MAX_BODY
    if len(raw) >= MAX_BODY:
        # A chunked body is cut at the cap instead of raising: treat reaching it as too big.
        raise QlikError(413, "HTTP-413", "Request body too large")
    if not raw.strip():
        raise QlikError(400, "INPUTCHECK-1", "Request body is required (JSON)")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: "[[[[...", nested deeper than the parser goes.
        raise QlikError(400, "INPUTCHECK-1", "Request body is not valid JSON") from None


# ---- admin ----------------------------------------------------------------------------


class AdminControl(Protocol):
    """The parts of :class:`~.server.Emulator` the admin app drives."""

    def requests(self) -> list[dict[str, Any]]: ...
    def clear_requests(self) -> None: ...
    def add_fault(self, tenant: str, kind: str, **params: Any) -> dict[str, Any]: ...
    def clear_faults(self) -> None: ...
    def list_faults(self) -> list[dict[str, Any]]: ...
    def mailbox(self) -> list[dict[str, Any]]: ...
    def clear_mailbox(self) -> None: ...
    def add_smtp_user(self, username: str, password: str) -> None: ...
    def tenant_infos(self) -> dict[str, dict[str, str]]: ...
    def add_tenant_info(self, name: str) -> dict[str, str]: ...
    def expire_tokens(self, name: str) -> None: ...
    def set_config(self, tenant: str, data: Mapping[str, Any]) -> None: ...
    def reset(self) -> None: ...


_ADMIN_RULES = Map([
    Rule("/health", endpoint="health", methods=["GET"]),
    Rule("/requests", endpoint="requests", methods=["GET", "DELETE"]),
    Rule("/faults", endpoint="faults", methods=["GET", "POST", "DELETE"]),
    Rule("/mailbox", endpoint="mailbox", methods=["GET", "DELETE"]),
    Rule("/smtp-users", endpoint="smtp_users", methods=["POST"]),
    Rule("/tenants", endpoint="tenants", methods=["GET", "POST"]),
    Rule("/tenants/<name>/expire-tokens", endpoint="expire", methods=["POST"]),
    Rule("/tenants/<name>/config", endpoint="set_config", methods=["PUT"]),
    Rule("/reset", endpoint="reset", methods=["POST"]),
], strict_slashes=False)


class AdminApp:
    def __init__(self, control: AdminControl):
        self.control = control

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        request = _Request(environ)
        try:
            response = self._handle(request)
        except QlikError as exc:
            response = qlik_error(exc.status, exc.code, exc.title)
        except (FaultError, ValueError, KeyError, TypeError) as exc:
            response = qlik_error(400, "ADMIN-400", str(exc))
        except HTTPException as exc:
            response = qlik_error(exc.code or 400)
        except Exception:
            log.exception("admin: unhandled error on %s %s", request.method, request.path)
            response = qlik_error(500)
        log.info("admin %s %s %s", request.method, request.path, response.status_code)
        return response(environ, start_response)

    def _handle(self, request: Request) -> Response:
        if "Authorization" in request.headers:
            # Tenant tokens have no power here; refuse them so nobody mixes the two up.
            return qlik_error(403, "ADMIN-403", "The admin interface takes no Authorization "
                              "header: tenant tokens are not accepted here")
        try:
            endpoint, args = _ADMIN_RULES.bind("admin").match(request.path,
                                                              method=request.method)
        except MethodNotAllowed:
            return qlik_error(405)
        except HTTPException:
            return qlik_error(404, "HTTP-404", f"Not found: {request.path}")
        c, m = self.control, request.method
        if endpoint == "health":
            return json_response({"status": "ok"})
        if endpoint == "requests":
            if m == "DELETE":
                c.clear_requests()
                return no_content()
            return json_response(c.requests())
        if endpoint == "faults":
            if m == "DELETE":
                c.clear_faults()
                return no_content()
            if m == "GET":
                return json_response(c.list_faults())
            body = _admin_body(request)
            tenant, kind = body.pop("tenant", None), body.pop("kind", None)
            if not isinstance(tenant, str) or not isinstance(kind, str):
                raise ValueError("a fault needs \"tenant\" and \"kind\"")
            return json_response(c.add_fault(tenant, kind, **body), 201)
        if endpoint == "mailbox":
            if m == "DELETE":
                c.clear_mailbox()
                return no_content()
            messages = c.mailbox()
            best = request.accept_mimetypes.best_match(["application/json", "text/html"])
            if best == "text/html":
                return Response(inbox_html(messages), mimetype="text/html")
            return json_response(messages)
        if endpoint == "smtp_users":
            body = _admin_body(request)
            user, password = body.get("username"), body.get("password")
            if not (isinstance(user, str) and user and isinstance(password, str) and password):
                raise ValueError("send {\"username\", \"password\"} (non-empty strings)")
            c.add_smtp_user(user, password)
            return no_content()
        if endpoint == "tenants":
            if m == "GET":
                return json_response(c.tenant_infos())
            name = _admin_body(request).get("name")
            if not isinstance(name, str):
                raise ValueError("send {\"name\": \"tenant-name\"}")
            return json_response(c.add_tenant_info(name), 201)
        if endpoint == "expire":
            c.expire_tokens(args["name"])
            return no_content()
        if endpoint == "set_config":
            c.set_config(args["name"], _admin_body(request))
            return no_content()
        c.reset()
        return no_content()


def _admin_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.get_data() or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ValueError("body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


def inbox_html(messages: list[dict[str, Any]]) -> str:
    """A plain, readable inbox page; every value is escaped (mail content is untrusted)."""
    rows = []
    for i, msg in enumerate(reversed(messages), 1):
        to = ", ".join(msg.get("to") or [])
        rows.append(
            "<article><h2>{n}. {subject}</h2><p><b>From:</b> {sender}<br><b>To:</b> {to}</p>"
            "<pre>{body}</pre></article>".format(
                n=len(messages) - i + 1,
                subject=html.escape(str(msg.get("subject") or "(no subject)")),
                sender=html.escape(str(msg.get("from") or "")), to=html.escape(to),
                body=html.escape(str(msg.get("body") or "")),
            )
        )
    content = "\n".join(rows) or "<p>No messages yet.</p>"
    return (
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Emulator inbox</title>"
        "<style>body{font-family:sans-serif;max-width:50em;margin:2em auto}"
        "article{border-bottom:1px solid #ccc;padding:.5em 0}pre{white-space:pre-wrap}"
        "</style></head><body>"
        f"<h1>Emulator inbox ({len(messages)} message{'s' if len(messages) != 1 else ''})</h1>"
        f"{content}</body></html>"
    )
