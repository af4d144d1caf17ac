"""The admin interface (``admin_url``): requests, faults, mailbox, SMTP users, tenants.

It hands out every tenant's keys and can rewrite any config, so it answers only a caller
that proves it read the emulator's startup JSON, and only in ways a web page cannot
imitate:

- the admin token, as ``Authorization: Bearer <admin_token>`` (or ``?token=`` on a
  GET/HEAD, so a browser can open the inbox page; writes take the header only);
- a loopback ``Host`` with the admin port (``127.0.0.1``, ``localhost``, ``[::1]``), so a
  page on another name that resolves to 127.0.0.1 (DNS rebinding) is refused;
- ``Content-Type: application/json`` on every POST and PUT, which an HTML form cannot send.

Every refusal is one Qlik-shaped error, ``ADMIN-<status>``, whose title names the fix.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from .faults import FaultError, kinds_expected
from .model import ApiErrorAnswer, same_secret
from .wire import CappedRequest, json_response, no_content, qlik_error, raw_body

log = logging.getLogger("qlik_email_resource.emulator")

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
TOKEN_QUERY = "token"


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


# One handler per endpoint and method, each registered by ``@_route`` right above it (as
# moto's responses.py has one method per action). Werkzeug lets HEAD match every GET route,
# and only those: a HEAD reads like a GET and never writes.
_Handler = Callable[[AdminControl, Request, Mapping[str, str]], Response]
_ROUTES = Map(strict_slashes=False)


def _route(path: str, method: str) -> Callable[[_Handler], _Handler]:
    def register(handler: _Handler) -> _Handler:
        _ROUTES.add(Rule(path, endpoint=handler, methods=[method]))
        return handler
    return register


_FIX_TOKEN = ("send 'Authorization: Bearer <admin_token>' (admin_token is in the emulator's "
              "startup JSON; emu.admin_token or emu.admin_headers in Python)")


def _refusal(status: int, title: str, headers: Mapping[str, str] | None = None) -> Response:
    return qlik_error(status, f"ADMIN-{status}", title, headers)


class AdminApp:
    def __init__(self, control: AdminControl, token: str):
        if not token:
            raise ValueError("the admin app needs a non-empty admin token")
        self.control = control
        self.token = token

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        request = CappedRequest(environ)
        try:
            response = self._guard(request, str(environ.get("SERVER_PORT", ""))) or \
                self._handle(request)
        except ApiErrorAnswer as exc:
            response = _refusal(exc.status, exc.title)
        except (FaultError, ValueError, KeyError, TypeError) as exc:
            response = _refusal(400, str(exc).strip("'\""))
        except HTTPException as exc:
            response = _refusal(exc.code or 400, exc.description or "Bad request")
        except Exception:
            log.exception("admin: unhandled error on %s %s", request.method, request.path)
            response = qlik_error(500, "ADMIN-500", "Internal error: see the emulator log")
        # Path only: the query may hold the admin token.
        log.info("admin %s %s %s", request.method, request.path, response.status_code)
        return response(environ, start_response)

    # ---- who may call ---------------------------------------------------------------

    def _guard(self, request: Request, port: str) -> Response | None:
        """A refusal, or None when the request may go on."""
        host = request.headers.get("Host", "")
        if host.lower() not in {f"{name}:{port}" for name in LOOPBACK_NAMES}:
            return _refusal(403, f"Host {host[:80]!r} is not this admin listener: call "
                            f"http://127.0.0.1:{port} (or localhost or [::1] with port {port}); "
                            "other names are refused so a web page cannot reach the admin API")
        given = self._given_token(request)
        if given is None:
            if request.path.rstrip("/") == "/health" and request.method in ("GET", "HEAD"):
                return None  # says only "ok": open to health checks
            where = ("the token goes in the Authorization header for writes, not the URL"
                     if request.args.get(TOKEN_QUERY) is not None else "no admin token")
            return _refusal(401, f"The admin API needs the admin token ({where}): {_FIX_TOKEN}",
                            {"WWW-Authenticate": 'Bearer realm="qlik-emulator-admin"'})
        if not same_secret(given, self.token):
            return _refusal(403, "Wrong admin token (tenant API keys and access tokens have no "
                            f"power here): {_FIX_TOKEN}")
        if request.method in ("POST", "PUT") and request.mimetype != "application/json":
            return _refusal(415, "Send the body as JSON with 'Content-Type: application/json' "
                            "(an empty object {} when the call takes no parameters); "
                            f"got {request.mimetype or 'no Content-Type'}")
        return None

    @staticmethod
    def _given_token(request: Request) -> str | None:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme:
            return value.strip() if scheme.lower() == "bearer" else ""
        if request.method in ("GET", "HEAD"):
            # A browser cannot send a header; reads may carry the token in the URL.
            return request.args.get(TOKEN_QUERY)
        return None

    # ---- what it does -----------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        try:
            handler, args = _ROUTES.bind("admin").match(request.path, method=request.method)
        except MethodNotAllowed as exc:
            allow = ", ".join(exc.valid_methods or [])
            return _refusal(405, f"{request.path} takes {allow}", {"Allow": allow})
        except HTTPException:
            return _refusal(404, f"Not found: {request.path}; the admin API has /health, "
                            "/requests, /faults, /mailbox, /smtp-users, /tenants, /reset")
        return handler(self.control, request, args)


@_route("/health", "GET")
def _health(c: AdminControl, r: Request, a: Mapping[str, str]) -> Response:
    return json_response({"status": "ok"})


@_route("/requests", "GET")
def _list_requests(c: AdminControl, r: Request, a: Mapping[str, str]) -> Response:
    return json_response(c.requests())


@_route("/requests", "DELETE")
def _clear_requests(c: AdminControl, r: Request, a: Mapping[str, str]) -> Response:
    c.clear_requests()
    return no_content()


@_route("/faults", "GET")
def _list_faults(c: AdminControl, r: Request, a: Mapping[str, str]) -> Response:
    return json_response(c.list_faults())


@_route("/faults", "POST")
def _add_fault(c: AdminControl, r: Request, a: Mapping[str, str]) -> Response:
    body = _body(r)
    tenant, kind = body.pop("tenant", None), body.pop("kind", None)
    if not isinstance(tenant, str):
        raise ValueError("a fault needs \"tenant\" (a tenant name) and \"kind\"")
    if not isinstance(kind, str):
        raise FaultError(kinds_expected())
    return json_response(c.add_fault(tenant, kind, **body), 201)


@_route("/faults", "DELETE")
def _clear_faults(c: AdminControl, r: Request, a: Mapping[str, str]) -> Response:
    c.clear_faults()
    return no_content()


@_route("/mailbox", "GET")
def _mailbox(c: AdminControl, r: Request, a: Mapping[str, str]) -> Response:
    messages = c.mailbox()
    if r.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html":
        return Response(inbox_html(messages), mimetype="text/html")
    return json_response(messages)


@_route("/mailbox", "DELETE")
def _clear_mailbox(c: AdminControl, r: Request, a: Mapping[str, str]) -> Response:
    c.clear_mailbox()
    return no_content()


@_route("/smtp-users", "POST")
def _add_smtp_user(c: AdminControl, r: Request, a: Mapping[str, str]) -> Response:
    body = _body(r)
    user, password = body.get("username"), body.get("password")
    if not (isinstance(user, str) and user and isinstance(password, str) and password):
        raise ValueError("send {\"username\", \"password\"} (non-empty strings)")
    c.add_smtp_user(user, password)
    return no_content()


@_route("/tenants", "GET")
def _list_tenants(c: AdminControl, r: Request, a: Mapping[str, str]) -> Response:
    return json_response(c.tenant_infos())


@_route("/tenants", "POST")
def _add_tenant(c: AdminControl, r: Request, a: Mapping[str, str]) -> Response:
    name = _body(r).get("name")
    if not isinstance(name, str):
        raise ValueError("send {\"name\": \"tenant-name\"}")
    return json_response(c.add_tenant_info(name), 201)


@_route("/tenants/<name>/expire-tokens", "POST")
def _expire_tokens(c: AdminControl, r: Request, a: Mapping[str, str]) -> Response:
    c.expire_tokens(a["name"])
    return no_content()


@_route("/tenants/<name>/config", "PUT")
def _set_config(c: AdminControl, r: Request, a: Mapping[str, str]) -> Response:
    c.set_config(a["name"], _body(r))
    return no_content()


@_route("/reset", "POST")
def _reset(c: AdminControl, r: Request, a: Mapping[str, str]) -> Response:
    c.reset()
    return no_content()


def _body(request: Request) -> dict[str, Any]:
    raw = raw_body(request)
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
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
