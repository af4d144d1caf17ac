"""Every failure a user can cause, through the real provider server: one clear message each.

Also: retries within and beyond the budget, OAuth token expiry, write-method override.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from pulumi.runtime.proto import provider_pb2 as P

from qlik_email_resource.emulator import Emulator
from qlik_email_resource.offline.grpc_servers import ProviderServer
from qlik_email_resource.offline.provider_driver import ProviderDriver
from tests.support.provider import basic_props, calls, last_line, plain, start_server

GET, PUT, PATCH = "GET", "PUT", "PATCH"


def failure(driver: ProviderDriver, props: dict[str, object]) -> str:
    with pytest.raises(grpc.RpcError) as info:
        driver.check_and_create(props)
    return str(info.value.details())


# --- check: all problems at once, no HTTP -----------------------------------------------


def test_check_reports_every_problem_at_once(
    driver: ProviderDriver, qlik_emulator: Emulator
) -> None:
    response = driver.check({
        "server_address": "smtp://mail.example.com",
        "server_port": 70000.0,
        "security_type": "tls",
        "email_address": "not-an-address",
        "username": "bot",
        "serverPort": 587,
    })
    problems = {f.property: f.reason for f in response.failures}
    assert set(problems) == {
        "server_address", "server_port", "security_type", "email_address", "email_password",
        "serverPort",
    }
    assert "drop the scheme" in problems["server_address"]
    assert "1 to 65535" in problems["server_port"]
    assert "'SSL/TLS'" in problems["security_type"] and "'StartTLS'" in problems["security_type"]
    assert "name@example.com" in problems["email_address"]
    assert "required when username" in problems["email_password"]
    assert "'server_port'" in problems["serverPort"]
    assert calls(qlik_emulator) == []


def test_check_refuses_bad_hosts_and_control_characters_without_http(
    driver: ProviderDriver, qlik_emulator: Emulator
) -> None:
    id_, inputs, outs = driver.check_and_create(basic_props(qlik_emulator))
    qlik_emulator.clear_requests()
    response = driver.check(basic_props(
        qlik_emulator, server_address="999.999.999.999", sender_name="Qlik\r\nBcc: x@evil.test",
        email_address="qlik\x00@example.com", username="bot\nuser",
    ), olds=inputs)
    problems = {f.property: f.reason for f in response.failures}
    assert set(problems) == {"server_address", "sender_name", "email_address", "username"}
    assert "not an IPv4 address" in problems["server_address"]
    for field in ("sender_name", "email_address", "username"):
        assert problems[field].startswith(field) and "control character" in problems[field]
    driver.diff(id_, outs, response.inputs)
    assert calls(qlik_emulator) == []


def test_check_normalises_port_float_and_case(driver: ProviderDriver) -> None:
    response = driver.check({
        "server_address": " smtp.example.com ", "server_port": 587.0,
        "security_type": "starttls", "email_address": "a@example.com",
    })
    assert not response.failures
    state = plain(response.inputs)
    assert state["server_port"] == 587 and isinstance(state["server_port"], float | int)
    assert state["security_type"] == "StartTLS"
    assert state["server_address"] == "smtp.example.com"
    assert state["service_provider"] == "BasicAuth"


def test_check_suggests_near_misses(driver: ProviderDriver) -> None:
    response = driver.check({
        "server_address": "smtp.example.com", "server_port": 465, "security_type": "ssl",
        "email_address": "a@example.com", "service_provider": "SMTP", "smtp_port": 1,
    })
    problems = {f.property: f.reason for f in response.failures}
    assert "use 'SSL/TLS'" in problems["security_type"]
    assert "'BasicAuth'" in problems["service_provider"]
    assert "Did you mean 'server_port'" in problems["smtp_port"]


# --- API errors: typed, with Qlik's code and the fix --------------------------------------


def test_wrong_api_key(driver: ProviderDriver, qlik_emulator: Emulator) -> None:
    demo = qlik_emulator.tenant("demo")
    text = last_line(failure(driver, basic_props(
        qlik_emulator, tenant_url=demo.url, api_key="not-the-key-0123456789")))
    assert "QlikAuthenticationError" in text
    assert "HTTP 401" in text and "qlik:apiKey" in text


def test_non_admin_key(driver: ProviderDriver, qlik_emulator: Emulator) -> None:
    demo = qlik_emulator.tenant("demo")
    text = last_line(failure(driver, basic_props(
        qlik_emulator, tenant_url=demo.url, api_key=demo.viewer_api_key)))
    assert "QlikPermissionError" in text
    assert "HTTP 403 ROLECHECK-1 Must be a tenant admin" in text and "TenantAdmin" in text


def test_unknown_tenant(driver: ProviderDriver, qlik_emulator: Emulator) -> None:
    demo = qlik_emulator.tenant("demo")
    wrong = demo.url.replace("/t/demo", "/t/nosuchtenant")
    text = last_line(failure(driver, basic_props(
        qlik_emulator, tenant_url=wrong, api_key=demo.api_key)))
    assert "QlikNotFoundError" in text and "HTTP 404" in text and "Check the tenant URL" in text


def test_smtp_rejects_credentials(driver: ProviderDriver, qlik_emulator: Emulator) -> None:
    text = last_line(failure(driver, basic_props(qlik_emulator, email_password="wrong-pw")))
    assert "QlikValidationError" in text and "HTTP 400 INPUTCHECK-1" in text
    assert "535" in text  # the SMTP server's own answer
    assert "wrong-pw" not in text


def test_verify_connection_failure_names_smtp_message(
    driver: ProviderDriver, qlik_emulator: Emulator
) -> None:
    id_, _, outs = driver.check_and_create(basic_props(qlik_emulator))
    # the console breaks the server name; verify_connection catches it on the next apply
    news = driver.checked(basic_props(
        qlik_emulator, server_address="smtp.nowhere.invalid", verify_connection=True))
    with pytest.raises(grpc.RpcError) as info:
        driver.update(id_, outs, news)
    text = last_line(str(info.value.details()))
    assert "SmtpCheckError" in text and "connection failed" in text and ".invalid" in text


def test_missing_credentials(server_factory: Callable[..., ProviderServer],
                             qlik_emulator: Emulator) -> None:
    server = server_factory({}, QLIK_API_KEY="", QLIK_TENANT_URL="")
    text = last_line(failure(ProviderDriver(server), basic_props(qlik_emulator)))
    assert "No tenant URL is set" in text and "qlik:tenantUrl" in text
    server2 = server_factory({"qlik:tenantUrl": qlik_emulator.tenant("demo").url},
                             QLIK_API_KEY="")
    text = last_line(failure(ProviderDriver(server2), basic_props(qlik_emulator)))
    assert "No credentials for" in text and "qlik:apiKey" in text


def test_tls_failure_without_ca_bundle(server_factory: Callable[..., ProviderServer],
                                       qlik_emulator: Emulator) -> None:
    demo = qlik_emulator.tenant("demo")
    # QLIK_CA_BUNDLE empty: the system bundle does not know the emulator's CA
    server = server_factory({"qlik:tenantUrl": demo.url, "qlik:apiKey": demo.api_key},
                            QLIK_CA_BUNDLE="")
    text = last_line(failure(ProviderDriver(server), basic_props(qlik_emulator)))
    assert "QlikTLSError" in text and "qlik:caBundle" in text
    assert "certificate verify failed" in text.lower() or "CERTIFICATE_VERIFY_FAILED" in text


def test_read_timeout(qlik_emulator_factory: Callable[..., Emulator]) -> None:
    # An emulator of its own: the slow answers finish after the test and must not
    # land in the shared emulator's request log.
    emu = qlik_emulator_factory(tenants=("demo",))
    demo = emu.tenant("demo")
    server = start_server(emu, {"qlik:tenantUrl": demo.url, "qlik:apiKey": demo.api_key},
                          QLIK_READ_TIMEOUT="0.2", QLIK_MAX_RETRIES="1")
    try:
        emu.add_fault("demo", "latency", seconds=1.0, count=2)
        text = last_line(failure(ProviderDriver(server), basic_props(emu)))
    finally:
        server.stop()
    assert "QlikTimeoutError" in text and "did not answer within" in text
    assert "qlik:readTimeout" in text


# --- retries ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_bursts_within_the_retry_budget_succeed(
    driver: ProviderDriver, qlik_emulator: Emulator, status: int
) -> None:
    qlik_emulator.add_fault("demo", "status", status=status, count=3, retry_after=1)
    id_, _, _ = driver.check_and_create(basic_props(qlik_emulator))
    assert id_ == qlik_emulator.tenant("demo").tenant_id
    log = calls(qlik_emulator)
    assert [c[2] for c in log[:4]] == [status, status, status, 200]


def test_write_bursts_are_retried(driver: ProviderDriver, qlik_emulator: Emulator) -> None:
    qlik_emulator.add_fault("demo", "status", status=503, count=2, methods=["PUT"])
    driver.check_and_create(basic_props(qlik_emulator))
    assert calls(qlik_emulator) == [
        (GET, "/", 200), (PUT, "/", 503), (PUT, "/", 503), (PUT, "/", 204), (GET, "/", 200)
    ]


def test_dropped_connection_is_retried(driver: ProviderDriver, qlik_emulator: Emulator) -> None:
    qlik_emulator.add_fault("demo", "drop", count=1, methods=["PUT"])
    driver.check_and_create(basic_props(qlik_emulator))
    assert [c[:2] for c in calls(qlik_emulator)][-2:] == [(PUT, "/"), (GET, "/")]


def test_rate_limit_storm_beyond_budget_fails_clearly(
    driver: ProviderDriver, qlik_emulator: Emulator
) -> None:
    qlik_emulator.add_fault("demo", "status", status=429, count=50)
    text = last_line(failure(driver, basic_props(qlik_emulator)))
    assert "QlikRateLimitedError" in text and "(3 retries)" in text
    assert "HTTP 429 HTTP-429 API rate limit reached." in text
    assert "qlik:maxRetries" in text
    assert len(calls(qlik_emulator)) == 4  # 1 try + 3 retries, then stop


def test_server_errors_beyond_budget_fail_clearly(
    driver: ProviderDriver, qlik_emulator: Emulator
) -> None:
    qlik_emulator.add_fault("demo", "status", status=502, count=50)
    text = last_line(failure(driver, basic_props(qlik_emulator)))
    assert "QlikUnavailableError" in text and "HTTP 502" in text and "(3 retries)" in text
    assert len(calls(qlik_emulator)) == 4


def test_real_rate_limiter_is_ridden_out(
    qlik_emulator_factory: Callable[..., Emulator],
    server_factory: Callable[..., ProviderServer],
) -> None:
    """The emulator's own token buckets (not a fault): Retry-After is honoured."""
    emu = qlik_emulator_factory(tenants=("demo",), rate_limits={"tier1": 60, "tier2": 60,
                                                                "window": 1})
    demo = emu.tenant("demo")
    server = ProviderServer(env={"QLIK_CA_BUNDLE": emu.ca_file, "QLIK_MAX_RETRIES": "5",
                                 "QLIK_BACKOFF_FACTOR": "0.01"})
    try:
        server.configure({"qlik:tenantUrl": demo.url, "qlik:apiKey": demo.api_key})
        driver = ProviderDriver(server)
        for _ in range(2):
            driver.check_and_create(basic_props(emu))
        statuses = [r["status"] for r in emu.requests()]
        assert 429 in statuses and statuses[-1] == 200
    finally:
        server.stop()


# --- OAuth and write method ---------------------------------------------------------------


def test_oauth_client_credentials_and_token_expiry(
    server_factory: Callable[..., ProviderServer], qlik_emulator: Emulator
) -> None:
    demo = qlik_emulator.tenant("demo")
    server = server_factory({"qlik:tenantUrl": demo.url, "qlik:clientId": demo.client_id,
                             "qlik:clientSecret": demo.client_secret}, QLIK_API_KEY="")
    driver = ProviderDriver(server)
    id_, _, outs = driver.check_and_create(basic_props(qlik_emulator))
    tokens = [r for r in qlik_emulator.requests() if r["path"].endswith("/oauth/token")]
    assert len(tokens) == 1  # one token, cached for the three calls
    qlik_emulator.expire_tokens("demo")
    qlik_emulator.clear_requests()
    news = driver.checked(basic_props(qlik_emulator, server_port=2465))
    driver.update(id_, outs, news)
    log = [(r["method"], r["path"].rsplit("/", 2)[-1], r["status"])
           for r in qlik_emulator.requests()]
    assert log == [(PATCH, "email-config", 401), ("POST", "token", 200),
                   (PATCH, "email-config", 204), (GET, "email-config", 200)]


def test_oauth_wrong_secret(server_factory: Callable[..., ProviderServer],
                            qlik_emulator: Emulator) -> None:
    demo = qlik_emulator.tenant("demo")
    server = server_factory({"qlik:tenantUrl": demo.url, "qlik:clientId": demo.client_id,
                             "qlik:clientSecret": "wrong-client-secret"}, QLIK_API_KEY="")
    text = last_line(failure(ProviderDriver(server), basic_props(qlik_emulator)))
    assert "QlikAuthenticationError" in text and "qlik:clientSecret" in text
    assert "wrong-client-secret" not in text


def test_write_method_put(server_factory: Callable[..., ProviderServer],
                          qlik_emulator: Emulator) -> None:
    demo = qlik_emulator.tenant("demo")
    server = server_factory({"qlik:tenantUrl": demo.url, "qlik:apiKey": demo.api_key,
                             "qlik:writeMethod": "put"})
    driver = ProviderDriver(server)
    id_, _, outs = driver.check_and_create(basic_props(qlik_emulator))
    qlik_emulator.clear_requests()
    driver.update(id_, outs, driver.checked(basic_props(qlik_emulator, server_port=2465)))
    assert calls(qlik_emulator) == [(PUT, "/", 204), (GET, "/", 200)]


def test_write_method_patch_creates_with_patch(
    server_factory: Callable[..., ProviderServer], qlik_emulator: Emulator
) -> None:
    demo = qlik_emulator.tenant("demo")
    server = server_factory({"qlik:tenantUrl": demo.url, "qlik:apiKey": demo.api_key,
                             "qlik:writeMethod": "patch"})
    driver = ProviderDriver(server)
    _, _, outs = driver.check_and_create(basic_props(qlik_emulator))
    assert calls(qlik_emulator) == [(GET, "/", 200), (PATCH, "/", 204), (GET, "/", 200)]
    assert plain(outs)["password_exists"] is True
    # forced patch on a tenant without PATCH: a clear error, no silent switch
    qlik_emulator.add_fault("demo", "patch_removed", status=405)
    with pytest.raises(grpc.RpcError) as info:
        driver.check_and_create(basic_props(qlik_emulator))
    text = last_line(str(info.value.details()))
    assert "QlikPatchUnsupportedError" in text and "HTTP 405" in text
    assert "no longer accepts PATCH" in text and "qlik:writeMethod" in text


def test_bad_write_method(server_factory: Callable[..., ProviderServer],
                          qlik_emulator: Emulator) -> None:
    demo = qlik_emulator.tenant("demo")
    server = server_factory({"qlik:tenantUrl": demo.url, "qlik:apiKey": demo.api_key,
                             "qlik:writeMethod": "post"})
    text = last_line(failure(ProviderDriver(server), basic_props(qlik_emulator)))
    assert "qlik:writeMethod is 'post'" in text and "auto (default), patch, put" in text


def test_diff_unknown_inputs_during_preview(driver: ProviderDriver,
                                            qlik_emulator: Emulator) -> None:
    from pulumi.runtime import rpc

    id_, _, outs = driver.check_and_create(basic_props(qlik_emulator))
    news = driver.check(basic_props(qlik_emulator, server_address=rpc.UNKNOWN))
    assert not news.failures
    assert driver.diff(id_, outs, news.inputs).changes == P.DiffResponse.DIFF_SOME
