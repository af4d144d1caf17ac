"""The tenants file: one YAML document describing every tenant of a fleet.

```yaml
project: qlik-email            # optional, the Pulumi project name
defaults:                      # email settings shared by every tenant
  server_address: smtp.example.com
  server_port: 587
  security_type: StartTLS
  email_password_env: SMTP_PASSWORD   # secrets are references to env vars, never values
tenants:
  acme:
    url: https://acme.eu.qlikcloud.com
    api_key_env: ACME_API_KEY         # or client_id_env + client_secret_env (OAuth M2M)
    ca_bundle: certs/corp-ca.pem      # optional, relative to this file
    email:                            # optional overrides of the defaults (null removes one)
      sender_name: Acme reports
policy_config:                 # optional, the shape of a --policy-pack-config file
  email-allowed-ports: {allowedPorts: [587]}
```

The file is the reviewable source of truth, so secrets never sit in it: a literal
``api_key`` or ``email_password`` is refused with the fix. ``url`` and
``ca_bundle`` may use ``${VAR}`` so that the same file works against the local
emulator, whose port and CA change per run.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import urlsplit

import yaml

from qlik_email_resource.fleet import policy_config as policy_settings
from qlik_email_resource.mapping import FIELDS, parse_port

DEFAULT_PROJECT = "qlik-email"

# Email settings by their provider input name, from the resource's field table. The
# tenant's URL and API key are not email settings: a tenant gives them as `url` and
# `api_key_env`.
_TENANT_INPUTS = ("tenant_url", "api_key")
_EMAIL_FIELDS = tuple(f for f in FIELDS if f.name not in _TENANT_INPUTS)
EMAIL_STRINGS = tuple(f.name for f in _EMAIL_FIELDS if f.kind is str and not f.secret)
EMAIL_INTS = tuple(f.name for f in _EMAIL_FIELDS if f.kind is int)
EMAIL_BOOLS = tuple(f.name for f in _EMAIL_FIELDS if f.kind is bool)
# Secret email inputs: the file names an environment variable, `<input>_env`.
EMAIL_SECRETS = tuple(f.name for f in _EMAIL_FIELDS if f.secret)
EMAIL_KEYS = frozenset(EMAIL_STRINGS + EMAIL_INTS + EMAIL_BOOLS)
EMAIL_ENV_KEYS = frozenset(f"{k}_env" for k in EMAIL_SECRETS)

TENANT_KEYS = frozenset(
    {"url", "api_key_env", "client_id_env", "client_secret_env", "ca_bundle", "email"}
)
TENANT_SECRETS = ("api_key", "client_secret", "client_id", "access_token", "token")
TOP_KEYS = frozenset({"project", "defaults", "tenants", "policy_config"})

# A stack name must be accepted by every Pulumi backend.
_STACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


class TenantsFileError(ValueError):
    """The tenants file is unusable; the message lists every problem, one per line."""


class CredentialError(ValueError):
    """A tenant's credentials cannot be resolved from the environment."""


@dataclass(frozen=True)
class Tenant:
    """One tenant as the file declares it: settings plus names of env vars, no secret."""

    name: str
    url: str
    email: Mapping[str, Any]
    secret_env: Mapping[str, str]  # email input name -> env var holding its value
    api_key_env: str | None = None
    client_id_env: str | None = None
    client_secret_env: str | None = None
    ca_bundle: str | None = None

    @property
    def auth(self) -> str:
        return "api_key" if self.api_key_env else "oauth"

    def resolve(self, environ: Mapping[str, str] | None = None) -> ResolvedTenant:
        """Read the referenced env vars; a missing one fails this tenant only."""
        env = os.environ if environ is None else environ

        def need(var: str, key: str) -> str:
            value = env.get(var, "")
            if not value:
                # Named as the user wrote it in the tenants file, not as stack config.
                raise CredentialError(
                    f"tenant {self.name}: environment variable {var} is not set "
                    f"(tenants file: `{key}: {var}`); export {var} before running the fleet"
                )
            return value

        secrets = {key: need(var, f"{key}_env") for key, var in self.secret_env.items()}
        return ResolvedTenant(
            tenant=self,
            api_key=need(self.api_key_env, "api_key_env") if self.api_key_env else None,
            client_id=need(self.client_id_env, "client_id_env") if self.client_id_env else None,
            client_secret=(
                need(self.client_secret_env, "client_secret_env")
                if self.client_secret_env
                else None
            ),
            email_secrets=secrets,
        )


@dataclass(frozen=True)
class ResolvedTenant:
    """A tenant with its secrets read; ``repr`` never shows them."""

    tenant: Tenant
    api_key: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    email_secrets: Mapping[str, str] = field(default_factory=dict, repr=False)

    def secret_values(self) -> list[str]:
        """Every secret value, for scrubbing messages before they are shown."""
        values = [self.api_key, self.client_secret, *self.email_secrets.values()]
        return [v for v in values if v]


@dataclass(frozen=True)
class TenantsFile:
    path: Path
    project: str
    tenants: tuple[Tenant, ...]
    policy_config: Mapping[str, Mapping[str, Any]]

    def tenant(self, name: str) -> Tenant:
        for tenant in self.tenants:
            if tenant.name == name:
                return tenant
        raise KeyError(name)


def _snake(key: str) -> str:
    # Users copy Qlik's camelCase names (serverPort) from the API docs; accept both.
    return _CAMEL.sub("_", key).lower()


class _Validator:
    def __init__(self, path: Path, environ: Mapping[str, str]) -> None:
        self.path = path
        self.environ = environ
        self.errors: list[str] = []

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")

    def unknown(self, where: str, key: str, allowed: frozenset[str]) -> None:
        hint = difflib.get_close_matches(key, sorted(allowed), n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        self.error(
            f"{where}.{key}",
            f"unknown key{suggestion}; allowed: {', '.join(sorted(allowed))}",
        )

    def secret_literal(self, where: str, key: str, env_key: str) -> None:
        self.error(
            f"{where}.{key}",
            f"secrets must not be written in the tenants file; put the value in an "
            f"environment variable and write `{env_key}: VARIABLE_NAME` instead",
        )

    def expand(self, where: str, value: str) -> str | None:
        try:
            return Template(value).substitute(self.environ)
        except KeyError as exc:
            self.error(where, f"environment variable {exc.args[0]} is not set")
        except ValueError:
            self.error(where, "invalid ${VAR} reference (use ${NAME} or $$ for a dollar)")
        return None

    def env_name(self, where: str, value: Any) -> str | None:
        if isinstance(value, str) and _ENV_NAME.match(value):
            return value
        self.error(where, "must be the name of an environment variable (e.g. ACME_API_KEY)")
        return None

    def email(self, where: str, raw: Any) -> tuple[dict[str, Any], dict[str, str]]:
        """Check an email block; returns (settings, secret env refs); None values kept."""
        settings: dict[str, Any] = {}
        refs: dict[str, Any] = {}
        if raw is None:
            return settings, refs
        if not isinstance(raw, Mapping):
            self.error(where, "must be a mapping of email settings")
            return settings, refs
        for raw_key, value in raw.items():
            key = _snake(str(raw_key))
            at = f"{where}.{raw_key}"
            if key in ("password", *EMAIL_SECRETS):
                self.secret_literal(where, str(raw_key), f"{_secret_input(key)}_env")
            elif key in EMAIL_ENV_KEYS:
                refs[key[: -len("_env")]] = (
                    None if value is None else self.env_name(at, value)
                )
            elif key not in EMAIL_KEYS:
                self.unknown(where, str(raw_key), EMAIL_KEYS | EMAIL_ENV_KEYS)
            elif value is None:
                settings[key] = None
            elif key in EMAIL_INTS:
                # The resource's own converter: 465, 465.0 and "465" are one port, as
                # they are to TenantEmailConfig (issue #10).
                try:
                    settings[key] = parse_port(value)
                except ValueError:
                    self.error(at, f"must be an integer port between 1 and 65535 (got {value!r})")
            elif key in EMAIL_BOOLS:
                if not isinstance(value, bool):
                    self.error(at, f"must be true or false (got {value!r})")
                else:
                    settings[key] = value
            elif not isinstance(value, str | int | float) or isinstance(value, bool):
                self.error(at, f"must be a string (got {value!r})")
            else:
                settings[key] = str(value)
        return settings, refs

    def tenant(
        self, name: Any, raw: Any, defaults: dict[str, Any], default_refs: dict[str, Any]
    ) -> Tenant | None:
        where = f"tenants.{name}"
        start = len(self.errors)
        if not isinstance(name, str) or not _STACK_NAME.match(name):
            self.error(
                where,
                "tenant names become stack names: use letters, digits, '-', '_' or '.' "
                "(at most 100 characters)",
            )
        if not isinstance(raw, Mapping):
            self.error(where, "must be a mapping with at least `url` and credentials")
            return None
        for key in raw:
            if key in TENANT_SECRETS:
                self.secret_literal(where, str(key), f"{key}_env")
            elif key not in TENANT_KEYS:
                self.unknown(where, str(key), TENANT_KEYS)

        url = None
        if "url" not in raw:
            self.error(f"{where}.url", "missing: the tenant URL, e.g. https://acme.eu.qlikcloud.com")
        elif not isinstance(raw["url"], str):
            self.error(f"{where}.url", "must be a string")
        else:
            url = self.expand(f"{where}.url", raw["url"])
            if url is not None:
                parts = urlsplit(url)
                if parts.scheme not in ("https", "http") or not parts.hostname:
                    self.error(f"{where}.url", f"must be an https:// URL (got {url!r})")
                url = url.rstrip("/")

        api_key_env = client_id_env = client_secret_env = None
        has_key = "api_key_env" in raw
        has_oauth = "client_id_env" in raw or "client_secret_env" in raw
        if has_key and has_oauth:
            self.error(
                where, "give either api_key_env or client_id_env + client_secret_env, not both"
            )
        elif has_key:
            api_key_env = self.env_name(f"{where}.api_key_env", raw["api_key_env"])
        elif has_oauth:
            for key in ("client_id_env", "client_secret_env"):
                if key not in raw:
                    self.error(
                        f"{where}.{key}", "missing: OAuth needs client_id_env and client_secret_env"
                    )
            if "client_id_env" in raw:
                client_id_env = self.env_name(f"{where}.client_id_env", raw["client_id_env"])
            if "client_secret_env" in raw:
                client_secret_env = self.env_name(
                    f"{where}.client_secret_env", raw["client_secret_env"]
                )
        elif not any(k in raw for k in TENANT_SECRETS):
            self.error(
                where,
                "no credentials: add api_key_env (an API key of a tenant admin) or "
                "client_id_env + client_secret_env (an OAuth M2M client)",
            )

        ca_bundle = None
        if raw.get("ca_bundle") is not None:
            if not isinstance(raw["ca_bundle"], str):
                self.error(f"{where}.ca_bundle", "must be a path to a PEM file")
            else:
                expanded = self.expand(f"{where}.ca_bundle", raw["ca_bundle"])
                if expanded is not None:
                    ca_path = (self.path.parent / expanded).resolve()
                    if not ca_path.is_file():
                        self.error(f"{where}.ca_bundle", f"file not found: {ca_path}")
                    ca_bundle = str(ca_path)

        overrides, refs = self.email(f"{where}.email", raw.get("email"))
        settings = {k: v for k, v in {**defaults, **overrides}.items() if v is not None}
        secret_env = {k: v for k, v in {**default_refs, **refs}.items() if v is not None}
        if len(self.errors) > start or url is None:
            return None
        return Tenant(
            name=str(name),
            url=url,
            email=settings,
            secret_env=secret_env,
            api_key_env=api_key_env,
            client_id_env=client_id_env,
            client_secret_env=client_secret_env,
            ca_bundle=ca_bundle,
        )


def _secret_input(key: str) -> str:
    return "email_password" if key == "password" else key


def parse(
    data: Any, path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> TenantsFile:
    """Validate a loaded YAML document; raises TenantsFileError listing every problem."""
    file_path = Path(path)
    check = _Validator(file_path, os.environ if environ is None else environ)
    if not isinstance(data, Mapping):
        raise TenantsFileError(f"{file_path}: must be a mapping with a `tenants:` section")
    for key in data:
        if key not in TOP_KEYS:
            check.unknown("(top level)", str(key), TOP_KEYS)

    project = data.get("project", DEFAULT_PROJECT)
    if not isinstance(project, str) or not _STACK_NAME.match(project):
        check.error("project", "must be a Pulumi project name (letters, digits, '-', '_', '.')")
        project = DEFAULT_PROJECT

    defaults, default_refs = check.email("defaults", data.get("defaults"))

    # Shape and levels here; names and settings against the packs' schemas once the
    # packs are known (fleet/policy_config.py, before any tenant runs).
    policy_config, problems = policy_settings.normalise(data.get("policy_config"))
    check.errors.extend(problems)

    tenants: list[Tenant] = []
    raw_tenants = data.get("tenants")
    if not isinstance(raw_tenants, Mapping) or not raw_tenants:
        check.error("tenants", "missing or empty: list at least one tenant by name")
    else:
        for name, raw in raw_tenants.items():
            tenant = check.tenant(name, raw, defaults, default_refs)
            if tenant is not None:
                tenants.append(tenant)

    if check.errors:
        lines = "\n".join(f"  - {e}" for e in check.errors)
        raise TenantsFileError(f"{file_path} is not a valid tenants file:\n{lines}")
    return TenantsFile(
        path=file_path,
        project=project,
        tenants=tuple(tenants),
        policy_config=policy_config,
    )


def load(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> TenantsFile:
    """Read and validate a tenants file."""
    file_path = Path(path)
    try:
        text = file_path.read_text()
    except OSError as exc:
        raise TenantsFileError(f"cannot read tenants file {file_path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TenantsFileError(f"{file_path} is not valid YAML: {exc}") from None
    return parse(data, file_path, environ)
