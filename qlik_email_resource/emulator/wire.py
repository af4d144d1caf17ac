"""Qlik's wire format, shared by the tenant API, the admin app and the fault layer: the
email-config path, the error shape, JSON answers and bodies, and the request class with its
body cap."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from werkzeug.wrappers import Request, Response

from .model import ApiErrorAnswer

MAX_BODY = 64 * 1024
# Below a tenant's base URL, exactly as on Qlik.
EMAIL_CONFIG = "/api/v1/transports/email-config"

_STATUS_TITLES = {
    400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
    405: "Method not allowed", 409: "Conflict", 410: "Gone", 413: "Request body too large",
    415: "Unsupported media type", 429: "API rate limit reached.",
    500: "Internal server error", 502: "Bad gateway", 503: "Service unavailable",
    504: "Gateway timeout",
}


class CappedRequest(Request):
    max_content_length = MAX_BODY


def qlik_error(status: int, code: str | None = None, title: str | None = None,
               headers: Mapping[str, str] | None = None, detail: str | None = None) -> Response:
    """Qlik's error body: ``{"errors":[{"code","title"}]}`` (the ``ErrorsPublic`` schema of
    qlik.dev/apis/rest/transports; docs/emulator.md, "What it does like Qlik")."""
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


def no_content() -> Response:
    response = Response(status=204)
    del response.headers["Content-Type"]  # no body, so no type
    return response


def raw_body(request: Request) -> bytes:
    """The body, refused with 413 over :data:`MAX_BODY`."""
    raw = request.get_data(cache=True)  # raises RequestEntityTooLarge over MAX_BODY
    if len(raw) >= MAX_BODY:
        # A chunked body is cut at the cap instead of raising: treat reaching it as too big.
        raise ApiErrorAnswer(413, "HTTP-413", "Request body too large")
    return raw


def json_body(request: Request) -> Any:
    raw = raw_body(request)
    if not raw.strip():
        raise ApiErrorAnswer(400, "INPUTCHECK-1", "Request body is required (JSON)")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: "[[[[...", nested deeper than the parser goes.
        raise ApiErrorAnswer(400, "INPUTCHECK-1", "Request body is not valid JSON") from None
