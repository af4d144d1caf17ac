"""The TenantEmailConfig lifecycle, one Transports API call sequence per step.

========  =============================================================
check     validate + normalise (no HTTP)
diff      compare state with inputs (no HTTP)
create    GET (adopt what is there), PUT the full config, GET
update    PATCH the changed fields (or PUT), GET
read      GET
delete    GET; DELETE only the config this resource last wrote (404 = gone)
========  =============================================================

The instance is pickled into Pulumi state by reference and holds nothing
there: credentials are resolved at call time (settings.py) from the resource's
inputs, the provider configuration that ``configure()`` receives inside the
provider process, or that process's environment.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from qlik_email_resource import mapping, secret_wire
from qlik_email_resource.errors import (
    QlikError,
    QlikNotFoundError,
    QlikPatchUnsupportedError,
    SmtpCheckError,
)
from qlik_email_resource.redaction import redact
from qlik_email_resource.settings import PROVIDER_CONFIG_KEYS, Settings, resolve

if TYPE_CHECKING:
    from qlik_email_resource.client import QlikClient

log = logging.getLogger("qlik_email_resource.provider")

# A tenant that answered "PATCH is gone" is written with PUT for the rest of the
# process (one provider process serves one `pulumi up`).
_PATCH_GONE: set[str] = set()
_PATCH_GONE_STATUSES = (404, 405, 410)
TEST_EMAIL_SUBJECT = "Qlik Cloud email configuration test"
TEST_EMAIL_BODY = (
    "This message was sent by qlik-email-resource to check the tenant's email configuration."
)


def _secret(value: Any) -> Any:
    """Mark a value secret on the wire, so responses never carry it in the clear."""
    if value is None:
        return None
    return secret_wire.wrap(value)


def _mark_secrets(props: dict[str, Any]) -> dict[str, Any]:
    """``props`` with every secret input marked secret, for a response to the engine."""
    return {
        key: _secret(value) if key in mapping.SECRET_INPUTS else value
        for key, value in props.items()
    }


def _plain(props: dict[str, Any]) -> dict[str, Any]:
    return {
        key: mapping.unwrap_secret(value) for key, value in props.items() if key != "__provider"
    }


class TenantEmailConfigProvider(ResourceProvider):
    """Dynamic provider for ``qlik:TenantEmailConfig``. Holds no credential when pickled."""

    # Nothing secret is captured (tests/provider check the bytes), so the
    # serialized provider need not be a secret that hides every diff.
    serialize_as_secret_always = False

    def __getstate__(self) -> dict[str, Any]:
        # Whatever configure() or a call stored (config, sessions, tokens) stays in
        # this process: the pickle in state is the class reference and nothing else.
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def configure(self, req: ConfigureRequest) -> None:
        # Runs inside the provider process only, after unpickling: what is
        # stored here never reaches state.
        config = {key: req.config.get(key) for key in PROVIDER_CONFIG_KEYS}
        self._config = {key: value for key, value in config.items() if value is not None}
        level = os.environ.get("QLIK_LOG_LEVEL")
        if level:
            logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s")

    # --- plumbing ---------------------------------------------------------------------

    def _settings(self, props: dict[str, Any]) -> Settings:
        return resolve(props, getattr(self, "_config", {}))

    def _client(self, props: dict[str, Any]) -> QlikClient:
        from qlik_email_resource.client import QlikClient

        settings = self._settings(props)
        clients: dict[str, QlikClient] = self.__dict__.setdefault("_clients", {})
        lock: threading.Lock = self.__dict__.setdefault("_lock", threading.Lock())
        with lock:
            client = clients.get(settings.cache_key())
            if client is None:
                client = clients[settings.cache_key()] = QlikClient(settings)
        return client

    def _known_secrets(self, *props: Mapping[str, Any]) -> list[str]:
        """Every secret this call could see: the resources' secret inputs, the stack's
        and the environment's credentials, and the tokens of the clients in use."""
        found: list[Any] = [
            mapping.unwrap_secret(values.get(key))
            for values in props
            for key in mapping.SECRET_INPUTS
        ]
        config = getattr(self, "_config", {})
        found += [config.get("qlik:apiKey"), config.get("qlik:clientSecret")]
        found += [os.environ.get("QLIK_API_KEY"), os.environ.get("QLIK_CLIENT_SECRET")]
        lock: threading.Lock = self.__dict__.setdefault("_lock", threading.Lock())
        with lock:
            clients = list(self.__dict__.get("_clients", {}).values())
        for client in clients:
            found += client.secrets()
        return [value for value in found if isinstance(value, str) and value]

    @contextmanager
    def _redacting(self, *props: Mapping[str, Any]) -> Iterator[None]:
        """Errors leave a lifecycle call with no secret in their text, whatever the
        server put there (the client already redacts its own credentials; this adds
        the secrets of the resource in hand, e.g. an SMTP server's echo)."""
        try:
            yield
        except QlikError as exc:
            # from None: Pulumi shows the whole traceback, chained exceptions included.
            raise exc.redacted(self._known_secrets(*props)) from None
        except Exception as exc:
            text = str(exc)
            clean = redact(text, self._known_secrets(*props))
            if clean == text:
                raise
            raise RuntimeError(f"{type(exc).__name__}: {clean}") from None

    def _tenant_of(self, props: dict[str, Any]) -> str | None:
        try:
            return self._settings(props).tenant_url
        except QlikError:
            return None

    # --- lifecycle --------------------------------------------------------------------

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs, problems = mapping.normalize(news)
        # A reason may quote a value, and a secret pasted into the wrong field (a
        # password as server_address) would be quoted with it.
        secrets = self._known_secrets(olds, news)
        failures = [CheckFailure(p.property, redact(p.reason, secrets)) for p in problems]
        return CheckResult(_mark_secrets(inputs), failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        olds, news = _plain(olds), _plain(news)
        result = mapping.diff(
            olds, news, old_tenant=self._tenant_of(olds), new_tenant=self._tenant_of(news)
        )
        return DiffResult(
            changes=bool(result.changes),
            replaces=result.replaces,
            stables=["tenant_id"],
            # A replace means another tenant URL. The engine's default order (create
            # the new, then delete the old) would, when both URLs reach the same tenant
            # (127.0.0.1 and localhost), delete the singleton the new one just wrote.
            # Deleting first is right for a real move too: the old tenant is let go.
            delete_before_replace=bool(result.replaces),
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        desired = _plain(props)
        with self._redacting(desired):
            return self._create(desired)

    def _create(self, desired: dict[str, Any]) -> CreateResult:
        client = self._client(desired)
        existing = client.get_config()
        if mapping.is_configured(existing):
            # The config is a singleton per tenant: adopt it (there is no `import`
            # for Python dynamic resources) and overwrite it with the desired one.
            log.info("adopting the existing email configuration of %s", client.settings.tenant_url)
        self._write_full(client, desired)
        answer = client.get_config()
        self._after_apply(client, desired)
        outs = mapping.outputs(desired, answer)
        return CreateResult(_tenant_id(answer, client), _mark_secrets(outs))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        olds, desired = _plain(olds), _plain(news)
        with self._redacting(olds, desired):
            return self._update(olds, desired)

    def _update(self, olds: dict[str, Any], desired: dict[str, Any]) -> UpdateResult:
        client = self._client(desired)
        ops = mapping.expand_patch(olds, desired)
        changed = mapping.changed_fields(olds, desired)
        if changed:
            method = self._write_method(client, ops)
            if method == "patch" and ops is not None:
                try:
                    self._patch(client, ops)
                except QlikPatchUnsupportedError as exc:
                    if client.settings.write_method == "patch":
                        raise
                    log.warning(
                        "%s answered %s to PATCH: switching to PUT for this tenant",
                        client.settings.tenant_url, exc.status,
                    )
                    _PATCH_GONE.add(client.settings.tenant_url)
                    self._put(client, desired)
            else:
                self._put(client, desired)
        answer = client.get_config()
        self._after_apply(client, desired)
        return UpdateResult(_mark_secrets(mapping.outputs(desired, answer)))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        old = _plain(props)
        with self._redacting(old):
            return self._read(id_, old)

    def _read(self, id_: str, old: dict[str, Any]) -> ReadResult:
        client = self._client(old)
        answer = client.get_config()
        if not mapping.is_configured(answer):
            # Deleted outside Pulumi: an empty id tells the engine the resource is gone.
            return ReadResult("", {}, {})
        outs = mapping.outputs(old, answer)
        inputs = mapping.read_inputs(old, answer)
        return ReadResult(
            _tenant_id(answer, client) or id_, _mark_secrets(outs), _mark_secrets(inputs)
        )

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        state = _plain(props)
        state.setdefault("tenant_id", id_)
        with self._redacting(state):
            self._delete(state)

    def _delete(self, state: dict[str, Any]) -> None:
        client = self._client(state)
        tenant = client.settings.tenant_url
        answer = client.get_config()
        if not mapping.is_configured(answer):
            log.info("%s had no email configuration left to delete", tenant)
            return
        foreign = mapping.not_written_by(state, answer)
        if foreign:
            # Leave it and succeed, rather than fail. The engine deletes a replaced
            # resource after creating its successor, so a failure here would keep the
            # old resource pending deletion and fail every later `up` while the config
            # belongs to the new resource. Leaving a configuration loses nothing;
            # deleting one that this resource did not write would.
            log.warning(
                "%s: the email configuration was left in place, not deleted, because %s. "
                "Nothing to do if another resource manages it now; to remove it, delete it "
                "in the Qlik console, or declare the resource again (pulumi up adopts it) "
                "and destroy it.",
                tenant, foreign,
            )
            return
        # [I] Qlik offers no conditional DELETE (no ETag/If-Match): a write between this
        # GET and the DELETE cannot be told apart.
        if not client.delete_config():
            log.info("%s had no email configuration left to delete", tenant)

    # --- helpers ----------------------------------------------------------------------

    def _write_method(self, client: QlikClient, ops: list[dict[str, Any]] | None) -> str:
        forced = client.settings.write_method
        if forced == "put" or ops is None:
            return "put"
        if forced == "patch":
            return "patch"
        return "put" if client.settings.tenant_url in _PATCH_GONE else "patch"

    def _write_full(self, client: QlikClient, desired: dict[str, Any]) -> None:
        if client.settings.write_method == "patch":
            ops = mapping.expand_patch_full(desired)
            if ops is not None:
                self._patch(client, ops)
                return
        self._put(client, desired)

    def _patch(self, client: QlikClient, ops: list[dict[str, Any]]) -> None:
        try:
            client.patch_config(ops)
        except QlikError as exc:
            if exc.status not in _PATCH_GONE_STATUSES:
                raise
            raise QlikPatchUnsupportedError(
                status=exc.status, code=exc.code, title=exc.title,
                operation="update email config (PATCH)",
            ) from None

    def _put(self, client: QlikClient, desired: dict[str, Any]) -> None:
        client.put_config(mapping.expand_put(desired))

    def _after_apply(self, client: QlikClient, desired: dict[str, Any]) -> None:
        secrets = self._known_secrets(desired)
        if desired.get("verify_connection"):
            result = client.verify_connection()
            if not result.get("success", False):
                raise SmtpCheckError(
                    "The tenant saved the configuration but could not log in to the SMTP "
                    f"server: {_smtp_message(result, secrets)}",
                    operation="verify connection",
                )
        recipient = desired.get("test_email_recipient")
        if recipient:
            result = client.send_test_email(recipient, TEST_EMAIL_SUBJECT, TEST_EMAIL_BODY)
            if not result.get("success", False):
                raise SmtpCheckError(
                    f"The test email to {recipient} was not sent: "
                    f"{_smtp_message(result, secrets)}",
                    operation="send test email",
                )


def _smtp_message(result: dict[str, Any], secrets: list[str]) -> str:
    # Redact before cutting: a cut through a secret would leave a prefix that no
    # later redaction recognises.
    message = redact(str(result.get("message") or "no message from the SMTP server"), secrets)
    message = message.replace("\r", " ").replace("\n", " ")[:300]
    code = result.get("smtpResponseCode")
    if result.get("connectionFailed"):
        message = f"connection failed: {message}"
    return f"{message} (SMTP {code})" if code else message


def _tenant_id(answer: dict[str, Any], client: QlikClient) -> str:
    tenant_id = answer.get("tenantId")
    if isinstance(tenant_id, str) and tenant_id:
        return tenant_id
    raise QlikNotFoundError(
        "The tenant did not report its tenantId after the write",
        fix="Check that qlik:tenantUrl points at a Qlik Cloud tenant",
    )
