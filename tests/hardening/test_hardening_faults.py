"""Faults across a whole `up`, end to end: real provider server, emulator faults.

tests/provider checks each error class and the retry counts of single calls.
This suite checks the promise a user relies on when the tenant misbehaves in
the middle of a run, for a create and for an update of several fields:

* the operation succeeds within the retry budget, or fails with one clear
  message (the error class, the cause, the fix; no credential);
* the tenant is never half-written: it holds the old config or the new one,
  whole;
* after a refresh, state and tenant agree; and the next `up`, with the fault
  gone, converges.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from qlik_email_resource.emulator import Emulator
from qlik_email_resource.offline.grpc_servers import ProviderServer
from qlik_email_resource.offline.provider_driver import ProviderDriver
from tests.support.provider import (
    agrees,
    as_stored,
    fresh_tenant,
    last_line,
    plain,
    stored,
    tenant_props,
)

# A real retry budget (3 retries), with short waits so the suite stays fast.
RETRY_ENV = {"QLIK_MAX_RETRIES": "3", "QLIK_BACKOFF_FACTOR": "0.01",
             "QLIK_RETRY_AFTER_MAX": "0"}
READ_TIMEOUT = 1.5
SLOW = 3.0  # latency well beyond READ_TIMEOUT


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    # An emulator of its own: slow answers finish after their test has moved on.
    with Emulator(tenants=("demo",), workdir=tmp_path_factory.mktemp("faults")) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def provider(emu: Emulator) -> Iterator[ProviderServer]:
    # Credentials travel on each resource (tenant_url + api_key), so one provider
    # process serves every scenario, each on a fresh tenant.
    server = ProviderServer(env={**RETRY_ENV, "QLIK_CA_BUNDLE": emu.ca_file})
    server.configure({})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def slow_provider(emu: Emulator) -> Iterator[ProviderServer]:
    server = ProviderServer(env={**RETRY_ENV, "QLIK_CA_BUNDLE": emu.ca_file,
                                 "QLIK_READ_TIMEOUT": str(READ_TIMEOUT)})
    server.configure({})
    yield server
    server.stop()


@dataclass(frozen=True)
class Fault:
    name: str
    params: Mapping[str, Any]
    succeeds: bool  # within the retry budget
    error: str = ""  # the error class the user reads when it does not
    slow: bool = False

    def inject(self, emu: Emulator, tenant: str) -> None:
        params = dict(self.params)
        emu.add_fault(tenant, params.pop("kind"), **params)


FAULTS = [
    Fault("429 burst", {"kind": "status", "status": 429, "count": 3, "retry_after": 1}, True),
    Fault("429 storm", {"kind": "status", "status": 429, "count": 40}, False,
          "QlikRateLimitedError"),
    Fault("5xx burst", {"kind": "status", "status": 503, "count": 3}, True),
    Fault("5xx burst on writes", {"kind": "status", "status": 502, "count": 3,
                                  "methods": ["PUT", "PATCH"]}, True),
    Fault("5xx storm on writes", {"kind": "status", "status": 503, "count": 40,
                                  "methods": ["PUT", "PATCH"]}, False, "QlikUnavailableError"),
    Fault("dropped connection", {"kind": "drop", "count": 2}, True),
    Fault("dropped writes", {"kind": "drop", "count": 40, "methods": ["PUT", "PATCH"]}, False,
          "QlikConnectionError"),
    Fault("latency beyond timeout, once", {"kind": "latency", "seconds": SLOW, "count": 1},
          True, slow=True),
    Fault("latency beyond timeout on writes", {"kind": "latency", "seconds": SLOW,
                                               "methods": ["PUT", "PATCH"]},
          False, "QlikTimeoutError", slow=True),
]


def old_config(emu: Emulator, tenant: str) -> dict[str, Any]:
    return tenant_props(emu, tenant)


def new_config(emu: Emulator, tenant: str) -> dict[str, Any]:
    # Several fields at once: a half-applied write would show.
    return tenant_props(emu, tenant, server_port=2465, email_address="mailer@example.org",
                        security_type="SSL/TLS")


def secrets_of(emu: Emulator, tenant: str) -> list[str]:
    return [emu.tenant(tenant).api_key, emu.smtp_user[1]]


def attempt(driver: ProviderDriver, props: Mapping[str, Any]) -> str | None:
    """Run one `up`; None when it worked, else the error text the user would read."""
    try:
        driver.up(props)
    except grpc.RpcError as exc:
        return str(exc.details())
    return None


def assert_one_clear_message(details: str, expected: str, secrets: list[str]) -> None:
    line = last_line(details)
    assert expected in line, line
    # One line that names the cause and then the fix (errors.py ends every message
    # with what to do), not urllib3's or grpc's text.
    assert line.rstrip().endswith("."), line
    assert "MaxRetryError" not in line and "urllib3" not in line, line
    for secret in secrets:
        assert secret not in details


def settle(emu: Emulator, fault: Fault) -> None:
    emu.clear_faults()
    if fault.slow:
        # Requests the client gave up on are still sleeping in the emulator and will
        # be applied when they wake: wait for them so the tenant has its final state.
        time.sleep(SLOW + 0.5)


def check_invariants(driver: ProviderDriver, emu: Emulator, tenant: str,
                     allowed: list[dict[str, Any] | None]) -> None:
    record = stored(emu, tenant)
    assert record in allowed, f"half-written tenant: {record}"
    if driver.id:
        state = plain(driver.refresh().properties)
        assert agrees(state, stored(emu, tenant)) == []


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.name)
def test_fault_during_create(emu: Emulator, provider: ProviderServer,
                             slow_provider: ProviderServer, fault: Fault) -> None:
    tenant = fresh_tenant(emu)
    driver = ProviderDriver(slow_provider if fault.slow else provider)
    desired = new_config(emu, tenant)
    fault.inject(emu, tenant)
    error = attempt(driver, desired)
    if fault.succeeds:
        assert error is None, last_line(error)
    else:
        assert error is not None, "the fault outlasts the retry budget: the create must fail"
        assert_one_clear_message(error, fault.error, secrets_of(emu, tenant))
        assert not driver.id  # nothing in state after a failed create
    settle(emu, fault)
    check_invariants(driver, emu, tenant, [None, as_stored(desired)])
    if fault.succeeds:
        assert stored(emu, tenant) == as_stored(desired)
    # The next `up` without the fault converges (a failed create adopts what is there).
    assert attempt(driver, desired) is None
    check_invariants(driver, emu, tenant, [as_stored(desired)])


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.name)
def test_fault_during_update(emu: Emulator, provider: ProviderServer,
                             slow_provider: ProviderServer, fault: Fault) -> None:
    tenant = fresh_tenant(emu)
    driver = ProviderDriver(slow_provider if fault.slow else provider)
    before, after = old_config(emu, tenant), new_config(emu, tenant)
    assert attempt(driver, before) is None
    fault.inject(emu, tenant)
    error = attempt(driver, after)
    if fault.succeeds:
        assert error is None, last_line(error)
    else:
        assert error is not None
        assert_one_clear_message(error, fault.error, secrets_of(emu, tenant))
    settle(emu, fault)
    check_invariants(driver, emu, tenant, [as_stored(before), as_stored(after)])
    if fault.succeeds:
        assert stored(emu, tenant) == as_stored(after)
    assert attempt(driver, after) is None
    check_invariants(driver, emu, tenant, [as_stored(after)])


def test_patch_removed_mid_run_switches_to_put(emu: Emulator, provider: ProviderServer) -> None:
    tenant = fresh_tenant(emu)
    driver = ProviderDriver(provider)
    before, after = old_config(emu, tenant), new_config(emu, tenant)
    assert attempt(driver, before) is None
    emu.add_fault(tenant, "patch_removed", status=410)
    emu.clear_requests()
    assert attempt(driver, after) is None
    writes = [(r["method"], r["status"]) for r in emu.requests()
              if r["tenant"] == tenant and r["method"] in ("PATCH", "PUT")]
    assert writes == [("PATCH", 410), ("PUT", 204)]
    check_invariants(driver, emu, tenant, [as_stored(after)])
    # Later updates in the same process go straight to PUT.
    emu.clear_requests()
    assert attempt(driver, tenant_props(emu, tenant, server_port=587, security_type="StartTLS"))\
        is None
    assert next(r["method"] for r in emu.requests() if r["tenant"] == tenant) == "PUT"


def test_patch_removed_and_put_failing_leaves_the_old_config(
    emu: Emulator, provider: ProviderServer
) -> None:
    tenant = fresh_tenant(emu)
    driver = ProviderDriver(provider)
    before, after = old_config(emu, tenant), new_config(emu, tenant)
    assert attempt(driver, before) is None
    emu.add_fault(tenant, "patch_removed", status=405)
    emu.add_fault(tenant, "status", status=503, count=40, methods=["PUT"])
    error = attempt(driver, after)
    assert error is not None
    assert_one_clear_message(error, "QlikUnavailableError", secrets_of(emu, tenant))
    emu.clear_faults()
    check_invariants(driver, emu, tenant, [as_stored(before)])
    assert stored(emu, tenant) == as_stored(before)


def test_tls_failure_to_the_smtp_server(emu: Emulator, provider: ProviderServer) -> None:
    """Implicit TLS against the plain SMTP port: the handshake fails.

    On create the tenant's PUT verifies and refuses it: nothing is written. On
    update PATCH does not verify, so the new config is stored and verify_connection
    fails the update; a refresh then shows exactly what the tenant holds.
    """
    tenant = fresh_tenant(emu)
    driver = ProviderDriver(provider)
    broken = tenant_props(emu, tenant, server_address="localhost",
                          server_port=emu.smtp.plain_port, security_type="SSL/TLS",
                          verify_connection=True)
    error = attempt(driver, broken)
    assert error is not None
    assert_one_clear_message(error, "Error", secrets_of(emu, tenant))
    assert "SMTP" in last_line(error)
    assert stored(emu, tenant) is None

    good = tenant_props(emu, tenant, verify_connection=True)
    assert attempt(driver, good) is None
    error = attempt(driver, broken)
    assert error is not None
    line = last_line(error)
    assert "SmtpCheckError" in line and "verify" in line.lower(), line
    assert_one_clear_message(error, "SmtpCheckError", secrets_of(emu, tenant))
    check_invariants(driver, emu, tenant, [as_stored(good), as_stored(broken)])
    # Fixing the program repairs the tenant.
    assert attempt(driver, good) is None
    check_invariants(driver, emu, tenant, [as_stored(good)])


@pytest.fixture
def oauth_provider(emu: Emulator) -> Iterator[Callable[[str], ProviderServer]]:
    started: list[ProviderServer] = []

    def start(tenant: str) -> ProviderServer:
        info = emu.tenant(tenant)
        server = ProviderServer(env={**RETRY_ENV, "QLIK_CA_BUNDLE": emu.ca_file,
                                     "QLIK_API_KEY": ""})
        server.configure({"qlik:tenantUrl": info.url, "qlik:clientId": info.client_id,
                          "qlik:clientSecret": info.client_secret})
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def oauth_props(emu: Emulator, tenant: str, **overrides: Any) -> dict[str, Any]:
    props = tenant_props(emu, tenant, **overrides)
    props.pop("tenant_url")
    props.pop("api_key")
    return props


def test_token_expiry_between_write_and_read_back(
    emu: Emulator, oauth_provider: Callable[[str], ProviderServer]
) -> None:
    """The token dies after the PATCH was accepted and before the GET that reads it back."""
    tenant = fresh_tenant(emu)
    driver = ProviderDriver(oauth_provider(tenant))
    before = oauth_props(emu, tenant)
    after = oauth_props(emu, tenant, server_port=2465, email_address="mailer@example.org")
    assert attempt(driver, before) is None
    emu.clear_requests()
    # Hold the read-back GET long enough to expire every token while it waits.
    emu.add_fault(tenant, "latency", seconds=1.0, count=1, methods=["GET"])
    outcome: list[str | None] = []
    run = threading.Thread(target=lambda: outcome.append(attempt(driver, after)))
    run.start()
    deadline = time.monotonic() + 30
    while not any(r["method"] == "PATCH" for r in emu.requests()):
        assert time.monotonic() < deadline, "the update never sent its PATCH"
        time.sleep(0.01)
    emu.expire_tokens(tenant)
    run.join(60)
    assert outcome == [None], outcome and last_line(outcome[0] or "")
    log = [(r["method"], r["path"].rsplit("/", 1)[-1], r["status"]) for r in emu.requests()
           if r["tenant"] == tenant]
    assert log == [("PATCH", "email-config", 204), ("GET", "email-config", 401),
                   ("POST", "token", 200), ("GET", "email-config", 200)]
    check_invariants(driver, emu, tenant, [as_stored(after)])


def test_token_endpoint_failing_mid_run(
    emu: Emulator, oauth_provider: Callable[[str], ProviderServer]
) -> None:
    """Tokens expire and the token endpoint itself is down: one clear failure, old config."""
    tenant = fresh_tenant(emu)
    driver = ProviderDriver(oauth_provider(tenant))
    before = oauth_props(emu, tenant)
    assert attempt(driver, before) is None
    emu.expire_tokens(tenant)
    # Every POST (the token endpoint) fails; PATCH answers 401 with the dead token.
    emu.add_fault(tenant, "status", status=503, count=40, methods=["POST"])
    error = attempt(driver, oauth_props(emu, tenant, server_port=2465))
    assert error is not None
    info = emu.tenant(tenant)
    assert_one_clear_message(error, "Error", [info.client_secret, emu.smtp_user[1]])
    assert "token" in last_line(error).lower()
    emu.clear_faults()
    check_invariants(driver, emu, tenant, [as_stored(before)])
    assert stored(emu, tenant) == as_stored(before)


def test_the_checks_see_a_half_written_tenant(emu: Emulator, provider: ProviderServer) -> None:
    """The invariants above can fail: a tenant with half of an update is caught, and a
    refresh brings state to exactly what the tenant holds."""
    tenant = fresh_tenant(emu)
    driver = ProviderDriver(provider)
    before, after = old_config(emu, tenant), new_config(emu, tenant)
    assert attempt(driver, before) is None
    half = {**as_stored(before), "serverPort": 2465}  # the port moved, the address did not
    emu.set_config(tenant, {"serviceProvider": "BasicAuth", "providerConfig": {
        k: v for k, v in half.items() if k not in ("serviceProvider", "secret")
    } | {"emailPassword": half["secret"]}})
    assert stored(emu, tenant) not in [as_stored(before), as_stored(after)]
    assert agrees(plain(driver.refresh().properties), stored(emu, tenant)) == []
    assert plain(driver.refresh().properties)["server_port"] == 2465
