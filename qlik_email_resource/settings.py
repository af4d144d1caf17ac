"""Where the provider's credentials and knobs come from.

First found wins, per setting: the resource's own input (``tenant_url``,
``api_key``), then the provider configuration (stack config ``qlik:*``, handed
to ``configure()`` inside the provider process), then the environment of the
provider process. Nothing here is ever pickled into Pulumi state: the provider
resolves settings at call time.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qlik_email_resource.errors import QlikConfigurationError
from qlik_email_resource.tenant_url import normalize_tenant_url, tenant_url_problem

WRITE_METHODS = ("auto", "patch", "put")

# provider-config key -> environment variable(s), in order of preference
_SOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "tenant_url": ("qlik:tenantUrl", ("QLIK_TENANT_URL",)),
    "api_key": ("qlik:apiKey", ("QLIK_API_KEY",)),
    "client_id": ("qlik:clientId", ("QLIK_CLIENT_ID",)),
    "client_secret": ("qlik:clientSecret", ("QLIK_CLIENT_SECRET",)),
    "ca_bundle": ("qlik:caBundle", ("QLIK_CA_BUNDLE", "REQUESTS_CA_BUNDLE")),
    "write_method": ("qlik:writeMethod", ("QLIK_WRITE_METHOD",)),
    "max_retries": ("qlik:maxRetries", ("QLIK_MAX_RETRIES",)),
    "backoff_factor": ("qlik:backoffFactor", ("QLIK_BACKOFF_FACTOR",)),
    "retry_after_max": ("qlik:retryAfterMax", ("QLIK_RETRY_AFTER_MAX",)),
    "connect_timeout": ("qlik:connectTimeout", ("QLIK_CONNECT_TIMEOUT",)),
    "read_timeout": ("qlik:readTimeout", ("QLIK_READ_TIMEOUT",)),
}

PROVIDER_CONFIG_KEYS = tuple(key for key, _ in _SOURCES.values())


@dataclass(frozen=True)
class RetryPolicy:
    """How hard the client tries before it gives up (see client.py)."""

    max_retries: int = 5
    backoff_factor: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 60.0
    connect_timeout: float = 10.0
    # A write makes Qlik dial the SMTP server before it answers: allow for that.
    read_timeout: float = 60.0


@dataclass(frozen=True)
class Settings:
    """Resolved connection settings for one tenant. Secrets never show in ``repr``."""

    tenant_url: str
    api_key: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    ca_bundle: str | None = None
    write_method: str = "auto"
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def auth_kind(self) -> str:
        return "api_key" if self.api_key else "oauth"

    def cache_key(self) -> str:
        """Identifies a client: same tenant and same credential → same session and token."""
        digest = hashlib.sha256(
            "\0".join(
                str(part)
                for part in (
                    self.tenant_url, self.api_key, self.client_id, self.client_secret,
                    self.ca_bundle, self.retry,
                )
            ).encode()
        ).hexdigest()
        return digest[:24]


def _pick(
    name: str,
    resource: Mapping[str, Any],
    config: Mapping[str, Any],
    env: Mapping[str, str],
) -> Any:
    if resource.get(name) not in (None, ""):
        return resource[name]
    config_key, env_keys = _SOURCES[name]
    if config.get(config_key) not in (None, ""):
        return config[config_key]
    for key in env_keys:
        if env.get(key):
            return env[key]
    return None


def _number(name: str, raw: Any, default: float) -> float:
    if raw is None:
        return default
    try:
        value = float(raw)
    except (TypeError, ValueError):
        config_key, env_keys = _SOURCES[name]
        raise QlikConfigurationError(
            f"{config_key} / {env_keys[0]} must be a number, got {raw!r}",
            fix="Set it to a plain number",
        ) from None
    if value < 0:
        raise QlikConfigurationError(
            f"{_SOURCES[name][0]} must not be negative", fix="Set it to 0 or more"
        )
    return value


def resolve(
    resource: Mapping[str, Any],
    config: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Settings for one call: resource inputs → provider config → environment."""
    env = os.environ if env is None else env
    # Only the resource may name a tenant and its key together: a per-resource
    # tenant_url with the stack's api_key would send one tenant's key to another.
    own_tenant = resource.get("tenant_url") not in (None, "")
    tenant_url = _pick("tenant_url", resource, config, env)
    if not tenant_url:
        raise QlikConfigurationError(
            "No tenant URL is set",
            fix=(
                "Set stack config qlik:tenantUrl (pulumi config set qlik:tenantUrl "
                "https://your-tenant.eu.qlikcloud.com), env QLIK_TENANT_URL, or the "
                "resource's tenant_url"
            ),
        )
    problem = tenant_url_problem(str(tenant_url))
    if problem:
        raise QlikConfigurationError(problem, fix="Fix qlik:tenantUrl or tenant_url")
    if own_tenant and resource.get("api_key"):
        api_key, client_id, client_secret = resource["api_key"], None, None
    elif own_tenant and normalize_tenant_url(str(tenant_url)) != normalize_tenant_url(
        str(_pick("tenant_url", {}, config, env) or "")
    ):
        raise QlikConfigurationError(
            f"tenant_url {normalize_tenant_url(str(tenant_url))} is not the stack's tenant "
            "and the resource has no api_key",
            fix=(
                "Pass that tenant's own key as the resource's api_key (a secret): the "
                "stack's credentials are never sent to another tenant"
            ),
        )
    else:
        api_key = _pick("api_key", resource, config, env)
        client_id = _pick("client_id", {}, config, env)
        client_secret = _pick("client_secret", {}, config, env)
    if not api_key and not (client_id and client_secret):
        raise QlikConfigurationError(
            f"No credentials for {normalize_tenant_url(str(tenant_url))}",
            fix=(
                "Set an API key (pulumi config set --secret qlik:apiKey ..., env "
                "QLIK_API_KEY, or the resource's api_key) or an OAuth client "
                "(qlik:clientId and qlik:clientSecret)"
            ),
        )
    write_method = str(_pick("write_method", {}, config, env) or "auto").strip().lower()
    if write_method not in WRITE_METHODS:
        raise QlikConfigurationError(
            f"qlik:writeMethod is {write_method!r}",
            fix="Set it to one of: auto (default), patch, put",
        )
    defaults = RetryPolicy()
    retries = _number("max_retries", _pick("max_retries", {}, config, env), defaults.max_retries)
    retry = RetryPolicy(
        max_retries=int(retries),
        backoff_factor=_number(
            "backoff_factor", _pick("backoff_factor", {}, config, env), defaults.backoff_factor
        ),
        retry_after_max=_number(
            "retry_after_max", _pick("retry_after_max", {}, config, env),
            defaults.retry_after_max,
        ),
        connect_timeout=_number(
            "connect_timeout", _pick("connect_timeout", {}, config, env),
            defaults.connect_timeout,
        ),
        read_timeout=_number(
            "read_timeout", _pick("read_timeout", {}, config, env), defaults.read_timeout
        ),
    )
    ca_bundle = _pick("ca_bundle", {}, config, env)
    if ca_bundle and not os.path.exists(str(ca_bundle)):
        raise QlikConfigurationError(
            f"The CA bundle {ca_bundle!r} does not exist",
            fix="Point qlik:caBundle / QLIK_CA_BUNDLE at a PEM file of CA certificates",
        )
    return Settings(
        tenant_url=normalize_tenant_url(str(tenant_url)),
        api_key=str(api_key) if api_key else None,
        client_id=str(client_id) if client_id and not api_key else None,
        client_secret=str(client_secret) if client_secret and not api_key else None,
        ca_bundle=str(ca_bundle) if ca_bundle else None,
        write_method=write_method,
        retry=retry,
    )
