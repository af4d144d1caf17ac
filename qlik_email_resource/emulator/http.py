"""The tenant API as a Werkzeug WSGI app, in Qlik's wire format.

Routing and wire format only: rules live in ``model.py``, rate limits in ``limits.py`` and
faults in ``faults.py`` (both applied here, in front of the handlers, in one place), the
admin interface in ``admin.py``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from .faults import Faults
from .limits import RateLimiter
from .model import ApiErrorAnswer, Backend, Tenant
from .oauth import token_params
from .wire import (
    EMAIL_CONFIG,
    MAX_BODY,
    CappedRequest,
    json_body,
    json_response,
    no_content,
    qlik_error,
    rate_limited,
)

__all__ = ["MAX_BODY", "ApiApp", "RequestLog", "qlik_error"]

log = logging.getLogger("qlik_email_resource.emulator")

# [I] Qlik documents PATCH as deprecated (2026-01-13, with PUT) and sunset in 2026-11, but
# not whether its answers carry the RFC 9745 / RFC 8594 headers. The emulator sends them,
# so that a client's deprecation notice is exercised end to end; the day is a guess.
PATCH_DEPRECATION = {
    "Deprecation": "@1768262400",  # 2026-01-13T00:00:00Z
    "Sunset": "Mon, 30 Nov 2026 23:59:59 GMT",
    "Link": '<https://qlik.dev/apis/rest/transports/>; rel="deprecation"',
}


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


_ApiHandler = Callable[[Backend, Request, Tenant], Response]


@dataclass(frozen=True)
class _Endpoint:
    """One documented path and method: its handler and whether it needs the admin role."""

    handler: _ApiHandler
    admin_only: bool


# The token request is answered before authentication, by ApiApp._token.
_OAUTH_TOKEN = "oauth-token"
# One handler per documented path and method, each registered by ``@_api_route`` right
# above it. Werkzeug lets HEAD match every GET route, and nothing else undocumented.
_API_ROUTES = Map([Rule("/oauth/token", endpoint=_OAUTH_TOKEN, methods=["POST"])],
                  strict_slashes=False)


def _api_route(path: str, method: str, *,
               admin_only: bool) -> Callable[[_ApiHandler], _ApiHandler]:
    """Register a handler. ``admin_only``: the spec documents a 403 (Tenant Admin role)
    for it; validate and verify-connection document none, so viewers may call them ([C]
    the TenantAdminError answers on qlik.dev/apis/rest/transports)."""
    def register(handler: _ApiHandler) -> _ApiHandler:
        _API_ROUTES.add(Rule(path, endpoint=_Endpoint(handler, admin_only), methods=[method]))
        return handler
    return register


@_api_route(EMAIL_CONFIG, "GET", admin_only=True)
def _get_config(backend: Backend, request: Request, tenant: Tenant) -> Response:
    return json_response(backend.get_config(tenant))


@_api_route(EMAIL_CONFIG, "PUT", admin_only=True)
def _put_config(backend: Backend, request: Request, tenant: Tenant) -> Response:
    backend.put_config(tenant, json_body(request))
    return no_content()


@_api_route(EMAIL_CONFIG, "PATCH", admin_only=True)
def _patch_config(backend: Backend, request: Request, tenant: Tenant) -> Response:
    backend.patch_config(tenant, json_body(request))
    response = no_content()
    response.headers.update(PATCH_DEPRECATION)
    return response


@_api_route(EMAIL_CONFIG, "DELETE", admin_only=True)
def _delete_config(backend: Backend, request: Request, tenant: Tenant) -> Response:
    backend.delete_config(tenant)
    return no_content()


@_api_route(EMAIL_CONFIG + "/actions/send-test-email", "POST", admin_only=True)
def _send_test_email(backend: Backend, request: Request, tenant: Tenant) -> Response:
    return json_response(backend.send_test_email(tenant, json_body(request)))


@_api_route(EMAIL_CONFIG + "/actions/validate", "POST", admin_only=False)
def _validate(backend: Backend, request: Request, tenant: Tenant) -> Response:
    return json_response(backend.validate(tenant))


@_api_route(EMAIL_CONFIG + "/actions/verify-connection", "POST", admin_only=False)
def _verify_connection(backend: Backend, request: Request, tenant: Tenant) -> Response:
    return json_response(backend.verify_connection(tenant))


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
        request = CappedRequest(environ)
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
        # For HEAD, Werkzeug sends the headers of this answer and no body.
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
            retry_after = 1 if action.retry_after is None else action.retry_after
            if action.status == 429:
                return rate_limited(retry_after)
            headers = {} if action.retry_after is None else {"Retry-After": str(retry_after)}
            return qlik_error(action.status, headers=headers)

        try:
            # Werkzeug lets HEAD match every GET rule, and nothing else that is undocumented.
            endpoint, _ = _API_ROUTES.bind("emulator").match(rel_path, method=request.method)
        except MethodNotAllowed as exc:
            allow = ", ".join(exc.valid_methods or [])
            return qlik_error(405, "HTTP-405", f"Method {request.method} not allowed here",
                              {"Allow": allow})
        except (NotFound, HTTPException):
            return qlik_error(404, "HTTP-404", f"Not found: {rel_path}")
        # HEAD is GET without a body (RFC 9110 §9.3.2): same auth, same answer, never a
        # write, whatever body it carries.
        verb = "GET" if request.method == "HEAD" else request.method

        try:
            if endpoint == _OAUTH_TOKEN:
                return self._token(request, tenant)
            principal = self.backend.authenticate(tenant, _bearer(request))
            if principal is None:
                # Unauthenticated calls draw from a bucket of their own per client address:
                # a flood of them is limited without touching the buckets of real users.
                retry = self.limiter.check(tenant.name, f"unauthenticated {_address(request)}",
                                           verb)
                if retry:
                    return rate_limited(retry)
                return qlik_error(401, "HTTP-401", "Unauthorized")
            retry = self.limiter.check(tenant.name, principal.user, verb)
            if retry:
                return rate_limited(retry)
            if endpoint.admin_only and not principal.admin:
                return qlik_error(403, "ROLECHECK-1", "Must be a tenant admin")
            return endpoint.handler(self.backend, request, tenant)
        except ApiErrorAnswer as exc:
            return qlik_error(exc.status, exc.code, exc.title, exc.headers)
        except HTTPException as exc:  # e.g. 413 from the body cap
            return qlik_error(exc.code or 400)

    def _token(self, request: Request, tenant: Tenant) -> Response:
        """``POST /oauth/token``. A failed request is charged to buckets of its own, per
        client address and per attempted client id; a good one to its client's bucket.

        So a flood of bad logins never refuses the real client: its credentials are
        checked before any failure bucket is consulted. The price: a caller over its
        failure budget still learns when a guess is right; with 256-bit generated secrets
        guessing is not the threat these buckets answer, floods and retry storms are."""
        params: dict[str, Any] = {}
        basic = False
        try:
            params, basic = token_params(request)
            client_id = self.backend.authenticate_client(tenant, params)
        except ApiErrorAnswer as exc:
            attempted = params.get("client_id")
            keys = [f"oauth-failed-from {_address(request)}"]
            if isinstance(attempted, str):
                keys.append(f"oauth-failed-as {attempted[:64]}")
            for key in keys:  # the first empty bucket answers; later ones are not charged
                retry = self.limiter.check(tenant.name, key, "POST")
                if retry:
                    return rate_limited(retry)
            headers = dict(exc.headers)
            if exc.status == 401 and basic:
                headers["WWW-Authenticate"] = 'Basic realm="oauth", charset="UTF-8"'
            return qlik_error(exc.status, exc.code, exc.title, headers)
        retry = self.limiter.check(tenant.name, f"oauth-client {client_id}", "POST")
        if retry:
            return rate_limited(retry)
        return json_response(self.backend.mint_token(tenant, params.get("scope")))


class _Dropped(Exception):
    pass


def _split_tenant(path: str) -> tuple[str | None, str]:
    if not path.startswith("/t/"):
        return None, ""
    name, _, rest = path[3:].partition("/")
    return (name or None), "/" + rest


def _address(request: Request) -> str:
    return request.remote_addr or "-"


def _bearer(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
