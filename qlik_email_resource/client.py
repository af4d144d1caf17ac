"""HTTP client for one Qlik tenant's Transports API.

Transport concerns live here and nowhere else: one ``requests.Session`` per
tenant, authentication (API key or OAuth2 client credentials), bounded retries
with backoff, jitter and ``Retry-After`` (urllib3's ``Retry``), timeouts, TLS
verification with an optional CA bundle, and the mapping of failures onto
``errors.py``. Nothing secret is ever logged, put in a message or shown by ``repr``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from qlik_email_resource import __version__
from qlik_email_resource.errors import (
    QlikAuthenticationError,
    QlikConnectionError,
    QlikError,
    QlikRateLimitedError,
    QlikTimeoutError,
    QlikTLSError,
    QlikUnavailableError,
    error_for_status,
)
from qlik_email_resource.settings import Settings

log = logging.getLogger("qlik_email_resource.client")

EMAIL_CONFIG = "api/v1/transports/email-config"
TOKEN_PATH = "oauth/token"
USER_AGENT = f"qlik-email-resource/{__version__}"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Renew an OAuth token this many seconds before Qlik says it expires.
TOKEN_MARGIN = 30.0
# Where a request body carries a secret (PUT bodies, JSON-Patch values, the token POST).
_SECRET_FIELDS = frozenset({"emailPassword", "clientSecret", "client_secret"})
_SECRET_PATCH_PATHS = frozenset({"/emailPassword", "/clientSecret"})

_warned_deprecations: set[tuple[str, str]] = set()
_warn_lock = threading.Lock()


def _retry(settings: Settings) -> Retry:
    policy = settings.retry
    return Retry(
        total=policy.max_retries,
        connect=policy.max_retries,
        read=policy.max_retries,
        status=policy.max_retries,
        # TLS failures and the like do not heal on retry: fail at once.
        other=0,
        # Every method is retried. GET is safe; PUT and DELETE are idempotent by
        # definition; our PATCH only sends `replace`/`remove` ops with absolute
        # values, so applying it twice leaves the same state; DELETE's 404 after a
        # retried success is read as "gone"; the token POST just issues another
        # token; verify-connection has no effect. send-test-email may deliver a
        # second test message, which is harmless.
        allowed_methods=None,
        status_forcelist=RETRY_STATUSES,
        backoff_factor=policy.backoff_factor,
        backoff_max=policy.backoff_max,
        backoff_jitter=policy.backoff_factor,
        respect_retry_after_header=True,
        retry_after_max=int(policy.retry_after_max),
        # Hand back the last 429/5xx answer so we can raise a typed error with
        # Qlik's code, instead of urllib3's generic MaxRetryError.
        raise_on_status=False,
        raise_on_redirect=True,
    )


class QlikClient:
    """The Transports API of one tenant. Thread-safe for the provider's worker threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.base_url = settings.tenant_url.rstrip("/") + "/"
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=_retry(settings))
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        # Verification is always on. The CA bundle goes with every request: a
        # session-level `verify` would lose to REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE
        # from the environment. Proxies still come from the environment.
        self._verify: str | bool = settings.ca_bundle or True
        self._timeout = (settings.retry.connect_timeout, settings.retry.read_timeout)
        self._token: str | None = None
        self._token_expiry = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        tenant, auth = self.settings.tenant_url, self.settings.auth_kind
        return f"QlikClient(tenant_url={tenant!r}, auth={auth})"

    def close(self) -> None:
        self.session.close()

    def secrets(self) -> tuple[str | None, ...]:
        """The credentials this client sends (API key, OAuth client secret and token),
        for redacting them from text that a server sends back."""
        return (self.settings.api_key, self.settings.client_secret, self._token)

    # --- the Transports API ---------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        return self._json(self.request("GET", EMAIL_CONFIG, operation="read email config"))

    def put_config(self, body: Mapping[str, Any]) -> None:
        self.request("PUT", EMAIL_CONFIG, json=body, operation="write email config (PUT)")

    def patch_config(self, ops: list[dict[str, Any]]) -> None:
        log.debug("PATCH paths %s", [op["path"] for op in ops])
        self.request("PATCH", EMAIL_CONFIG, json=ops, operation="update email config (PATCH)")

    def delete_config(self) -> bool:
        """Delete the configuration; False when there was none.

        Only Qlik's own "no email config" 404 (``DELETE-1``) means gone: a 404 for
        an unknown tenant or path is a wrong tenant URL and must not drop state.
        """
        response = self.request(
            "DELETE", EMAIL_CONFIG, operation="delete email config", ok_statuses=(404,)
        )
        if response.status_code != 404:
            return True
        code = _first_error(response).get("code")
        if code in (None, "DELETE-1"):
            return False
        raise self._error(response, "delete email config")

    def verify_connection(self) -> dict[str, Any]:
        return self._json(
            self.request(
                "POST", f"{EMAIL_CONFIG}/actions/verify-connection", operation="verify connection"
            )
        )

    def send_test_email(self, recipient: str, subject: str, body: str) -> dict[str, Any]:
        payload = {"recipient": recipient, "subject": subject, "body": body}
        return self._json(
            self.request(
                "POST", f"{EMAIL_CONFIG}/actions/send-test-email", json=payload,
                operation="send test email",
            )
        )

    # --- transport ------------------------------------------------------------------

    def url(self, path: str) -> str:
        # Join below the tenant URL, keeping any path prefix it has (/t/demo/...).
        return self.base_url + path.lstrip("/")

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        operation: str | None = None,
        ok_statuses: tuple[int, ...] = (),
    ) -> requests.Response:
        """One API call with auth, retries and typed errors; returns a 2xx (or allowed) answer."""
        renewed = False
        while True:
            response = self._send(method, path, json=json, operation=operation)
            if response.status_code == 401 and self.settings.auth_kind == "oauth" and not renewed:
                # The token may have expired or been revoked early: renew once.
                log.debug("401 with an OAuth token: renewing the token once")
                self._drop_token()
                renewed = True
                continue
            break
        self._note_deprecation(method, path, response)
        if response.ok or response.status_code in ok_statuses:
            return response
        raise self._error(response, operation, sent=json)

    def _send(
        self, method: str, path: str, *, json: Any, operation: str | None
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {self._bearer()}"}
        started = time.monotonic()
        try:
            response = self.session.request(
                method, self.url(path), json=json, headers=headers, timeout=self._timeout,
                verify=self._verify,
            )
        except requests.RequestException as exc:
            raise self._transport_error(exc, operation) from None
        log.debug(
            "%s %s -> %s in %.0f ms",
            method, path, response.status_code, (time.monotonic() - started) * 1000,
        )
        return response

    def _bearer(self) -> str:
        if self.settings.api_key:
            return self.settings.api_key
        with self._lock:
            if self._token is None or time.monotonic() >= self._token_expiry:
                self._token, self._token_expiry = self._fetch_token()
            return self._token

    def _drop_token(self) -> None:
        with self._lock:
            self._token = None

    def _fetch_token(self) -> tuple[str, float]:
        body = {
            "client_id": self.settings.client_id,
            "client_secret": self.settings.client_secret,
            "grant_type": "client_credentials",
        }
        try:
            response = self.session.post(
                self.url(TOKEN_PATH), json=body, timeout=self._timeout, verify=self._verify
            )
        except requests.RequestException as exc:
            raise self._transport_error(exc, "get OAuth token") from None
        log.debug("POST %s -> %s", TOKEN_PATH, response.status_code)
        if response.status_code in (400, 401, 403):
            # Qlik's code and title, cleaned (one line, bounded, secrets redacted) as
            # for any other answer, under the message that names the OAuth settings.
            answer = error_for_status(
                response.status_code, _errors(response), secrets=self.secrets()
            )
            raise QlikAuthenticationError(
                "The tenant refused the OAuth client credentials",
                status=response.status_code,
                code=answer.code,
                title=answer.title,
                detail=answer.detail,
                operation="get OAuth token",
                fix=(
                    "Check qlik:clientId and qlik:clientSecret (or QLIK_CLIENT_ID / "
                    "QLIK_CLIENT_SECRET): the client must be an OAuth M2M client of this tenant"
                ),
            )
        if not response.ok:
            raise self._error(response, "get OAuth token")
        data = self._json(response)
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise QlikAuthenticationError(
                "The token endpoint answered without an access_token",
                operation="get OAuth token",
            )
        ttl = float(data.get("expires_in") or 3600)
        return token, time.monotonic() + max(ttl - TOKEN_MARGIN, ttl / 2)

    @staticmethod
    def _json(response: requests.Response) -> dict[str, Any]:
        if response.status_code == 204 or not response.content:
            return {}
        try:
            data = response.json()
        except ValueError:
            raise QlikUnavailableError(
                "The tenant answered with something that is not JSON",
                status=response.status_code,
                fix="Check that qlik:tenantUrl points at a Qlik Cloud tenant, not a login page "
                "or proxy",
            ) from None
        return data if isinstance(data, dict) else {"value": data}

    def _error(
        self, response: requests.Response, operation: str | None, *, sent: Any = None
    ) -> QlikError:
        # urllib3 keeps the retry history on the raw response: say how hard we tried.
        history = getattr(getattr(response.raw, "retries", None), "history", None) or ()
        # A tenant may echo what it was sent, escaped or not: our credentials and the
        # secrets of the request in hand never reach the message.
        return error_for_status(
            response.status_code, _errors(response), operation=operation, retries=len(history),
            secrets=(*self.secrets(), *_body_secrets(sent)),
        )

    def _transport_error(self, exc: requests.RequestException, operation: str | None) -> QlikError:
        # Messages are ours: urllib3's text names the URL, never headers, but a
        # proxy URL may hold user:password, so do not pass the original text on.
        reason = _root_cause(exc)
        name = type(reason).__name__
        if isinstance(exc, requests.exceptions.SSLError) or "SSL" in name:
            return QlikTLSError(
                f"TLS verification of {self.settings.tenant_url} failed ({_ssl_reason(reason)})",
                operation=operation,
            )
        if isinstance(exc, requests.exceptions.Timeout) or "Timeout" in name:
            return QlikTimeoutError(
                f"{self.settings.tenant_url} did not answer within "
                f"{self._timeout[0]:g}s (connect) / {self._timeout[1]:g}s (read), "
                f"after {self.settings.retry.max_retries} retries",
                operation=operation,
            )
        if isinstance(exc, requests.exceptions.RetryError):
            return QlikRateLimitedError(operation=operation)
        return QlikConnectionError(
            f"Could not reach {self.settings.tenant_url} ({name}), "
            f"after {self.settings.retry.max_retries} retries",
            operation=operation,
        )

    def _note_deprecation(self, method: str, path: str, response: requests.Response) -> None:
        deprecation = response.headers.get("Deprecation")
        sunset = response.headers.get("Sunset")
        if not deprecation and not sunset:
            return
        key = (method, path)
        with _warn_lock:
            if key in _warned_deprecations:
                return
            _warned_deprecations.add(key)
        log.warning(
            "Qlik marks %s /%s as deprecated (Deprecation: %s, Sunset: %s); "
            "set qlik:writeMethod=put to stop using it",
            method, path, deprecation or "-", sunset or "-",
        )


def _body_secrets(body: Any) -> list[str]:
    """The secret values in a request body (PUT body, JSON-Patch ops, token request)."""
    found: list[str] = []
    if isinstance(body, Mapping):
        for key, value in body.items():
            if key in _SECRET_FIELDS and isinstance(value, str):
                found.append(value)
            else:
                found += _body_secrets(value)
    elif isinstance(body, list):
        for item in body:
            if (
                isinstance(item, Mapping)
                and item.get("path") in _SECRET_PATCH_PATHS
                and isinstance(item.get("value"), str)
            ):
                found.append(item["value"])
            else:
                found += _body_secrets(item)
    return found


def _first_error(response: requests.Response) -> dict[str, Any]:
    errors = _errors(response)
    return errors[0] if errors else {}


def _errors(response: requests.Response) -> list[dict[str, Any]]:
    try:
        data = response.json()
    except ValueError:
        return []
    items = data.get("errors") if isinstance(data, dict) else None
    if isinstance(items, list):
        return [item for item in items if isinstance(item, dict)]
    return []


def _root_cause(exc: BaseException) -> BaseException:
    seen: set[int] = set()
    current: BaseException = exc
    while id(current) not in seen:
        seen.add(id(current))
        nxt = getattr(current, "reason", None) or current.__cause__ or current.__context__
        if nxt is None and current.args and isinstance(current.args[0], BaseException):
            nxt = current.args[0]
        if not isinstance(nxt, BaseException):
            break
        current = nxt
    return current


def _ssl_reason(reason: BaseException) -> str:
    text = str(reason)
    for marker in ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "hostname mismatch",
                   "self-signed certificate", "unable to get local issuer certificate"):
        if marker.lower() in text.lower():
            start = text.lower().index(marker.lower())
            return text[start:].split("(")[0].strip(" ,:;)]'\"")
    return type(reason).__name__
