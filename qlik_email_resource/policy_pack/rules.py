"""The rules of the Qlik email policy pack: each rule's function, then its policy.

Each rule is a name constant (``TLS_REQUIRED = "email-tls-required"``), its
validator, and right under it the ``ResourceValidationPolicy`` (or
``StackValidationPolicy``) that registers it with its description, enforcement
level and config schema, as pulumi/examples' packs lay them out. ``POLICIES``
at the end lists those objects; ``POLICY_NAMES`` is derived from it. Adding a
rule is one block here (plus its tests).

Each rule reads the resource's inputs by their Python names (``security_type``,
``server_port``, ...; camelCase spellings are tolerated too) and reports one
message that names the resource, the rule, the value that failed and the fix.

Two things the analyzer hands us shape the code:
- Numbers arrive as floats (protobuf Structs have no integers): ``587.0``.
  Ports are compared and printed as integers.
- Secrets arrive in plain text. Messages never print a secret field, and
  ``_report`` blanks any secret value of the resource that would still slip into
  a message (say a password pasted into ``server_address``).

Reading a value that is unknown during preview raises ``UnknownValueError``; the
analyzer turns it into its usual advisory "can't run policy during preview", so
the rules let it propagate instead of guessing.

It is the one copy of the rules: the packaged pack (this directory) and the
repository's ``policies/`` both run this directory's ``__main__.py``, and
``policies.rules`` re-exports it. It imports nothing of ``qlik_email_resource``: under
the Pulumi CLI the repository's pack runs in its own virtualenv (``policies/venv``) with
only ``pulumi`` and ``pulumi_policy``, so the secret wire form is read with the SDK's
own signature key (``qlik_email_resource.secret_wire`` pins the same literal).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from email.utils import parseaddr
from functools import lru_cache
from typing import Any
from urllib.parse import SplitResult, urlsplit

from pulumi.runtime.rpc import _special_sig_key as _SECRET_SIG_KEY
from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Secret,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

# The type token pulumi.dynamic derives from resource.py's class: spelled here so that
# the analyzer does not load the provider to learn it; test_policies_program.py checks
# that a declared TenantEmailConfig carries it.
RESOURCE_TYPE = "pulumi-python:dynamic/qlik:TenantEmailConfig"
SSL_TLS = "SSL/TLS"
START_TLS = "StartTLS"
BASIC_AUTH = "BasicAuth"
MICROSOFT_365 = "Microsoft365"
LOCALHOST_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

_SECRET_FIELDS = ("email_password", "client_secret", "api_key")

DEFAULT_ALLOWED_PORTS = [465, 587, 2465, 2587]
DEFAULT_IMPLICIT_TLS_PORTS = [465, 2465]
DEFAULT_STARTTLS_PORTS = [587, 2587]
DEFAULT_TENANT_DOMAINS = ["*.qlikcloud.com"]
# JSON schema of a port-list setting; the CLI validates policy config against it.
_PORT_LIST: dict[str, Any] = {
    "type": "array",
    "items": {"type": "integer", "minimum": 1, "maximum": 65535},
}


def _string_list(default: list[str], description: str) -> dict[str, Any]:
    """JSON schema of a setting that holds a list of strings (host or domain patterns)."""
    return {
        "type": "array",
        "items": {"type": "string"},
        "default": default,
        "description": description,
    }


# --------------------------------------------------------------------------- reading values


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _unwrap(value: Any) -> Any:
    if isinstance(value, Secret):
        return value.value
    # A secret still in its wire form, should a caller hand the props over unwrapped.
    if isinstance(value, Mapping) and _SECRET_SIG_KEY in value:
        return value.get("value")
    return value


def prop(props: Mapping[str, Any], name: str) -> Any:
    """The input ``name`` (snake_case, else camelCase); ``None`` when absent or empty."""
    value = _unwrap(props.get(name))
    if value is None:
        value = _unwrap(props.get(_camel(name)))
    if isinstance(value, str) and not value.strip():
        return None
    return value


def as_int(value: Any) -> int | None:
    """``587.0``, ``587`` or ``"587"`` as 587; anything else (``587.5``, ``"abc"``) as None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = value.strip() if isinstance(value, str) else ""
    # ASCII digits only: isdigit() is also True for "²" (int() raises) and for other
    # scripts' digits such as "٣" (int() turns it into 3): neither is a port.
    if text.isascii() and text.isdigit():
        return int(text)
    return None


def _int_list(value: Any, default: Sequence[int]) -> list[int]:
    if value is None:
        return list(default)
    return [n for n in (as_int(v) for v in value) if n is not None]


def _str_list(value: Any, default: Sequence[str]) -> list[str]:
    if value is None:
        return list(default)
    return [str(v).strip() for v in value if str(v).strip()]


def _ports(ports: Iterable[int]) -> str:
    return ", ".join(str(p) for p in ports)


def _shown(value: Any) -> str:
    """A non-secret value for a message: ports as integers, strings quoted."""
    number = as_int(value) if isinstance(value, float) else None
    return str(number) if number is not None else repr(value)


def service_provider(props: Mapping[str, Any]) -> str:
    value = prop(props, "service_provider")
    return BASIC_AUTH if value is None else str(value)


def is_smtp(props: Mapping[str, Any]) -> bool:
    """Microsoft365 sends through Graph: server, port and security type do not apply."""
    return service_provider(props) != MICROSOFT_365


def _config(args: ResourceValidationArgs | StackValidationArgs) -> Mapping[str, Any]:
    return args.get_config() or {}


# --------------------------------------------------------------------------- hosts and URLs


@lru_cache(maxsize=256)
def _host_regex(pattern: str) -> re.Pattern[str]:
    labels = pattern.strip().lower().rstrip(".").split(".")
    parts = []
    for index, label in enumerate(labels):
        if label == "*" and index == 0:
            # A leading "*." means any subdomain, at any depth (a.eu.qlikcloud.com).
            parts.append(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
        elif label == "*":
            # Elsewhere "*" is exactly one label: email-smtp.*.amazonaws.com is a region.
            parts.append(r"[a-z0-9_-]+")
        else:
            parts.append("[a-z0-9_-]*".join(re.escape(piece) for piece in label.split("*")))
    return re.compile(r"\.".join(parts))


def host_matches(host: str, pattern: str) -> bool:
    """Match a host name against a pattern such as ``*.qlikcloud.com`` or ``smtp.sendgrid.net``.

    A leading ``*`` label matches one or more labels; a ``*`` anywhere else matches
    within one label. Matching is case-insensitive and ignores a trailing dot.
    """
    name = host.strip().lower().rstrip(".")
    return bool(name) and _host_regex(pattern).fullmatch(name) is not None


def _split_url(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    return parts if parts.scheme and parts.hostname else None


def _base_url(parts: SplitResult, *, keep_default_port: bool = True) -> str:
    """scheme://host[:port]/path, without credentials, query or fragment."""
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    default = {"https": 443, "http": 80}.get(scheme)
    hide_port = port is None or (port == default and not keep_default_port)
    netloc = host if hide_port else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def tenant_key(url: Any) -> str | None:
    """The identity of the tenant a URL points at; ``None`` for "the stack's default tenant"."""
    if url is None:
        return None
    parts = _split_url(str(url))
    if parts is None:
        return str(url).strip()
    return _base_url(parts, keep_default_port=False)


def _shown_url(url: Any) -> str:
    parts = _split_url(str(url))
    # Only the parsed pieces are shown: an api key pasted into the query never reaches a message.
    return repr(_base_url(parts)) if parts is not None else "(not a URL)"


# --------------------------------------------------------------------------- reporting


def _secret_values(props: Mapping[str, Any]) -> list[str]:
    values = []
    for name in _SECRET_FIELDS:
        try:
            value = prop(props, name)
        except UnknownValueError:
            continue
        if value is not None and len(str(value)) >= 4:
            values.append(str(value))
    return values


def _report(
    report: ReportViolation,
    props: Mapping[str, Any],
    name: str,
    rule: str,
    problem: str,
    fix: str,
    urn: str | None = None,
) -> None:
    message = f"TenantEmailConfig '{name}' fails {rule}: {problem} Fix: {fix}"
    for secret in _secret_values(props):
        # Case-insensitive: host names and URLs are printed lowercased.
        message = re.sub(re.escape(secret), "[secret]", message, flags=re.IGNORECASE)
    report(message, urn)


def _applies(args: ResourceValidationArgs) -> bool:
    return args.resource_type == RESOURCE_TYPE


# --------------------------------------------------------------------------- rules

TLS_REQUIRED = "email-tls-required"


def tls_required(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _applies(args) or not is_smtp(args.props):
        return
    allow_starttls = bool(_config(args).get("allowStartTls", True))
    allowed = [SSL_TLS, START_TLS] if allow_starttls else [SSL_TLS]
    security = prop(args.props, "security_type")
    if security in allowed:
        return
    choices = " or ".join(repr(s) for s in allowed)
    if security is None:
        problem = "security_type is not set, so nothing guarantees an encrypted connection."
    elif security == START_TLS:
        problem = "security_type is 'StartTLS', which this organisation does not allow."
    else:
        problem = (
            f"security_type is {_shown(security)}: the SMTP password and every mail "
            "would cross the network without TLS."
        )
    fix = f"set security_type to {choices} (and a port that speaks it)."
    _report(report, args.props, args.name, TLS_REQUIRED, problem, fix)


TLS_REQUIRED_POLICY = ResourceValidationPolicy(
    name=TLS_REQUIRED,
    description="SMTP connections use TLS: security_type is 'SSL/TLS' or 'StartTLS' "
    "(config can forbid 'StartTLS').",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=tls_required,
    config_schema=PolicyConfigSchema(
        properties={
            "allowStartTls": {
                "type": "boolean",
                "default": True,
                "description": "false: only 'SSL/TLS' (implicit TLS) passes.",
            }
        }
    ),
)


ALLOWED_PORTS = "email-allowed-ports"


def allowed_ports(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _applies(args) or not is_smtp(args.props):
        return
    ports = _int_list(_config(args).get("allowedPorts"), DEFAULT_ALLOWED_PORTS)
    raw = prop(args.props, "server_port")
    port = as_int(raw)
    if port is not None and port in ports:
        return
    if raw is None:
        problem = "server_port is not set."
    elif port is None:
        problem = f"server_port is {_shown(raw)}, not a whole port number."
    else:
        problem = f"server_port {port} is not one of the allowed ports ({_ports(ports)})."
    fix = (
        f"use one of {_ports(ports)}, or ask the policy owner to add the port to "
        f"allowedPorts in the {ALLOWED_PORTS} config."
    )
    _report(report, args.props, args.name, ALLOWED_PORTS, problem, fix)


ALLOWED_PORTS_POLICY = ResourceValidationPolicy(
    name=ALLOWED_PORTS,
    description="server_port is one of the allowed SMTP ports.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=allowed_ports,
    config_schema=PolicyConfigSchema(
        properties={
            "allowedPorts": {
                **_PORT_LIST,
                "default": DEFAULT_ALLOWED_PORTS,
                "description": "Ports a TenantEmailConfig may use.",
            }
        }
    ),
)


PORT_MATCHES_SECURITY = "email-port-matches-security"


def port_matches_security(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _applies(args) or not is_smtp(args.props):
        return
    config = _config(args)
    implicit = _int_list(config.get("implicitTlsPorts"), DEFAULT_IMPLICIT_TLS_PORTS)
    submission = _int_list(config.get("startTlsPorts"), DEFAULT_STARTTLS_PORTS)
    port = as_int(prop(args.props, "server_port"))
    security = prop(args.props, "security_type")
    if port is None or security is None:
        return  # email-allowed-ports and email-tls-required report missing values
    if port in implicit and security != SSL_TLS:
        expected, kind = SSL_TLS, "an implicit-TLS port"
    elif port in submission and security != START_TLS:
        expected, kind = START_TLS, "a submission (STARTTLS) port"
    else:
        return
    problem = (
        f"server_port {port} is {kind} but security_type is {_shown(security)}; "
        "the connection will hang or fail at the TLS handshake."
    )
    other = submission if expected == SSL_TLS else implicit
    fix = (
        f"set security_type to '{expected}', or keep {_shown(security)} and use "
        f"port {' or '.join(str(p) for p in other) or '(none configured)'}."
    )
    _report(report, args.props, args.name, PORT_MATCHES_SECURITY, problem, fix)


PORT_MATCHES_SECURITY_POLICY = ResourceValidationPolicy(
    name=PORT_MATCHES_SECURITY,
    description="Implicit-TLS ports use 'SSL/TLS' and submission ports use 'StartTLS'.",
    enforcement_level=EnforcementLevel.ADVISORY,
    validate=port_matches_security,
    config_schema=PolicyConfigSchema(
        properties={
            "implicitTlsPorts": {
                **_PORT_LIST,
                "default": DEFAULT_IMPLICIT_TLS_PORTS,
                "description": "Ports that speak TLS from the first byte ('SSL/TLS').",
            },
            "startTlsPorts": {
                **_PORT_LIST,
                "default": DEFAULT_STARTTLS_PORTS,
                "description": "Submission ports that upgrade with STARTTLS ('StartTLS').",
            },
        }
    ),
)


ALLOWED_SMTP_HOSTS = "email-allowed-smtp-hosts"


def allowed_smtp_hosts(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _applies(args) or not is_smtp(args.props):
        return
    patterns = _str_list(_config(args).get("allowedHosts"), [])
    if not patterns:
        return  # not configured: every host passes
    host = prop(args.props, "server_address")
    if host is not None and any(host_matches(str(host), p) for p in patterns):
        return
    shown = ", ".join(patterns)
    problem = (
        "server_address is not set."
        if host is None
        else f"server_address {_shown(str(host).strip())} is not an approved SMTP relay ({shown})."
    )
    fix = (
        f"send through an approved relay ({shown}), or ask the policy owner to add the "
        f"host to allowedHosts in the {ALLOWED_SMTP_HOSTS} config."
    )
    _report(report, args.props, args.name, ALLOWED_SMTP_HOSTS, problem, fix)


ALLOWED_SMTP_HOSTS_POLICY = ResourceValidationPolicy(
    name=ALLOWED_SMTP_HOSTS,
    description="server_address is an approved SMTP relay (passes everything until "
    "allowedHosts is configured).",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=allowed_smtp_hosts,
    config_schema=PolicyConfigSchema(
        properties={
            "allowedHosts": _string_list(
                [],
                "Host patterns, e.g. 'email-smtp.*.amazonaws.com', 'smtp.sendgrid.net'. "
                "A leading '*.' matches any subdomain; another '*' matches within one "
                "label. Empty: every host passes.",
            )
        }
    ),
)


SENDER_DOMAINS = "email-sender-domains"


def sender_domains(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _applies(args):
        return
    domains = _str_list(_config(args).get("allowedDomains"), [])
    if not domains:
        return  # not configured: every sender passes
    address = prop(args.props, "email_address")
    mailbox = parseaddr(str(address))[1] if address is not None else ""
    domain = mailbox.rpartition("@")[2] if "@" in mailbox else ""
    if domain and any(host_matches(domain, d) for d in domains):
        return
    shown = ", ".join(domains)
    if address is None:
        problem = "email_address is not set."
    elif not domain:
        problem = f"email_address {_shown(str(address))} has no domain."
    else:
        problem = f"email_address {_shown(str(address))} is on {domain!r}, not on {shown}."
    fix = f"send from an address on {shown} (a domain your SPF/DKIM records cover)."
    _report(report, args.props, args.name, SENDER_DOMAINS, problem, fix)


SENDER_DOMAINS_POLICY = ResourceValidationPolicy(
    name=SENDER_DOMAINS,
    description="email_address is on an approved sender domain (passes everything until "
    "allowedDomains is configured).",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=sender_domains,
    config_schema=PolicyConfigSchema(
        properties={
            "allowedDomains": _string_list(
                [],
                "Sender domains, e.g. 'mydomain.com' (exact) or '*.mydomain.com' "
                "(subdomains). Empty: every sender passes.",
            )
        }
    ),
)


TENANT_URL = "email-tenant-url"


def tenant_url(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _applies(args):
        return
    url = prop(args.props, "tenant_url")
    if url is None:
        return  # credentials come from stack config, which a policy cannot see
    config = _config(args)
    domains = _str_list(config.get("allowedDomains"), DEFAULT_TENANT_DOMAINS)
    allow_localhost = bool(config.get("allowLocalhost", False))
    parts = _split_url(str(url))
    allowed = ", ".join(domains) + (", localhost, 127.0.0.1" if allow_localhost else "")
    host = (parts.hostname or "") if parts is not None else ""
    if parts is None:
        problem = "tenant_url is not an absolute URL."
    elif parts.scheme.lower() != "https":
        problem = (
            f"tenant_url {_shown_url(url)} does not use https://, so the API key would "
            "cross the network in clear text."
        )
    elif (allow_localhost and host in LOCALHOST_NAMES) or any(
        host_matches(host, d) for d in domains
    ):
        return
    else:
        problem = f"tenant_url {_shown_url(url)} is not on an allowed domain ({allowed})."
    fix = (
        f"use https://<tenant>.<region>.qlikcloud.com (allowed: {allowed}); for the local "
        f"emulator set allowLocalhost: true in the {TENANT_URL} config."
    )
    _report(report, args.props, args.name, TENANT_URL, problem, fix)


TENANT_URL_POLICY = ResourceValidationPolicy(
    name=TENANT_URL,
    description="tenant_url is https:// on an allowed Qlik Cloud domain (resources "
    "without tenant_url use stack config and pass).",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=tenant_url,
    config_schema=PolicyConfigSchema(
        properties={
            "allowedDomains": _string_list(
                DEFAULT_TENANT_DOMAINS,
                "Host patterns a tenant_url may use; a leading '*.' matches any subdomain.",
            ),
            "allowLocalhost": {
                "type": "boolean",
                "default": False,
                "description": "true: https://localhost and https://127.0.0.1 (any port, "
                "any path) pass too, for the local Qlik emulator.",
            },
        }
    ),
)


CREDENTIALS_PRESENT = "email-credentials-present"

_REQUIRED_CREDENTIALS = {
    BASIC_AUTH: ("username", "email_password"),
    MICROSOFT_365: ("client_id", "client_secret", "provider_tenant_id"),
}


def credentials_present(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _applies(args):
        return
    provider = service_provider(args.props)
    required = _REQUIRED_CREDENTIALS.get(provider)
    if required is None:
        problem = f"service_provider is {_shown(provider)}, which Qlik does not know."
        fix = f"set service_provider to '{BASIC_AUTH}' or '{MICROSOFT_365}'."
        _report(report, args.props, args.name, CREDENTIALS_PRESENT, problem, fix)
        return
    # Only the names of missing fields are printed, never a value.
    missing = [name for name in required if prop(args.props, name) is None]
    if not missing:
        return
    problem = (
        f"{provider} needs {', '.join(required)}; missing: {', '.join(missing)}, so Qlik "
        "would store a configuration that cannot send mail."
    )
    fix = f"set {', '.join(missing)} (secrets from `pulumi config set --secret`)."
    _report(report, args.props, args.name, CREDENTIALS_PRESENT, problem, fix)


CREDENTIALS_PRESENT_POLICY = ResourceValidationPolicy(
    name=CREDENTIALS_PRESENT,
    description="BasicAuth has username and email_password; Microsoft365 has client_id, "
    "client_secret and provider_tenant_id.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=credentials_present,
)


VERIFY_ON_APPLY = "email-verify-on-apply"


def verify_on_apply(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _applies(args):
        return
    value = prop(args.props, "verify_connection")
    if value is True or (isinstance(value, str) and value.strip().lower() == "true"):
        return
    shown = "not set (off)" if value is None else _shown(value)
    problem = (
        f"verify_connection is {shown}: a wrong password or host is only found "
        "when the first report mail fails."
    )
    fix = "set verify_connection=True so every apply checks the SMTP handshake and login."
    _report(report, args.props, args.name, VERIFY_ON_APPLY, problem, fix)


VERIFY_ON_APPLY_POLICY = ResourceValidationPolicy(
    name=VERIFY_ON_APPLY,
    description="verify_connection is on, so every apply proves the SMTP login works.",
    enforcement_level=EnforcementLevel.ADVISORY,
    validate=verify_on_apply,
)


ONE_CONFIG_PER_TENANT = "email-one-config-per-tenant"


def one_config_per_tenant(args: StackValidationArgs, report: ReportViolation) -> None:
    seen: dict[str | None, PolicyResource] = {}
    pending_unknown: UnknownValueError | None = None
    # The engine lists the stack's resources in no fixed order (AnalyzeResources ranges
    # over a concurrent map): by URN, the same resource is named in every run.
    for resource in sorted(args.resources, key=lambda r: r.urn):
        if resource.resource_type != RESOURCE_TYPE:
            continue
        try:
            key = tenant_key(prop(resource.props, "tenant_url"))
        except UnknownValueError as unknown:
            # Check the known ones; the analyzer reports the unknown as an advisory after.
            pending_unknown = unknown
            continue
        first = seen.setdefault(key, resource)
        if first is resource:
            continue
        where = (
            f"tenant {key!r}"
            if key is not None
            else "the stack's default tenant (no tenant_url: qlik:tenantUrl / QLIK_TENANT_URL)"
        )
        problem = (
            f"it targets the same tenant as '{first.name}', {where}. A tenant has one email "
            "configuration, so the two would overwrite each other on every apply."
        )
        fix = (
            "declare one TenantEmailConfig per tenant: delete one, or give each its own "
            "tenant_url (or its own stack)."
        )
        _report(
            report, resource.props, resource.name, ONE_CONFIG_PER_TENANT, problem, fix, resource.urn
        )
    if pending_unknown is not None:
        raise pending_unknown


ONE_CONFIG_PER_TENANT_POLICY = StackValidationPolicy(
    name=ONE_CONFIG_PER_TENANT,
    description="No two TenantEmailConfig resources in a stack target the same tenant.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=one_config_per_tenant,
)


# --------------------------------------------------------------------------- the pack

POLICIES: list[ResourceValidationPolicy | StackValidationPolicy] = [
    TLS_REQUIRED_POLICY,
    ALLOWED_PORTS_POLICY,
    PORT_MATCHES_SECURITY_POLICY,
    ALLOWED_SMTP_HOSTS_POLICY,
    SENDER_DOMAINS_POLICY,
    TENANT_URL_POLICY,
    CREDENTIALS_PRESENT_POLICY,
    VERIFY_ON_APPLY_POLICY,
    ONE_CONFIG_PER_TENANT_POLICY,
]
# The names a --policy-pack-config file and the engine's diagnostics use, in pack order.
POLICY_NAMES: tuple[str, ...] = tuple(policy.name for policy in POLICIES)
