"""The emulated Qlik tenants: credentials, the email config and its rules. No HTTP here.

Like moto's ``models.py``: the HTTP layer (``http.py``) turns requests into calls on
:class:`Backend` and turns :class:`ApiErrorAnswer` and the returned dicts into Qlik's wire
format. The SMTP side is reached through an injected :class:`SmtpGateway`, so the rules can
be tested with a fake gateway and run against the real bundled server in the emulator.

Facts come from Qlik's Transports API reference on qlik.dev
(https://qlik.dev/apis/rest/transports/, with its email-provider tutorial, OAuth and
rate-limiting pages); docs/emulator.md, "What it does like Qlik", summarises what the
emulator takes from them. Comments mark each fact: **[C]** confirmed (Qlik documents it),
**[I]** inferred (Qlik does not say; the choice made here is tolerant and the comment
says why).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import secrets
import string
import tempfile
import threading
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.headerregistry import Address
from pathlib import Path
from typing import Any, Literal, Protocol

from ..redaction import redact

SECURITY_TYPES = ("none", "StartTLS", "SSL/TLS")
SERVICE_PROVIDERS = ("BasicAuth", "Microsoft365")
PATCH_PATHS = (
    "/username",
    "/serverAddress",
    "/serverPort",
    "/securityType",
    "/emailAddress",
    "/emailPassword",
)
PATCH_OPS = ("replace", "add", "remove")

BASIC_FIELDS = ("serverAddress", "serverPort", "securityType", "username", "emailAddress",
                "senderName")
M365_FIELDS = ("clientId", "emailAddress", "providerTenantId")
# Write-only fields: stored, never returned (only ``passwordExists`` says one is there).
BASIC_SECRET = "emailPassword"
M365_SECRET = "clientSecret"

# SMTP reply codes that mean "your credentials are wrong" (RFC 4954): they count as an
# authentication failure; anything else (connection refused, TLS mismatch) does not.
AUTH_FAILURE_CODES = frozenset({530, 534, 535, 538})

_TENANT_ID_ALPHABET = string.ascii_letters + string.digits + "-_"


class ApiErrorAnswer(Exception):
    """An error answer the emulated API sends: HTTP status plus Qlik's ``{"code","title"}``.

    Raised by the model, turned into the wire answer by ``http.py``. Not the client's
    exception (that is ``qlik_email_resource.errors.QlikError``)."""

    def __init__(self, status: int, code: str, title: str,
                 headers: Mapping[str, str] | None = None):
        super().__init__(f"{status} {code}: {title}")
        self.status = status
        self.code = code
        self.title = title
        self.headers = dict(headers or {})


def input_error(title: str) -> ApiErrorAnswer:
    return ApiErrorAnswer(400, "INPUTCHECK-1", title)


class SmtpGateway(Protocol):
    """What the tenant does to an SMTP server; results are Qlik ``smtpResult`` dicts."""

    def verify(self, config: Mapping[str, Any]) -> dict[str, Any]: ...

    def send(self, config: Mapping[str, Any], *, recipient: str, subject: str,
             body: str) -> dict[str, Any]: ...


def now_iso() -> str:
    """Qlik's timestamp shape: ``2023-07-25T21:16:38.271Z``."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Principal:
    """Who is calling: the rate-limit key and the role."""

    tenant: str
    user: str
    admin: bool


@dataclass
class EmailConfig:
    """The tenant's singleton email configuration, as stored (secrets included)."""

    service_provider: str
    fields: dict[str, Any]
    secret: str | None = field(repr=False)
    id: str = field(default_factory=lambda: secrets.token_hex(12))
    modification_time: str = field(default_factory=now_iso)
    auth_failures: int = 0
    last_error: str | None = None  # "INVALID_CREDENTIALS" / "PROVIDER_ERROR" after a check

    def missing(self) -> list[str]:
        """Fields a working config still needs (drives ``INCOMPLETE_CONFIG``)."""
        if self.service_provider == "Microsoft365":
            needed = [*M365_FIELDS, M365_SECRET]
        else:
            needed = ["serverAddress", "serverPort", "securityType", "emailAddress"]
            # [I] SMTP without AUTH is legal: username and password come as a pair.
            if self.fields.get("username") or self.secret:
                needed += ["username", BASIC_SECRET]
        present = {k for k, v in self.fields.items() if v not in (None, "")}
        if self.secret:
            present.add(BASIC_SECRET if self.service_provider == "BasicAuth" else M365_SECRET)
        return [n for n in needed if n not in present]

    def error_code(self) -> str:
        if self.missing():
            return "INCOMPLETE_CONFIG"
        return self.last_error or "OK"

    def smtp_view(self) -> dict[str, Any]:
        """What the SMTP gateway needs, secret included (never goes over HTTP)."""
        view = dict(self.fields)
        view["serviceProvider"] = self.service_provider
        view["password"] = self.secret
        return view

    def to_json(self) -> dict[str, Any]:
        return {
            "serviceProvider": self.service_provider, "fields": self.fields,
            "secret": self.secret, "id": self.id, "modificationTime": self.modification_time,
            "authFailures": self.auth_failures, "lastError": self.last_error,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EmailConfig:
        return cls(
            service_provider=data["serviceProvider"], fields=dict(data["fields"]),
            secret=data.get("secret"), id=data["id"],
            modification_time=data["modificationTime"],
            auth_failures=int(data.get("authFailures", 0)), last_error=data.get("lastError"),
        )


@dataclass
class Tenant:
    name: str
    tenant_id: str
    api_key: str
    viewer_api_key: str
    client_id: str
    client_secret: str
    config: EmailConfig | None = None
    token_ttl: float | None = None
    # access token -> expiry (monotonic clock is wrong across restarts; tokens are not
    # persisted, so monotonic is fine and immune to wall-clock jumps)
    tokens: dict[str, float] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def __repr__(self) -> str:  # never show a credential
        return f"Tenant(name={self.name!r}, tenant_id={self.tenant_id!r})"

    def credentials(self) -> dict[str, str]:
        return {
            "tenant_id": self.tenant_id, "api_key": self.api_key,
            "viewer_api_key": self.viewer_api_key, "client_id": self.client_id,
            "client_secret": self.client_secret,
        }

    @classmethod
    def create(cls, name: str) -> Tenant:
        tenant_id = "".join(secrets.choice(_TENANT_ID_ALPHABET) for _ in range(32))
        return cls(
            name=name, tenant_id=tenant_id,
            api_key="qlikemu_" + secrets.token_urlsafe(32),
            viewer_api_key="qlikemu_viewer_" + secrets.token_urlsafe(32),
            client_id=secrets.token_hex(16),
            client_secret="qlikemu_secret_" + secrets.token_urlsafe(32),
        )


def _check_string(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise input_error(f"{where} is not a string")
    return value


def _check_port(where: str, value: Any) -> int:
    """``serverPort`` is a JSON number; the tutorial sends a number, older clients a
    numeric string ([C] the PATCH schema says string), so both are accepted."""
    if isinstance(value, bool):
        raise input_error(f"{where} is not a number")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise input_error(f"{where} is not a number (got {type(value).__name__})")
    if not 1 <= value <= 65535:
        raise input_error(f"{where} must be between 1 and 65535 (got {value})")
    return value


def _check_security(where: str, value: Any) -> str:
    _check_string(where, value)
    if value not in SECURITY_TYPES:
        raise input_error(
            f"{where} must be one of none, StartTLS, SSL/TLS (case-sensitive), got {value!r}"
        )
    return str(value)


def _check_server_address(where: str, value: Any) -> str:
    """The spec: "domain name or IP address of SMTP server"; an empty one names nothing."""
    text = _check_string(where, value)
    if not text.strip():
        raise input_error(f"{where} must not be empty: give the SMTP server's host name or "
                          "IP address")
    if any(c.isspace() or unicodedata.category(c) == "Cc" for c in text):
        raise input_error(f"{where} contains a space or control character: give a bare host "
                          "name or IP address")
    return text


def _check_email_address(where: str, value: Any) -> str:
    """The spec: "The email address that should appear in From field". Parsed with the
    email package that later builds that header, so what is stored can be sent."""
    text = _check_string(where, value)
    try:
        parsed = Address(addr_spec=text)
    except Exception:  # the email package raises several unrelated types here
        parsed = None
    if parsed is None or not parsed.username or not parsed.domain:
        raise input_error(f"{where} is not an email address: give a bare address such as "
                          "noreply@example.com (no display name, one address)")
    return text


def _check_sender_name(where: str, value: Any) -> str:
    """A display name for the From header: a control character (CR/LF above all) would let
    it write other headers."""
    text = _check_string(where, value)
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise input_error(f"{where} contains a control character (line break, tab, NUL...): "
                          "use a one-line name")
    return text


_FIELD_CHECKS = {
    "serverPort": _check_port,
    "securityType": _check_security,
    "serverAddress": _check_server_address,
    "emailAddress": _check_email_address,
    "senderName": _check_sender_name,
}


def _clean_field(where: str, name: str, value: Any) -> Any:
    return _FIELD_CHECKS.get(name, _check_string)(where, value)


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison; bytes, because compare_digest refuses non-ASCII str (a
    header of "Bearer ü" must be a 401, not a TypeError)."""
    return secrets.compare_digest(given.encode("utf-8", "surrogatepass"),
                                  expected.encode("utf-8", "surrogatepass"))


def is_auth_failure(result: Mapping[str, Any]) -> bool:
    return (not result.get("success")) and not result.get("connectionFailed") and (
        result.get("smtpResponseCode") in AUTH_FAILURE_CODES
    )


class Backend:
    """All tenants of one emulator. Thread-safe: one lock per tenant, SMTP outside it."""

    def __init__(self, gateway: SmtpGateway | None = None, token_ttl: float = 3600.0,
                 state_file: str | os.PathLike[str] | None = None):
        self.gateway = gateway
        self.token_ttl = token_ttl
        self.state_file = Path(state_file) if state_file else None
        self._tenants: dict[str, Tenant] = {}
        self._lock = threading.RLock()
        self.extra_state: dict[str, Any] = {}  # persisted alongside (e.g. SMTP users)
        if self.state_file and self.state_file.exists():
            self._load()

    # ---- tenants and credentials -------------------------------------------------------

    def add_tenant(self, name: str) -> Tenant:
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            raise ValueError(f"tenant name {name!r}: use letters, digits, '-' or '_'")
        with self._lock:
            if name not in self._tenants:
                self._tenants[name] = Tenant.create(name)
                self.save()
            return self._tenants[name]

    def tenant(self, name: str) -> Tenant | None:
        with self._lock:
            return self._tenants.get(name)

    def tenants(self) -> list[Tenant]:
        with self._lock:
            return list(self._tenants.values())

    def authenticate(self, tenant: Tenant, bearer: str | None) -> Principal | None:
        """The caller behind a Bearer token at this tenant's URL, or None (401).

        A token of another tenant is unknown here, as it would be on Qlik."""
        if not bearer:
            return None
        if same_secret(bearer, tenant.api_key):
            return Principal(tenant.name, "apikey-admin", admin=True)
        if same_secret(bearer, tenant.viewer_api_key):
            return Principal(tenant.name, "apikey-viewer", admin=False)
        with tenant.lock:
            expiry = tenant.tokens.get(bearer)
            if expiry is None:
                return None
            if expiry <= time.monotonic():
                del tenant.tokens[bearer]
                return None
        # M2M OAuth clients have the Tenant Admin role (qlik.dev getting-started-oauth-m2m).
        return Principal(tenant.name, "oauth-" + tenant.client_id, admin=True)

    def issue_token(self, tenant: Tenant, body: Any) -> dict[str, Any]:
        """``POST /oauth/token``, client credentials (qlik.dev, getting-started-oauth-m2m):
        ``body`` holds the request's parameters, however they came (JSON, form, HTTP Basic:
        see oauth.py)."""
        self.authenticate_client(tenant, body)
        return self.mint_token(tenant, body.get("scope"))

    def authenticate_client(self, tenant: Tenant, body: Any) -> str:
        """The client id of a valid client-credentials request; else ApiErrorAnswer 400/401."""
        if not isinstance(body, dict):
            raise ApiErrorAnswer(400, "OAUTH-1", "Body must be a JSON object with "
                                 "client_id, client_secret and grant_type")
        grant = body.get("grant_type")
        if grant != "client_credentials":
            raise ApiErrorAnswer(400, "OAUTH-1", f"Unsupported grant_type {grant!r}: "
                                 "the emulator issues client_credentials tokens only")
        client_id, client_secret = body.get("client_id"), body.get("client_secret")
        if not (isinstance(client_id, str) and isinstance(client_secret, str)
                and same_secret(client_id, tenant.client_id)
                and same_secret(client_secret, tenant.client_secret)):
            raise ApiErrorAnswer(401, "OAUTH-1", "Invalid client credentials")
        return client_id

    def mint_token(self, tenant: Tenant, scope: Any = None) -> dict[str, Any]:
        ttl = tenant.token_ttl if tenant.token_ttl is not None else self.token_ttl
        token = "qlikemu_at_" + secrets.token_urlsafe(32)
        with tenant.lock:
            now = time.monotonic()
            # forget expired tokens so a long benchmark does not grow the dict forever
            for old in [t for t, exp in tenant.tokens.items() if exp <= now]:
                del tenant.tokens[old]
            tenant.tokens[token] = now + ttl
        return {"access_token": token, "token_type": "bearer", "expires_in": int(ttl),
                "scope": scope if isinstance(scope, str) and scope else "user_default"}

    def expire_tokens(self, tenant: Tenant) -> None:
        with tenant.lock:
            tenant.tokens.clear()

    # ---- email config: reads ------------------------------------------------------------

    def get_config(self, tenant: Tenant) -> dict[str, Any]:
        with tenant.lock:
            cfg = tenant.config
            if cfg is None:
                # The spec documents {isValid:false, passwordExists:false}; the errorCode is a
                # documented value and helps clients ([I]; the getEmailConfig schema on
                # qlik.dev/apis/rest/transports).
                return {"isValid": False, "passwordExists": False,
                        "errorCode": "CONFIG_NOT_SET", "tenantId": tenant.tenant_id}
            return self._render(tenant, cfg)

    @staticmethod
    def _render(tenant: Tenant, cfg: EmailConfig) -> dict[str, Any]:
        error_code = cfg.error_code()
        valid = error_code == "OK"
        provider_config = {k: v for k, v in cfg.fields.items() if v is not None}
        out: dict[str, Any] = {"_id": cfg.id, "serviceProvider": cfg.service_provider}
        if cfg.service_provider == "BasicAuth":
            # The flat fields are the pre-2024 shape that the tutorial still shows.
            for name in ("serverAddress", "serverPort", "securityType", "emailAddress",
                         "username", "senderName"):
                if cfg.fields.get(name) is not None:
                    out[name] = cfg.fields[name]
        out.update({
            "providerConfig": provider_config,
            "modificationTime": cfg.modification_time,
            "lastUpdated": cfg.modification_time,
            "tenantId": tenant.tenant_id,
            "isValid": valid,
            "errorCode": error_code,
            "authFailures": cfg.auth_failures,
            # [I] Only statusCode 0 = "OK" is documented; other codes are our own.
            "status": {"statusCode": 0 if valid else 1,
                       "statusReason": "OK" if valid else error_code},
            "passwordExists": bool(cfg.secret),
        })
        return out

    def validate(self, tenant: Tenant) -> dict[str, Any]:
        with tenant.lock:
            if tenant.config is None:
                return {"isValid": False, "errorCode": "CONFIG_NOT_SET"}
            code = tenant.config.error_code()
            return {"isValid": code == "OK", "errorCode": code}

    # ---- email config: writes -----------------------------------------------------------

    def put_config(self, tenant: Tenant, body: Any) -> None:
        """Create or replace; verify first (BasicAuth: SMTP handshake + AUTH)."""
        if not isinstance(body, dict):
            raise input_error("body must be a JSON object with serviceProvider and "
                              "providerConfig")
        provider = body.get("serviceProvider", "BasicAuth")  # [I] tolerant default
        if provider not in SERVICE_PROVIDERS:
            raise input_error(f"serviceProvider must be BasicAuth or Microsoft365, "
                              f"got {provider!r}")
        for key in body:
            if key not in ("serviceProvider", "providerConfig"):
                raise input_error(f"{key} is not a known field: send serviceProvider and "
                                  "providerConfig")
        pc = body.get("providerConfig")
        if not isinstance(pc, dict):
            raise input_error("providerConfig is required and must be an object")
        allowed = (*BASIC_FIELDS, BASIC_SECRET) if provider == "BasicAuth" else (
            *M365_FIELDS, M365_SECRET)
        fields: dict[str, Any] = {}
        for key, value in pc.items():
            if key not in allowed:
                raise input_error(f"providerConfig.{key} is not a {provider} field "
                                  f"(allowed: {', '.join(allowed)})")
            if value is None:
                continue
            fields[key] = _clean_field(f"providerConfig.{key}", key, value)
        secret_name = BASIC_SECRET if provider == "BasicAuth" else M365_SECRET
        secret = fields.pop(secret_name, None)
        with tenant.lock:
            old = tenant.config
            if secret is None and old is not None and old.service_provider == provider:
                # [I] Unknown whether Qlik keeps the stored password on a PUT without one.
                # Tolerant choice: keep it (the console behaves the same when the password
                # box is left empty); send the secret to change it.
                secret = old.secret
        candidate = EmailConfig(service_provider=provider, fields=fields, secret=secret)
        missing = candidate.missing()
        if missing:
            raise input_error(f"providerConfig is incomplete: missing {', '.join(missing)}")

        if provider == "BasicAuth":
            result = self._gateway().verify(candidate.smtp_view())
            if not result.get("success"):
                self._record_check(tenant, result, "put")
                message = redact(str(result.get("message") or "unknown error"), [secret])
                raise input_error(f"SMTP connection verification failed: {message}")
        else:
            # Microsoft365: the token request to Microsoft is SIMULATED. A well-formed config
            # is accepted; a clientSecret starting with "invalid" plays a rejected secret so
            # the failure path can be tested.
            if (secret or "").startswith("invalid"):
                raise input_error("Microsoft365 token request failed: invalid_client "
                                  "(simulated by the emulator)")

        with tenant.lock:
            old = tenant.config
            if old is not None:
                candidate.id = old.id  # singleton: same document, replaced
            tenant.config = candidate
        self.save()

    def patch_config(self, tenant: Tenant, ops: Any) -> None:
        """Deprecated JSON-Patch on the 6 BasicAuth paths; no SMTP verification."""
        if not isinstance(ops, list):
            raise input_error("body must be a JSON array of patch operations")
        changes: list[tuple[str, str, Any]] = []
        for i, op in enumerate(ops):
            where = f"patch[{i}]"
            if not isinstance(op, dict):
                raise input_error(f"{where} is not an object")
            kind, path = op.get("op"), op.get("path")
            if kind not in PATCH_OPS:
                raise input_error(f"{where}.op must be replace, add or remove, got {kind!r}")
            if path not in PATCH_PATHS:
                raise input_error(f"{where}.path {path!r} cannot be patched "
                                  f"(allowed: {', '.join(PATCH_PATHS)})")
            name = str(path)[1:]
            if kind == "remove":
                changes.append(("remove", name, None))
                continue
            if "value" not in op:
                raise input_error(f"{where}.value is required for {kind}")
            changes.append(("set", name, _clean_field(f"{where} value for {path}", name,
                                                      op["value"])))
        with tenant.lock:
            old = tenant.config
            if old is not None and old.service_provider != "BasicAuth":
                raise input_error("PATCH applies to BasicAuth configs only; use PUT to "
                                  "replace a Microsoft365 config")
            cfg = copy.deepcopy(old) if old else EmailConfig("BasicAuth", {}, None)
            for action, name, value in changes:
                if name == BASIC_SECRET:
                    cfg.secret = value if action == "set" else None
                elif action == "set":
                    cfg.fields[name] = value
                else:
                    cfg.fields.pop(name, None)
            if changes:
                # [I] New values are untested: the failure count starts again.
                cfg.modification_time = now_iso()
                cfg.auth_failures = 0
                cfg.last_error = None
            tenant.config = cfg
        self.save()

    def set_config(self, tenant: Tenant, data: Mapping[str, Any]) -> None:
        """Out-of-band change (as if made in the console): PUT rules, no SMTP check.

        Accepts a PUT body, or a flat/nested BasicAuth ``providerConfig``."""
        body = dict(data)
        if "providerConfig" not in body:
            provider = body.pop("serviceProvider", "BasicAuth")
            body = {"serviceProvider": provider, "providerConfig": body}
        provider = body.get("serviceProvider", "BasicAuth")
        pc = dict(body["providerConfig"])
        fields = {k: _clean_field(k, k, v) for k, v in pc.items()
                  if k not in (BASIC_SECRET, M365_SECRET) and v is not None}
        secret = pc.get(BASIC_SECRET if provider == "BasicAuth" else M365_SECRET)
        with tenant.lock:
            old = tenant.config
            cfg = EmailConfig(provider, fields, secret)
            if old is not None:
                cfg.id = old.id
            tenant.config = cfg
        self.save()

    def delete_config(self, tenant: Tenant) -> None:
        with tenant.lock:
            if tenant.config is None:
                raise ApiErrorAnswer(404, "DELETE-1", "No email config for tenant")
            tenant.config = None
        self.save()

    # ---- email config: actions ----------------------------------------------------------

    def verify_connection(self, tenant: Tenant) -> dict[str, Any]:
        cfg = self._snapshot(tenant, "VERIFYCONNECTION-1")
        if cfg.missing():
            return _incomplete(cfg)
        if cfg.service_provider == "Microsoft365":
            # SIMULATED: no Microsoft token endpoint is contacted.
            return {"success": True, "connectionFailed": False,
                    "message": "Microsoft365 token retrieved (simulated)",
                    "smtpResponseCode": 250}
        result = self._gateway().verify(cfg.smtp_view())
        self._record_check(tenant, result, "verify")
        return _scrubbed(result, cfg.secret)

    def send_test_email(self, tenant: Tenant, body: Any) -> dict[str, Any]:
        cfg = self._snapshot(tenant, "SENDTESTEMAIL-1")
        if not isinstance(body, dict):
            raise input_error("body must be a JSON object with recipient, subject and body")
        for key in ("recipient", "subject", "body"):
            if key in body and not isinstance(body[key], str):
                raise input_error(f"{key} is not a string")
        recipient = body.get("recipient")
        if not recipient:
            raise input_error("recipient is required")
        if cfg.missing():
            return _incomplete(cfg)
        result = self._gateway().send(
            cfg.smtp_view(), recipient=str(recipient), subject=str(body.get("subject", "")),
            body=str(body.get("body", "")),
        )
        self._record_check(tenant, result, "send")
        return _scrubbed(result, cfg.secret)

    def _snapshot(self, tenant: Tenant, not_found_code: str) -> EmailConfig:
        with tenant.lock:
            if tenant.config is None:
                raise ApiErrorAnswer(404, not_found_code, "No email config for tenant")
            return copy.deepcopy(tenant.config)

    def _record_check(self, tenant: Tenant, result: Mapping[str, Any],
                      action: Literal["put", "verify", "send"]) -> None:
        """Move authFailures/errorCode the way a real tenant would after an SMTP check.

        [I] Undocumented beyond the errorCode values: a failed AUTH counts one failure and
        marks INVALID_CREDENTIALS; any other failed verify-connection (and a send that
        cannot reach the server) marks PROVIDER_ERROR, so isValid is false after a failed
        check; a success resets both. A refused recipient says nothing about the config.
        A failed PUT is not stored: only a failed AUTH is counted on the stored config."""
        provider_error = (action == "verify" and not result.get("success")) or (
            action == "send" and bool(result.get("connectionFailed")))
        with tenant.lock:
            cfg = tenant.config
            if cfg is None:
                return
            if is_auth_failure(result):
                cfg.auth_failures += 1
                cfg.last_error = "INVALID_CREDENTIALS"
            elif result.get("success") and action != "put":
                cfg.auth_failures = 0
                cfg.last_error = None
            elif provider_error:
                cfg.last_error = "PROVIDER_ERROR"
            else:
                return
        self.save()

    def _gateway(self) -> SmtpGateway:
        if self.gateway is None:
            raise ApiErrorAnswer(500, "HTTP-500", "The emulator has no SMTP gateway configured")
        return self.gateway

    # ---- housekeeping ---------------------------------------------------------------------

    def reset(self) -> None:
        """Forget configs and tokens; keep tenants and their credentials."""
        for tenant in self.tenants():
            with tenant.lock:
                tenant.config = None
                tenant.tokens.clear()
                tenant.token_ttl = None
        self.save()

    def save(self) -> None:
        """Write the state file atomically (temp file + rename), mode 0600: it holds keys
        and SMTP passwords."""
        if self.state_file is None:
            return
        with self._lock:
            tenants: dict[str, Any] = {}
            data = {"version": 1, "extra": self.extra_state, "tenants": tenants}
            for t in self._tenants.values():
                with t.lock:
                    tenants[t.name] = {
                        **t.credentials(),
                        "config": t.config.to_json() if t.config else None,
                    }
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".state-", dir=self.state_file.parent)
            try:
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(data, fh, indent=1, sort_keys=True)
                os.replace(tmp, self.state_file)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def _load(self) -> None:
        assert self.state_file is not None
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
            self.extra_state = dict(data.get("extra") or {})
            for name, t in (data.get("tenants") or {}).items():
                tenant = Tenant(
                    name=name, tenant_id=t["tenant_id"], api_key=t["api_key"],
                    viewer_api_key=t["viewer_api_key"], client_id=t["client_id"],
                    client_secret=t["client_secret"],
                    config=EmailConfig.from_json(t["config"]) if t.get("config") else None,
                )
                self._tenants[name] = tenant
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"cannot read emulator state file {self.state_file}: {type(exc).__name__}; "
                "delete it to start with fresh tenants"
            ) from None


def _incomplete(cfg: EmailConfig) -> dict[str, Any]:
    return {"success": False, "connectionFailed": False,
            "message": f"Email configuration is incomplete: missing {', '.join(cfg.missing())}",
            "smtpResponseCode": 0}


def _scrubbed(result: Mapping[str, Any], *secret_values: str | None) -> dict[str, Any]:
    out = dict(result)
    if isinstance(out.get("message"), str):
        out["message"] = redact(out["message"], secret_values)
    return out
