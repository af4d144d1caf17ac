"""One exception hierarchy for everything the Qlik API or its transport can do wrong.

Each error carries what Qlik said (HTTP status, its ``code`` and ``title``) and
ends with what the user should do about it. Messages are built from those fields
only: never from request headers, bodies or credentials. What a server says can
still hold a secret (a tenant that echoes the password it could not use), so the
server's text is redacted (redaction.py) before it enters a message, and
``redacted()`` scrubs an error again with the secrets a caller knows of: an error
can be logged, printed in a Pulumi diagnostic or shown in a traceback without
leaking a secret.
"""

from __future__ import annotations

from collections.abc import Iterable

from qlik_email_resource.redaction import redact


class QlikError(Exception):
    """Base class: something about a call to a Qlik tenant failed.

    ``summary`` says what happened, ``fix`` what to do; ``status``, ``code`` and
    ``title`` repeat Qlik's answer when there was one.
    """

    summary = "The Qlik API call failed"
    fix = ""

    def __init__(
        self,
        summary: str | None = None,
        *,
        fix: str | None = None,
        status: int | None = None,
        code: str | None = None,
        title: str | None = None,
        detail: str | None = None,
        operation: str | None = None,
    ) -> None:
        self.summary = summary or type(self).summary
        self.fix = type(self).fix if fix is None else fix
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.operation = operation
        super().__init__(self._message())

    def _message(self) -> str:
        text = self.summary
        if self.operation:
            text = f"{self.operation}: {text}"
        answer = [f"HTTP {self.status}"] if self.status is not None else []
        answer += [part for part in (self.code, self.title) if part]
        if answer:
            text += f" ({' '.join(answer)}"
            text += f"; {self.detail})" if self.detail else ")"
        if self.fix:
            text += f". {self.fix}."
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"title={self.title!r})"
        )

    def redacted(self, secrets: Iterable[str | None]) -> QlikError:
        """The same error (same class and fields) with every secret taken out of its text.

        Raise it ``from None``: a chained original would print its own text in the
        traceback that Pulumi shows.
        """
        clean = type(self).__new__(type(self))
        clean.__dict__.update(self.__dict__)
        for name in ("summary", "fix", "code", "title", "detail", "operation"):
            value = getattr(clean, name)
            if isinstance(value, str):
                setattr(clean, name, redact(value, secrets))
        Exception.__init__(clean, clean._message())
        return clean


class QlikConfigurationError(QlikError):
    """A setting the provider needs is missing or malformed (no HTTP call was made)."""

    summary = "The Qlik provider is not configured"


class QlikAuthenticationError(QlikError):
    summary = "The tenant rejected the credentials"
    fix = (
        "Check the API key (stack config qlik:apiKey, env QLIK_API_KEY or the resource's "
        "api_key) or the OAuth client (qlik:clientId / qlik:clientSecret): it may be "
        "mistyped, expired, revoked or issued for another tenant"
    )


class QlikPermissionError(QlikError):
    summary = "The credentials are valid but not allowed to manage email settings"
    fix = (
        "The API key's user (or the OAuth client) needs the TenantAdmin role on this tenant"
    )


class QlikNotFoundError(QlikError):
    summary = "The tenant has no such endpoint"
    fix = (
        "Check the tenant URL (qlik:tenantUrl / QLIK_TENANT_URL / tenant_url), e.g. "
        "https://your-tenant.eu.qlikcloud.com, with no path after the host"
    )


class QlikValidationError(QlikError):
    summary = "The tenant rejected the email configuration"
    fix = (
        "Qlik validates a configuration by connecting to the SMTP server: check "
        "server_address, server_port, security_type and the SMTP credentials"
    )


class QlikRateLimitedError(QlikError):
    summary = "The tenant kept answering 429 (rate limited) beyond the retry budget"
    fix = (
        "Qlik allows 100 writes and 1000 reads per minute per user; wait and run again, "
        "or raise the budget with qlik:maxRetries / QLIK_MAX_RETRIES"
    )


class QlikUnavailableError(QlikError):
    summary = "The tenant kept failing with a server error beyond the retry budget"
    fix = "Qlik Cloud may be degraded (see https://status.qlik.com); run again later"


class QlikTimeoutError(QlikError):
    summary = "The tenant did not answer in time"
    fix = (
        "Check the network path to the tenant, or raise qlik:readTimeout / QLIK_READ_TIMEOUT "
        "(a write waits while Qlik tests the SMTP server)"
    )


class QlikConnectionError(QlikError):
    summary = "Could not reach the tenant"
    fix = (
        "Check the tenant URL (qlik:tenantUrl), DNS and the proxy settings "
        "(HTTPS_PROXY / NO_PROXY)"
    )


class QlikTLSError(QlikError):
    summary = "The tenant's TLS certificate could not be verified"
    fix = (
        "If a proxy or private CA signs the certificate, point qlik:caBundle / "
        "QLIK_CA_BUNDLE (or REQUESTS_CA_BUNDLE) at its CA file; TLS verification "
        "is never turned off"
    )


class QlikPatchUnsupportedError(QlikError):
    """The tenant answered that PATCH is gone (405/410/404 on PATCH)."""

    summary = "The tenant no longer accepts PATCH on the email configuration"
    fix = "Set qlik:writeMethod to 'put' or 'auto' (auto switches to PUT by itself)"


class SmtpCheckError(QlikError):
    """verify-connection or send-test-email answered success=false."""

    summary = "The SMTP check failed"
    fix = "Check server_address, server_port, security_type, username and email_password"


_BY_STATUS: dict[int, type[QlikError]] = {
    400: QlikValidationError,
    401: QlikAuthenticationError,
    403: QlikPermissionError,
    404: QlikNotFoundError,
    422: QlikValidationError,
    429: QlikRateLimitedError,
}


def error_for_status(
    status: int,
    errors: Iterable[dict[str, object]] = (),
    *,
    operation: str | None = None,
    retries: int = 0,
    secrets: Iterable[str | None] = (),
) -> QlikError:
    """The typed error for a final (non-retried) HTTP status and Qlik's ``errors`` list.

    ``secrets`` are taken out of the server's text (in every escaped form) first.
    """
    secrets = tuple(secrets)
    first = next(iter(errors), {})
    code = _text(first.get("code"), secrets)
    title = _text(first.get("title"), secrets)
    detail = _text(first.get("detail"), secrets)
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = QlikUnavailableError if status >= 500 else QlikError
    summary = None
    if cls in (QlikRateLimitedError, QlikUnavailableError) and retries:
        summary = f"{cls.summary} ({retries} retries)"
    elif cls is QlikError:
        summary = f"The tenant answered HTTP {status}"
    return cls(
        summary,
        status=status,
        code=code,
        title=title,
        detail=detail,
        operation=operation,
    )


def _text(value: object, secrets: tuple[str | None, ...]) -> str | None:
    if value is None:
        return None
    # Redact before cutting: a cut could leave a secret's prefix the redaction misses.
    text = redact(str(value), secrets).strip()
    # Bound what a server can make us print: one line, a few hundred characters.
    return text.replace("\r", " ").replace("\n", " ")[:300] or None
