"""No secret outside a secret wrapper: gRPC responses, provider stderr at DEBUG, errors, state."""

from __future__ import annotations

import base64
import pickle
from collections.abc import Callable

import dill
import grpc
import pytest
from pulumi.runtime.proto import provider_pb2 as P

from qlik_email_resource.emulator import Emulator
from qlik_email_resource.offline.grpc_servers import ProviderServer
from qlik_email_resource.offline.provider_driver import ProviderDriver, serialized_provider
from qlik_email_resource.provider import TenantEmailConfigProvider
from tests.support.provider import basic_props, clear_text, is_secret

PASSWORD = "Sm7p-Pa55word-LEAK-CANARY"
NEW_PASSWORD = "R0tated-Pa55word-LEAK-CANARY"
M365_SECRET = "M365-Client-Secret-LEAK-CANARY"


def scan(texts: list[str], secrets: list[str]) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"secret leaked into: {text[:200]}..."


def test_no_secret_in_any_response_log_or_error(
    server_factory: Callable[..., ProviderServer], qlik_emulator: Emulator
) -> None:
    demo, acme = qlik_emulator.tenant("demo"), qlik_emulator.tenant("acme")
    server = server_factory({"qlik:tenantUrl": demo.url, "qlik:apiKey": demo.api_key},
                            QLIK_LOG_LEVEL="DEBUG")
    driver = ProviderDriver(server)
    qlik_emulator.add_smtp_user("canary-user", PASSWORD)
    creds = {"tenant_url": acme.url, "api_key": acme.api_key}
    props = basic_props(qlik_emulator, username="canary-user", email_password=PASSWORD,
                        verify_connection=True, test_email_recipient="ops@example.com")
    # the whole lifecycle, on the stack's tenant and with a per-resource key
    for extra in ({}, creds):
        id_, _, outs = driver.check_and_create({**props, **extra})
        assert is_secret(outs, "email_password")
        qlik_emulator.add_smtp_user("canary-user", NEW_PASSWORD)
        news = driver.checked({**props, **extra, "email_password": NEW_PASSWORD})
        driver.diff(id_, outs, news)
        updated = driver.update(id_, outs, news)
        read = driver.read(id_, updated.properties, news)
        assert is_secret(read.inputs, "email_password")
        driver.delete(id_, read.properties)
        qlik_emulator.add_smtp_user("canary-user", PASSWORD)
    # Microsoft365 with its client secret
    m365 = {"service_provider": "Microsoft365", "client_id": "cid-1", "client_secret": M365_SECRET,
            "provider_tenant_id": "ptid-1", "email_address": "alerts@example.com"}
    id_, _, outs = driver.check_and_create(m365)
    assert is_secret(outs, "client_secret")
    # failures: wrong SMTP password, wrong API key, unknown tenant
    for bad in (
        {**props, "email_password": PASSWORD + "-wrong"},
        {**props, "tenant_url": demo.url, "api_key": acme.api_key},
        {**props, "tenant_url": demo.url.replace("/t/demo", "/t/none"), "api_key": demo.api_key},
    ):
        with pytest.raises(grpc.RpcError):
            driver.check_and_create(bad)
    assert len(driver.errors) == 3
    secrets = [PASSWORD, NEW_PASSWORD, M365_SECRET, demo.api_key, acme.api_key]
    responses = [clear_text(r) for r in driver.responses]
    assert len(responses) > 15
    stderr = server.stderr()
    assert "DEBUG" in stderr and "PATCH" in stderr  # the debug log really ran
    scan(responses + driver.errors + [stderr], secrets)


def test_oauth_secret_and_token_never_logged(
    server_factory: Callable[..., ProviderServer], qlik_emulator: Emulator
) -> None:
    demo = qlik_emulator.tenant("demo")
    server = server_factory({"qlik:tenantUrl": demo.url, "qlik:clientId": demo.client_id,
                             "qlik:clientSecret": demo.client_secret},
                            QLIK_API_KEY="", QLIK_LOG_LEVEL="DEBUG")
    driver = ProviderDriver(server)
    id_, _, outs = driver.check_and_create(basic_props(qlik_emulator))
    qlik_emulator.expire_tokens("demo")
    driver.delete(id_, outs)
    scan([server.stderr(), *(clear_text(r) for r in driver.responses)],
         [demo.client_secret, qlik_emulator.smtp_user[1]])


def test_serialized_provider_is_small_and_credential_free(
    monkeypatch: pytest.MonkeyPatch, qlik_emulator: Emulator
) -> None:
    demo = qlik_emulator.tenant("demo")
    monkeypatch.setenv("QLIK_API_KEY", demo.api_key)
    monkeypatch.setenv("QLIK_CLIENT_SECRET", demo.client_secret)
    provider = TenantEmailConfigProvider()
    # even a provider that has been configured and used pickles to its class only
    from pulumi.dynamic import Config, ConfigureRequest

    provider.configure(ConfigureRequest(Config({"qlik:apiKey": demo.api_key,
                                                "qlik:tenantUrl": demo.url}, "project")))
    from pulumi.dynamic.dynamic import serialize_provider
    from pulumi.runtime._serialization import _serialize

    used, contains_secrets = _serialize(True, serialize_provider, provider)
    fresh = serialized_provider()
    for encoded in (used, fresh):
        raw = base64.b64decode(encoded)
        assert len(encoded) < 1024
        for secret in (demo.api_key, demo.client_secret, demo.url):
            assert secret.encode() not in raw
        assert isinstance(dill.loads(raw), TenantEmailConfigProvider)
        # by reference: the module and class name, no code
        assert b"qlik_email_resource.provider" in raw
        assert b"TenantEmailConfigProvider" in raw
    assert used == fresh
    assert contains_secrets is False
    assert pickle.loads(base64.b64decode(fresh)).__dict__ == {}


def test_diff_hides_nothing_but_names_password_change(
    driver: ProviderDriver, qlik_emulator: Emulator
) -> None:
    id_, _, outs = driver.check_and_create(basic_props(qlik_emulator))
    news = driver.checked(basic_props(qlik_emulator, email_password="another-one-123"))
    diff = driver.diff(id_, outs, news)
    assert diff.changes == P.DiffResponse.DIFF_SOME
    assert "another-one-123" not in str(diff)
