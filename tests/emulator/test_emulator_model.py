"""The tenant model alone (no HTTP, no sockets), with a scripted SMTP gateway."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from qlik_email_resource.emulator.faults import FAULT_KINDS, FaultError, Faults
from qlik_email_resource.emulator.limits import RateLimiter
from qlik_email_resource.emulator.model import ApiErrorAnswer, Backend

BASIC = {"serviceProvider": "BasicAuth", "providerConfig": {
    "serverAddress": "smtp.example.com", "serverPort": 587, "securityType": "StartTLS",
    "username": "user", "emailPassword": "pw-secret-1", "emailAddress": "a@example.com"}}

OK = {"success": True, "connectionFailed": False, "message": "ok", "smtpResponseCode": 235}
AUTH_FAIL = {"success": False, "connectionFailed": False,
             "message": "535 bad credentials for pw-secret-1", "smtpResponseCode": 535}
CONN_FAIL = {"success": False, "connectionFailed": True, "message": "refused",
             "smtpResponseCode": 0}


class ScriptedGateway:
    """Answers verify/send with the next scripted result; records the configs it saw."""

    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []
        self.seen: list[dict[str, Any]] = []

    def verify(self, config):
        self.seen.append(dict(config))
        return self.results.pop(0) if self.results else OK

    def send(self, config, *, recipient, subject, body):
        self.seen.append(dict(config))
        return self.results.pop(0) if self.results else {**OK, "smtpResponseCode": 250}


@pytest.fixture
def gw() -> ScriptedGateway:
    return ScriptedGateway()


@pytest.fixture
def backend(gw) -> Backend:
    return Backend(gw)


def test_auth_failures_move_with_checks(backend, gw):
    t = backend.add_tenant("demo")
    backend.put_config(t, BASIC)
    assert gw.seen[-1]["password"] == "pw-secret-1"
    gw.results = [AUTH_FAIL, AUTH_FAIL, CONN_FAIL]
    result = backend.verify_connection(t)
    assert "pw-secret-1" not in result["message"]  # scrubbed even if a server echoes it
    backend.send_test_email(t, {"recipient": "r@example.com"})
    got = backend.get_config(t)
    assert (got["authFailures"], got["errorCode"], got["isValid"]) == (
        2, "INVALID_CREDENTIALS", False)
    backend.verify_connection(t)  # connection failure: not counted, but the config is not OK
    got = backend.get_config(t)
    assert (got["authFailures"], got["errorCode"], got["isValid"]) == (
        2, "PROVIDER_ERROR", False)
    assert got["status"]["statusCode"] != 0
    backend.verify_connection(t)  # scripted list empty: success
    got = backend.get_config(t)
    assert (got["authFailures"], got["errorCode"], got["isValid"]) == (0, "OK", True)


def test_put_failure_message_never_has_password(backend, gw):
    t = backend.add_tenant("demo")
    gw.results = [AUTH_FAIL]
    with pytest.raises(ApiErrorAnswer) as info:
        backend.put_config(t, BASIC)
    assert info.value.status == 400 and info.value.code == "INPUTCHECK-1"
    assert "pw-secret-1" not in info.value.title
    assert backend.get_config(t)["errorCode"] == "CONFIG_NOT_SET"


def test_username_without_password_is_incomplete(backend):
    t = backend.add_tenant("demo")
    backend.patch_config(t, [{"op": "add", "path": "/username", "value": "u"}])
    assert backend.validate(t) == {"isValid": False, "errorCode": "INCOMPLETE_CONFIG"}
    result = backend.verify_connection(t)
    assert result["success"] is False and "emailPassword" in result["message"]


def test_no_gateway_is_a_clear_500(gw):
    backend = Backend(None)
    t = backend.add_tenant("demo")
    with pytest.raises(ApiErrorAnswer) as info:
        backend.put_config(t, BASIC)
    assert info.value.status == 500


def test_tenant_names_are_checked(backend):
    for bad in ("", "a/b", "a b", "../x"):
        with pytest.raises(ValueError, match="tenant name"):
            backend.add_tenant(bad)


def test_reprs_hide_credentials(backend):
    t = backend.add_tenant("demo")
    backend.put_config(t, BASIC)
    text = repr(t) + repr(t.config) + str(t.config)
    for secret in (t.api_key, t.viewer_api_key, t.client_secret, "pw-secret-1"):
        assert secret not in text


def test_state_file_round_trip(gw, tmp_path):
    state = tmp_path / "sub" / "state.json"
    first = Backend(gw, state_file=state)
    t = first.add_tenant("demo")
    first.put_config(t, BASIC)
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
    assert json.loads(state.read_text())["version"] == 1
    second = Backend(gw, state_file=state)
    t2 = second.tenant("demo")
    assert t2 is not None
    assert t2.credentials() == t.credentials()
    assert second.get_config(t2) == first.get_config(t)
    assert t2.config is not None and t2.config.secret == "pw-secret-1"


def test_tokens_expire_and_stay_per_tenant(backend):
    demo, acme = backend.add_tenant("demo"), backend.add_tenant("acme")
    creds = {"client_id": demo.client_id, "client_secret": demo.client_secret,
             "grant_type": "client_credentials"}
    token = backend.issue_token(demo, creds)["access_token"]
    assert backend.authenticate(demo, token).admin is True
    assert backend.authenticate(acme, token) is None
    backend.expire_tokens(demo)
    assert backend.authenticate(demo, token) is None


def test_concurrent_patches_do_not_lose_updates(backend):
    t = backend.add_tenant("demo")
    backend.put_config(t, BASIC)

    def worker(i: int) -> None:
        for _ in range(20):
            backend.patch_config(t, [{"op": "replace", "path": "/serverPort", "value": i}])
            assert backend.get_config(t)["serverPort"] in range(1, 21)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(1, 21)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert backend.get_config(t)["username"] == "user"


def test_rate_limiter_per_user_and_tier():
    limiter = RateLimiter({"tier1": 2, "tier2": 1, "window": 60})
    assert [limiter.check("t", "u", "GET") for _ in range(3)][:2] == [0, 0]
    assert limiter.check("t", "u", "GET") >= 1
    assert limiter.check("t", "v", "GET") == 0
    assert limiter.check("t", "u", "PUT") == 0
    assert limiter.check("t", "u", "POST") >= 1
    limiter.reset()
    assert limiter.check("t", "u", "POST") == 0
    assert RateLimiter(False).check("t", "u", "GET") == 0


def test_every_fault_kind_is_documented():
    """docs/emulator.md, "Faults", lists each registered kind and the parameters it takes."""
    text = (Path(__file__).parents[2] / "docs" / "emulator.md").read_text(encoding="utf-8")
    doc = " ".join(text.split())  # as a reader sees it, whatever the line breaks
    for kind, fault_class in FAULT_KINDS.items():
        assert f'"kind":"{kind}"' in doc
        assert f"`{kind}`: {', '.join(fault_class.takes)}" in doc


def test_faults_consume_in_order():
    faults = Faults()
    faults.add("t", "latency", seconds=0.5)
    faults.add("t", "status", status=503, count=1)
    faults.add("t", "drop")
    first = faults.take("t", "GET", "/x")
    assert (first.sleep, first.status, first.drop) == (0.5, 503, False)
    second = faults.take("t", "GET", "/x")
    assert (second.sleep, second.status, second.drop) == (0.5, None, True)
    assert faults.take("other", "GET", "/x").sleep == 0
    assert [f["kind"] for f in faults.list()] == ["latency"]
    with pytest.raises(FaultError):
        faults.add("t", "status", status=200)
    with pytest.raises(FaultError):
        faults.add("t", "drop", count=0)
    with pytest.raises(FaultError):
        faults.add("t", "drop", colour="red")
