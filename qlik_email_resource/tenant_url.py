"""Tenant URLs: the one spelling of a tenant's URL, and why a URL cannot be one.

Pure functions, no I/O: ``mapping`` (check and diff) and ``settings`` (which
tenant a call goes to) both use them, so both agree on what one tenant is.
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit, urlunsplit

_DEFAULT_PORTS = {"https": 443, "http": 80}


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url.strip())
        _ = parts.port
    except ValueError:  # "http://[" or a port that is not a number
        return None
    return parts if parts.scheme and parts.hostname else None


def _netloc(parts: SplitResult) -> str:
    host = parts.hostname or ""  # lowercased by urlsplit
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    return host if port is None or port == _DEFAULT_PORTS.get(parts.scheme) else f"{host}:{port}"


def normalize_tenant_url(url: str) -> str:
    """The one spelling of a tenant URL, the way the policy pack compares them.

    Scheme and host lowercased, the default port dropped, no trailing slash; a
    path prefix keeps its case: ``HTTPS://T.eu.QlikCloud.com:443/`` →
    ``https://t.eu.qlikcloud.com``. So another spelling of the same tenant is never
    a change (and never a replace). What is not a URL comes back stripped, for
    ``tenant_url_problem`` to report.
    """
    parts = _split(url)
    if parts is None or parts.username is not None or parts.password is not None:
        return url.strip().rstrip("/")
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme, _netloc(parts), path, parts.query, parts.fragment))


def _shown(url: str) -> str:
    # Only the parsed pieces: a key pasted into the query or a user:password@ never
    # reaches a message.
    parts = _split(url)
    if parts is None:
        return repr(url)
    return repr(f"{parts.scheme}://{_netloc(parts)}{parts.path}")


def tenant_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a tenant URL, or None when it can."""
    parts = _split(url)
    if parts is None or parts.scheme not in ("https", "http"):
        return (
            f"{_shown(url)} is not a tenant URL: give the full https URL, "
            "e.g. https://your-tenant.eu.qlikcloud.com"
        )
    if parts.username is not None or parts.password is not None:
        return (
            f"{_shown(url)} carries a user name or password before the host: remove it "
            "(the API key goes in api_key or qlik:apiKey, as a secret)"
        )
    if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        return f"{_shown(url)} uses plain http: Qlik Cloud tenants are https only"
    if parts.query or parts.fragment:
        return f"{_shown(url)} has a query or fragment: give the tenant URL only"
    if parts.path.rstrip("/").endswith("/api/v1") or "/api/" in parts.path:
        return f"{_shown(url)} includes an API path: give the tenant URL only, without /api/v1"
    return None
