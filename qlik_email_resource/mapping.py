"""Desired state ↔ Qlik's wire format. Pure functions, no I/O.

* ``FIELDS`` is the one table of the resource's inputs; every list of names below
  is derived from it;
* ``normalize`` validates and normalises what the user declared (all problems at
  once, each naming the property and the fix);
* ``expand_put`` / ``expand_patch`` turn desired state into a PUT body or the
  minimal JSON-Patch;
* ``flatten`` turns a GET answer into outputs;
* ``diff`` compares old state with new inputs.

Python names (``server_port``) are the resource's; camelCase (``serverPort``) is Qlik's.
In comments, [I] marks a fact about Qlik's API that Qlik does not document (inferred;
the code is tolerant there), [C] one it does (confirmed).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from qlik_email_resource import secret_wire
from qlik_email_resource.tenant_url import normalize_tenant_url, tenant_url_problem

BASIC_AUTH = "BasicAuth"
MICROSOFT_365 = "Microsoft365"
SERVICE_PROVIDERS = (BASIC_AUTH, MICROSOFT_365)
SECURITY_TYPES = ("none", "StartTLS", "SSL/TLS")

_EMAIL = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;.]+$")
# [I] Qlik documents no rule for serverAddress. Labels are letters, digits and '-'
# (RFC 1123); '_' is tolerated because resolvers accept it and private relays use it.
_LABEL = re.compile(r"^[A-Za-z0-9_-]+$")
MAX_HOST_LENGTH = 253
MAX_LABEL_LENGTH = 63
_SECURITY_NEAR_MISSES = {
    "tls": None, "ssl": "SSL/TLS", "ssltls": "SSL/TLS", "ssl-tls": "SSL/TLS",
    "ssl_tls": "SSL/TLS", "implicit": "SSL/TLS", "implicittls": "SSL/TLS", "smtps": "SSL/TLS",
    "start-tls": "StartTLS", "start_tls": "StartTLS", "start tls": "StartTLS",
    "starttls": "StartTLS", "explicit": "StartTLS", "off": "none", "plain": "none",
    "false": "none", "no": "none", "": "none",
}


@dataclass(frozen=True)
class Problem:
    """One validation failure: the property and a reason that says the fix."""

    property: str
    reason: str


def _is_unknown(value: Any) -> bool:
    # pulumi.output.Unknown during preview; checked by name to keep this module pure.
    return type(value).__name__ == "Unknown"


def unwrap_secret(value: Any) -> Any:
    """The plain value of a Pulumi RPC secret wrapper (``{sig: secret, value: v}``)."""
    return secret_wire.unwrap(value)


def _suggest(name: str, choices: tuple[str, ...]) -> str:
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    if snake in choices:
        return f" Did you mean {snake!r}? (inputs use snake_case)"
    close = difflib.get_close_matches(snake, choices, n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


# --- numbers --------------------------------------------------------------------------------


def whole_number(value: Any) -> int | None:
    """``465``, ``465.0`` or ``" 465 "`` as 465; None for anything else.

    Numbers arrive as floats from protobuf (465.0) and as strings from config. Not
    numbers: booleans, 465.5, and non-ASCII digits: ``str.isdigit()`` is True for
    "²" (``int()`` raises) and for "٣" (``int()`` returns 3).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        return int(text) if text.isascii() and text.isdigit() else None
    return None


def struct_number(value: Any) -> Any:
    """A number as protobuf's Struct carried it (465.0) back as the int it was (465);
    anything else unchanged. Unlike ``_integral``, a string of digits stays a string,
    for callers that do not know which field a value belongs to."""
    return _integral(value) if isinstance(value, float) else value


def _integral(value: Any) -> Any:
    # State holds a port as protobuf's 465.0: compare and send it as 465. What is not a
    # whole number stays as it is, so that it still differs from every port.
    number = whole_number(value)
    return value if number is None else number


def parse_port(value: Any) -> int:
    """The SMTP port as an int, the one converter for every source (resource inputs,
    the fleet's tenants file): 465, 465.0 and "465" are 465.

    Raises ``ValueError`` whose text names ``server_port`` and the allowed range.
    """
    port = whole_number(value)
    if port is None:
        raise ValueError(f"server_port must be a whole number from 1 to 65535, got {value!r}.")
    if not 1 <= port <= 65535:
        raise ValueError(f"server_port {port} is out of range: use 1 to 65535 (e.g. 587 or 465).")
    return port


# --- the rules of single fields ----------------------------------------------------------------

# A field's own rule: (its name, its value, the other inputs so far) -> (the value to
# keep, why it is refused or None). A refused value is kept as given.
FieldCheck = Callable[[str, Any, Mapping[str, Any]], tuple[Any, str | None]]


def _control_character_problem(key: str, value: str) -> str | None:
    for index, char in enumerate(value):
        # Cc: C0 (CR, LF, NUL, TAB, ESC...), DEL and C1 (NEL...).
        if unicodedata.category(char) == "Cc":
            return (
                f"{key} contains a control character ({char!r} at position {index}): remove "
                "it (line breaks, NUL and other control characters would break the mail "
                "headers or SMTP commands it is sent in)."
            )
    return None


def host_problem(host: str) -> str | None:
    """Why ``host`` cannot be an SMTP server address, or None when it can."""
    fix = "use a host name such as smtp.example.com or an IP address"
    if "://" in host:
        return (f"server_address {host!r} must be a host name or IP only: drop the scheme "
                "(e.g. smtp.example.com).")
    if ":" in host or host.startswith("["):
        name, _, port = host.rpartition(":")
        if name and ":" not in name and port.isascii() and port.isdigit():
            return (f"server_address {host!r} includes a port: put {port} in server_port "
                    f"and {name!r} in server_address.")
        literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            return f"server_address {host!r} is not a valid IPv6 address: {fix}."
        return None
    name = host[:-1] if host.endswith(".") else host  # a trailing dot is a rooted name
    if len(name) > MAX_HOST_LENGTH:
        return (f"server_address is {len(name)} characters long, longer than "
                f"{MAX_HOST_LENGTH} (the DNS limit): use the server's real host name.")
    labels = name.split(".")
    for label in labels:
        if not label:
            return (f"server_address {host!r} has an empty label (two dots in a row, or a "
                    f"leading dot): {fix}.")
        if len(label) > MAX_LABEL_LENGTH:
            return (f"server_address has a label of {len(label)} characters ({label[:20]}...), "
                    f"longer than {MAX_LABEL_LENGTH} (the DNS limit): {fix}.")
        if not _LABEL.match(label):
            return (f"server_address {host!r}: label {label!r} may hold only letters, digits, "
                    f"'-' and '_' (write an international name in its xn-- form): {fix}.")
        if label.startswith("-") or label.endswith("-"):
            return (f"server_address {host!r}: label {label!r} starts or ends with a hyphen, "
                    f"which DNS does not allow: {fix}.")
    if labels[-1].isdigit():
        # A name's last label is never all digits, so this must be a dotted IPv4 address.
        try:
            ipaddress.IPv4Address(name)
        except ValueError:
            return (f"server_address {host!r} is not an IPv4 address (four numbers from 0 to "
                    f"255, no leading zeros) and not a host name: {fix}.")
    return None


def _check_service_provider(key: str, value: str, _: Mapping[str, Any]) -> tuple[Any, str | None]:
    match = {p.lower(): p for p in SERVICE_PROVIDERS}.get(
        value.strip().lower().replace(" ", "").replace("_", "")
    )
    if match is not None:
        return match, None
    if value.strip().lower() in ("m365", "o365", "office365", "azure"):
        return value, f"service_provider {value!r} is not valid: use 'Microsoft365'."
    return value, (f"service_provider {value!r} is not valid: use 'BasicAuth' (SMTP) or "
                   "'Microsoft365'.")


def _check_host(key: str, value: str, _: Mapping[str, Any]) -> tuple[Any, str | None]:
    return value, host_problem(value)


def _check_port(key: str, value: Any, _: Mapping[str, Any]) -> tuple[Any, str | None]:
    try:
        return parse_port(value), None
    except ValueError as exc:
        return value, str(exc)


def _security_problem(value: str, port: Any) -> str:
    key = value.strip().lower()
    guess = _SECURITY_NEAR_MISSES.get(key, "?")
    allowed = "one of 'none', 'StartTLS' or 'SSL/TLS' (exact spelling)"
    if guess is None or guess == "?":
        if port == 465:
            hint = " Port 465 means implicit TLS: use 'SSL/TLS'."
        elif port == 587:
            hint = " Port 587 means STARTTLS: use 'StartTLS'."
        elif guess is None:
            hint = (
                " Use 'SSL/TLS' for implicit TLS (usually port 465) or 'StartTLS' for "
                "STARTTLS (usually port 587)."
            )
        else:
            hint = ""
        return f"security_type {value!r} is not valid: use {allowed}.{hint}"
    return f"security_type {value!r} is not valid: use {guess!r} ({allowed})."


def _check_security(key: str, value: str, others: Mapping[str, Any]) -> tuple[Any, str | None]:
    canonical = {s.lower(): s for s in SECURITY_TYPES}.get(value.strip().lower())
    if canonical is not None:
        return canonical, None
    # The port, once it is a valid one, says which of the two TLS modes was meant.
    port = others.get("server_port") if isinstance(others.get("server_port"), int) else None
    return value, _security_problem(value, port)


def _check_email(key: str, value: str, _: Mapping[str, Any]) -> tuple[Any, str | None]:
    if _EMAIL.match(value):
        return value, None
    return value, f"{key} {value!r} is not an email address (expected name@example.com)."


def _check_password(key: str, value: str, _: Mapping[str, Any]) -> tuple[Any, str | None]:
    if "\0" not in value:
        return value, None
    # The value is never shown: the message names the character only.
    return value, ("email_password contains a NUL character, which SMTP AUTH PLAIN cannot "
                   "carry (RFC 4616): use a password without it.")


def _check_tenant_url(key: str, value: str, _: Mapping[str, Any]) -> tuple[Any, str | None]:
    why = tenant_url_problem(value)
    return (value, why) if why else (normalize_tenant_url(value), None)


def _check_bool(key: str, value: Any, _: Mapping[str, Any]) -> tuple[Any, str | None]:
    return value, None if isinstance(value, bool) else f"{key} must be true or false."


# --- the field table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One input of ``TenantEmailConfig``: every fact the provider needs about it."""

    name: str  # the resource's input name (snake_case)
    # Qlik's name in ``providerConfig`` (``serviceProvider`` sits beside it); None:
    # the input steers the provider and is never sent.
    qlik: str | None = None
    providers: tuple[str, ...] = ()  # the service providers whose providerConfig holds it
    kind: type = str  # str, int or bool
    required: bool = False  # by each of its service providers
    secret: bool = False  # always a Pulumi secret, never shown
    write_only: bool = False  # the API never returns it: it lives only in (secret) state
    patchable: bool = False  # the (deprecated) PATCH can set it; otherwise PUT only
    strip: bool = False  # leading and trailing blanks dropped
    # Text that ends up in mail headers or SMTP commands, where a CR/LF or NUL would
    # split or cut the line (header injection); tenant_url because urlsplit() silently
    # drops tabs and line breaks, so "https://t\n.eu.qlikcloud.com" would pass as valid.
    no_control_characters: bool = False
    check: FieldCheck | None = None  # the field's own rule, once its type is right
    default: Any = None  # what an unset value means

    @property
    def control(self) -> bool:
        """Whether the input steers the provider rather than the tenant's configuration
        (it has no Qlik name, so it is never sent)."""
        return self.qlik is None

    @property
    def patch_path(self) -> str | None:
        """Its path in the (deprecated) PATCH, ``/`` and its Qlik name; None: PUT only."""
        return f"/{self.qlik}" if self.patchable and self.qlik else None


_BASIC = (BASIC_AUTH,)
_BOTH = (BASIC_AUTH, MICROSOFT_365)
_M365 = (MICROSOFT_365,)

# The one table of the resource's inputs, after auth0's schema map. To add an API field:
#   1. mapping.py: one Field below (its place is its place in outputs and in the PUT
#      body), plus a check function above if it has a rule of its own;
#   2. resource.py: the typed attribute in TenantEmailConfigArgs and the output
#      annotation (written out for IDEs; tests/mapping/test_field_table.py fails until
#      they match the table);
#   3. docs/provider.md: a line in the inputs table, for users;
#   4. emulator/model.py: Qlik's name in its BASIC_FIELDS or M365_FIELDS (and in its
#      PATCH paths and checks if Qlik has them for the field). The emulator keeps
#      its own list of Qlik's fields on purpose: one derived from this table would
#      agree with the provider by construction and could catch none of its mistakes.
# Everything else follows: the name lists below, normalize, expand, flatten, diff,
# and the fleet's tenants-file keys. The repo program (__main__.py, Pulumi.yaml) and
# the demo set a field only if they should; the test checks the keys they use.
FIELDS: tuple[Field, ...] = (
    Field("service_provider", "serviceProvider", check=_check_service_provider,
          default=BASIC_AUTH),
    Field("server_address", "serverAddress", _BASIC, required=True, patchable=True,
          strip=True, no_control_characters=True, check=_check_host),
    Field("server_port", "serverPort", _BASIC, int, required=True, patchable=True,
          check=_check_port),
    Field("security_type", "securityType", _BASIC, required=True, patchable=True,
          check=_check_security),
    Field("username", "username", _BASIC, patchable=True, strip=True,
          no_control_characters=True),
    Field("email_address", "emailAddress", _BOTH, required=True, patchable=True,
          strip=True, no_control_characters=True, check=_check_email),
    Field("email_password", "emailPassword", _BASIC, secret=True, write_only=True,
          patchable=True, check=_check_password),
    Field("sender_name", "senderName", _BASIC, no_control_characters=True),
    Field("client_id", "clientId", _M365, required=True, strip=True,
          no_control_characters=True),
    Field("client_secret", "clientSecret", _M365, required=True, secret=True, write_only=True),
    Field("provider_tenant_id", "providerTenantId", _M365, required=True, strip=True,
          no_control_characters=True),
    # Control inputs: no Qlik name, so they steer the provider and are never sent.
    Field("tenant_url", strip=True, no_control_characters=True, check=_check_tenant_url),
    Field("api_key", secret=True),
    Field("verify_connection", kind=bool, check=_check_bool),
    Field("test_email_recipient", strip=True, no_control_characters=True, check=_check_email),
)
FIELD_BY_NAME = {f.name: f for f in FIELDS}


def provider_fields(provider: str) -> dict[str, str]:
    """Python input name -> Qlik field name, for one service provider's providerConfig."""
    return {f.name: f.qlik for f in FIELDS if provider in f.providers and f.qlik}


# Derived from FIELDS, under the names the rest of the package imports.
BASIC_FIELDS = provider_fields(BASIC_AUTH)
M365_FIELDS = provider_fields(MICROSOFT_365)
API_FIELDS = tuple(f.name for f in FIELDS if not f.control)
# The API never returns these; they live only in (secret) state.
WRITE_ONLY = tuple(f.name for f in FIELDS if f.write_only)
SECRET_INPUTS = tuple(f.name for f in FIELDS if f.secret)
# Inputs that steer the provider rather than the tenant's configuration.
CONTROL_INPUTS = tuple(f.name for f in FIELDS if f.control)
INPUTS = tuple(f.name for f in FIELDS)
# Read-only facts the API reports.
STATUS_OUTPUTS = (
    "tenant_id", "is_valid", "error_code", "auth_failures", "status_code",
    "status_reason", "password_exists", "modification_time",
)
OUTPUTS = (*INPUTS, *STATUS_OUTPUTS)
# The six paths the (deprecated) PATCH accepts; nothing else can be patched.
PATCH_PATHS = {f.name: f.patch_path for f in FIELDS if f.patch_path}
NO_CONTROL_CHARACTERS = tuple(f.name for f in FIELDS if f.no_control_characters)


# --- normalize ---------------------------------------------------------------------------------


def normalize(news: Mapping[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    """Validate and normalise declared inputs; report every problem at once.

    Unknown values (during preview) pass through unchecked. Secret wrappers are
    unwrapped: the provider re-marks secret fields on the way out.
    """
    problems: list[Problem] = []
    out: dict[str, Any] = {}
    for key, raw in news.items():
        if key.startswith("__"):
            continue
        if key not in FIELD_BY_NAME:
            problems.append(Problem(key, f"{key!r} is not an input of TenantEmailConfig."
                                    + _suggest(key, INPUTS)))
            continue
        value = unwrap_secret(raw)
        if value is None or (isinstance(value, str) and value == "" and key not in WRITE_ONLY):
            continue
        out[key] = value
    for field in FIELDS:
        if field.name in out and not _is_unknown(out[field.name]):
            why = _normalize_field(field, out)
            if why:
                problems.append(Problem(field.name, why))
    for field in FIELDS:
        if field.default is not None:
            out.setdefault(field.name, field.default)
    problems += _tenant_key_problems(out)
    problems += _provider_problems(out)
    return out, problems


def _normalize_field(field: Field, out: dict[str, Any]) -> str | None:
    """Type, blanks, control characters and the field's own rule, in that order;
    ``out[field.name]`` becomes the normalised value. The first problem, or None."""
    key, value = field.name, out[field.name]
    if field.kind is str and not isinstance(value, str):
        # Dropped, so that the cross-field rules see the input as missing.
        del out[key]
        return f"{key} must be a string, got {type(value).__name__}."
    if field.strip:
        value = out[key] = value.strip()
    if field.no_control_characters:
        why = _control_character_problem(key, value)
        if why:
            return why
    if field.check is None:
        return None
    out[key], why = field.check(key, value, out)
    return why


def _tenant_key_problems(out: Mapping[str, Any]) -> list[Problem]:
    if "api_key" in out and "tenant_url" not in out:
        return [Problem("api_key", "api_key is set without tenant_url: a per-resource key "
                        "needs its tenant_url (or use stack config qlik:apiKey).")]
    return []


def _provider_problems(out: Mapping[str, Any]) -> list[Problem]:
    """Fields the service provider needs, the SMTP login pair, and the other provider's
    fields. Nothing for a service provider that is unknown or not valid."""
    provider = out["service_provider"]
    if provider not in SERVICE_PROVIDERS:
        return []
    own = [f for f in FIELDS if provider in f.providers]
    problems = [
        Problem(f.name, f"{f.name} is required for service_provider {provider!r}.")
        for f in own if f.required and f.name not in out
    ]
    if provider == BASIC_AUTH:
        problems += _login_problems(out)
    problems += [
        Problem(f.name, f"{f.name} does not apply to service_provider {provider!r}: remove it.")
        for f in FIELDS
        if f.providers and provider not in f.providers and f.name in out
    ]
    return problems


def _login_problems(out: Mapping[str, Any]) -> list[Problem]:
    has_user, has_pw = "username" in out, "email_password" in out
    if has_user and not has_pw:
        return [Problem("email_password", "email_password is required when username is set "
                        "(pass it as a secret).")]
    if has_pw and not has_user:
        return [Problem("username", "username is required when email_password is set.")]
    return []


# --- expand: desired state -> request bodies ---------------------------------------------


def _wire_value(key: str, value: Any) -> Any:
    return _integral(value) if FIELD_BY_NAME[key].kind is int else value


def expand_put(desired: Mapping[str, Any]) -> dict[str, Any]:
    """The PUT body for a full replacement of the tenant's configuration."""
    provider = desired.get("service_provider") or BASIC_AUTH
    fields = M365_FIELDS if provider == MICROSOFT_365 else BASIC_FIELDS
    config = {
        qlik: _wire_value(key, desired[key])
        for key, qlik in fields.items()
        if desired.get(key) is not None
    }
    return {"serviceProvider": provider, "providerConfig": config}


def changed_fields(olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
    """API fields whose desired value differs (write-only secrets compared as given)."""
    changed = [key for key in API_FIELDS if not _same(key, olds.get(key), news.get(key))]
    # A password the tenant lost (passwordExists false after a refresh) must be re-sent.
    if (
        "email_password" not in changed
        and news.get("email_password")
        and olds.get("password_exists") is False
        and (news.get("service_provider") or BASIC_AUTH) == BASIC_AUTH
    ):
        changed.append("email_password")
    return changed


def expand_patch(olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The minimal JSON-Patch from ``olds`` to ``news``, or None when PATCH cannot say it.

    PATCH knows six BasicAuth paths only: a change of sender_name, of any
    Microsoft365 field or of the service provider needs a PUT.
    """
    if (news.get("service_provider") or BASIC_AUTH) != BASIC_AUTH:
        return None
    if (olds.get("service_provider") or BASIC_AUTH) != BASIC_AUTH:
        return None
    ops: list[dict[str, Any]] = []
    for key in changed_fields(olds, news):
        if key not in PATCH_PATHS:
            return None
        new = unwrap_secret(news.get(key))
        if new is None:
            ops.append({"op": "remove", "path": PATCH_PATHS[key]})
        else:
            ops.append({"op": "replace", "path": PATCH_PATHS[key], "value": _wire_value(key, new)})
    return ops


def expand_patch_full(desired: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """Every set field as ``replace`` ops (a create through PATCH), or None when PATCH
    cannot express the desired state (sender_name, Microsoft365)."""
    if any(
        desired.get(key) is not None
        for key in API_FIELDS
        if key not in PATCH_PATHS and key != "service_provider"
    ):
        return None
    return expand_patch({}, {k: v for k, v in desired.items() if k != "sender_name"})


# --- flatten: GET answer -> outputs ---------------------------------------------------


def is_configured(answer: Mapping[str, Any]) -> bool:
    """Whether a GET answer describes a stored configuration (GET never 404s)."""
    if answer.get("errorCode") == "CONFIG_NOT_SET":
        return False
    if answer.get("serviceProvider") in SERVICE_PROVIDERS:
        return True
    nested = answer.get("providerConfig")
    nested = nested if isinstance(nested, Mapping) else {}
    keys = ("serverAddress", "emailAddress", "clientId", "username")
    return any(answer.get(k) or nested.get(k) for k in keys) or bool(answer.get("passwordExists"))


def flatten(answer: Mapping[str, Any]) -> dict[str, Any]:
    """Outputs from a GET answer.

    [I] Qlik has returned the SMTP fields flat at the top level (2023) and, since
    2024-03, also inside ``providerConfig``: read both, nested first, and ignore
    fields we do not know (real answers carry ``_id`` and more).
    """
    nested = answer.get("providerConfig")
    nested = nested if isinstance(nested, Mapping) else {}
    configured = is_configured(answer)

    def pick(qlik: str) -> Any:
        value = nested.get(qlik)
        return answer.get(qlik) if value is None else value

    provider = answer.get("serviceProvider")
    if provider is None and configured:
        provider = MICROSOFT_365 if pick("clientId") else BASIC_AUTH
    out: dict[str, Any] = {"service_provider": provider}
    fields = M365_FIELDS if provider == MICROSOFT_365 else BASIC_FIELDS
    for key in (*BASIC_FIELDS, *M365_FIELDS):
        if key in WRITE_ONLY:
            continue
        value = pick(fields[key]) if key in fields else None
        out[key] = whole_number(value) if FIELD_BY_NAME[key].kind is int else value
    status = answer.get("status")
    status = status if isinstance(status, Mapping) else {}
    out.update(
        tenant_id=answer.get("tenantId"),
        is_valid=bool(answer.get("isValid", False)),
        error_code=answer.get("errorCode"),
        auth_failures=whole_number(answer.get("authFailures")),
        status_code=whole_number(status.get("statusCode")),
        status_reason=status.get("statusReason"),
        password_exists=bool(answer.get("passwordExists", False)),
        modification_time=answer.get("modificationTime") or answer.get("lastUpdated"),
    )
    return out


def outputs(inputs: Mapping[str, Any], answer: Mapping[str, Any]) -> dict[str, Any]:
    """All inputs (secrets as given) overlaid with what the tenant reports."""
    outs = {key: unwrap_secret(inputs.get(key)) for key in INPUTS}
    live = flatten(answer)
    for key, value in live.items():
        # The tenant is the truth for what it stores; inputs it never echoes stay.
        if key in API_FIELDS or key in STATUS_OUTPUTS:
            outs[key] = value
    _forget_lost_secrets(outs, live)
    return outs


def _forget_lost_secrets(values: dict[str, Any], live: Mapping[str, Any]) -> None:
    # Write-only secrets cannot be read back: keep the known one while the tenant
    # says it still has one; drop it when it says it has none.
    if not live["password_exists"] or live["service_provider"] != BASIC_AUTH:
        values["email_password"] = None
    if live["service_provider"] != MICROSOFT_365:
        values["client_secret"] = None


def read_inputs(old: Mapping[str, Any], answer: Mapping[str, Any]) -> dict[str, Any]:
    """Inputs rebuilt from the live config, so a refresh shows console drift.

    Write-only secrets cannot be read: keep the known one while the tenant says a
    password exists, drop it when it says none does (``passwordExists: false``).
    """
    live = flatten(answer)
    inputs = {key: unwrap_secret(old.get(key)) for key in INPUTS}
    for key in API_FIELDS:
        if key not in WRITE_ONLY:
            inputs[key] = live.get(key)
    _forget_lost_secrets(inputs, live)
    return {k: v for k, v in inputs.items() if v is not None}


# --- diff --------------------------------------------------------------------------


def _comparable(key: str, value: Any) -> Any:
    """The form in which two spellings of one setting are equal."""
    value = unwrap_secret(value)
    field = FIELD_BY_NAME[key]
    if field.default is not None:
        return value or field.default
    if field.kind is int:
        return _integral(value)
    if field.kind is bool:
        return bool(value)
    if key == "tenant_url" and isinstance(value, str):
        # State saved before URLs were normalised may spell the same tenant otherwise.
        return normalize_tenant_url(value)
    return value


def _same(key: str, old: Any, new: Any) -> bool:
    """Whether ``old`` and ``new`` are one value of input ``key``: the one comparison
    of ``changed_fields``, ``diff`` and, through ``same_value``, ``not_written_by``."""
    return _comparable(key, old) == _comparable(key, new)


def _blank_as_unset(value: Any) -> Any:
    # [I] A field the tenant holds empty may read back as "" or not at all: either way
    # it is one that nobody set.
    return None if value == "" else value


def same_value(key: str, old: Any, new: Any) -> bool:
    """Whether ``old`` and ``new`` are one setting of output ``key`` as a tenant reports
    it, where a blank field and an unset one are the same (``not_written_by`` and the
    fleet's drift). An output that is not an input is compared as it is."""
    old, new = _blank_as_unset(old), _blank_as_unset(new)
    if key in FIELD_BY_NAME:
        return _same(key, old, new)
    return struct_number(old) == struct_number(new)


@dataclass(frozen=True)
class Diff:
    changes: list[str]
    replaces: list[str]


def diff(
    olds: Mapping[str, Any],
    news: Mapping[str, Any],
    *,
    old_tenant: str | None = None,
    new_tenant: str | None = None,
) -> Diff:
    """Which inputs changed and which force a replacement. Exact, local, no HTTP.

    ``olds`` are the last outputs (live values after a refresh), ``news`` the
    checked inputs. ``old_tenant``/``new_tenant`` are the resolved tenant URLs:
    another tenant is another resource, so it replaces.
    """
    changes: list[str] = []
    for key in INPUTS:
        new = news.get(key)
        if _is_unknown(unwrap_secret(new)) or not _same(key, olds.get(key), new):
            changes.append(key)
    if "email_password" not in changes and "email_password" in changed_fields(olds, news):
        changes.append("email_password")
    replaces: list[str] = []
    if old_tenant is not None and new_tenant is not None and old_tenant != new_tenant:
        replaces.append("tenant_url")
        if "tenant_url" not in changes:
            changes.append("tenant_url")
    elif old_tenant is None and "tenant_url" in changes:
        replaces.append("tenant_url")
    return Diff(changes=changes, replaces=replaces)


# --- delete guard -----------------------------------------------------------------------


def not_written_by(state: Mapping[str, Any], answer: Mapping[str, Any]) -> str | None:
    """Why the tenant's live configuration (a GET ``answer``) is not the one that the
    resource with this ``state`` last wrote or read, or None when it is.

    The configuration is a singleton per tenant, so another resource may have written
    it since: the new resource of a replace that reaches the same tenant by another
    URL (127.0.0.1 and localhost), a second stack, the console. Delete must leave
    such a configuration alone.
    """
    ours, live = state.get("tenant_id"), answer.get("tenantId")
    if ours and live and ours != live:
        return (f"the tenant URL now reaches tenant {live}, not tenant {ours} where this "
                "resource wrote its configuration")
    written = state.get("modification_time")
    changed = answer.get("modificationTime") or answer.get("lastUpdated")
    if written and changed:
        if written == changed:
            return None
        return (f"the configuration was changed at {changed}, after this resource last "
                f"wrote or read it ({written}): another resource (such as the new one of a "
                "replace) or someone in the console wrote it since")
    # [I] Qlik documents modificationTime as read-only output without saying it is always
    # there: without it, compare the fields this resource wrote (secrets cannot be read).
    now = flatten(answer)
    differing = [
        key for key in API_FIELDS
        if key not in WRITE_ONLY and not same_value(key, state.get(key), now[key])
    ]
    if differing:
        return (f"its {', '.join(differing)} differ from what this resource wrote: another "
                "resource or someone in the console wrote it since")
    return None
