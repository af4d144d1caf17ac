"""The OAuth token request (RFC 6749 §4.4, client credentials) in the forms clients send.

Qlik's own clients send a JSON body (https://qlik.dev/authenticate/oauth/getting-started-oauth-m2m/).
RFC 6749 clients (requests-oauthlib, Authlib, curl) send a form-encoded body (§4.4.2) and
often authenticate with HTTP Basic (``client_secret_basic``, §2.3.1). All three become one
parameter dict for :meth:`~.model.Backend.issue_token`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from werkzeug.wrappers import Request

from .model import ApiErrorAnswer
from .wire import json_body, raw_body

FORM = "application/x-www-form-urlencoded"


def _refused(title: str) -> ApiErrorAnswer:
    return ApiErrorAnswer(400, "OAUTH-1", title)


def token_params(request: Request) -> tuple[dict[str, Any], bool]:
    """The request's parameters, and whether the client authenticated with HTTP Basic."""
    if request.mimetype == FORM:
        params: Any = _form(request)
    else:
        # [I] Qlik documents JSON; any type other than a form is read as JSON, as before.
        params = json_body(request)
        if not isinstance(params, dict):
            raise _refused("Body must be a JSON object (or a form-encoded body) with "
                           "grant_type, client_id and client_secret")
    basic = _basic_credentials(request)
    if basic is None:
        return params, False
    client_id, client_secret = basic
    if "client_secret" in params:
        raise _refused("Authenticate one way only: HTTP Basic or client_secret in the body, "
                       "not both (RFC 6749 §2.3)")
    if params.get("client_id", client_id) != client_id:
        raise _refused("client_id in the body is not the one in the HTTP Basic header")
    return {**params, "client_id": client_id, "client_secret": client_secret}, True


def _form(request: Request) -> dict[str, str]:
    try:
        pairs = parse_qsl(raw_body(request).decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise _refused("Form body is not valid UTF-8 application/x-www-form-urlencoded "
                       "text") from None
    names = [name for name, _ in pairs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise _refused(f"{', '.join(repeated)} given more than once: send each parameter "
                       "once (RFC 6749 §3.2)")
    return dict(pairs)


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        decoded = ""
    raw_id, colon, raw_secret = decoded.partition(":")
    if not colon:
        raise _refused("The Authorization header is not valid HTTP Basic: send "
                       "'Basic ' + base64(client_id + ':' + client_secret)")
    # RFC 6749 §2.3.1: each part is form-urlencoded before they are joined. Generated
    # client ids and secrets are URL-safe, so clients that skip this step work too.
    return unquote_plus(raw_id), unquote_plus(raw_secret)
