"""The Transports API surface: every behaviour docs/emulator.md lists under "What it does like
Qlik" (from https://qlik.dev/apis/rest/transports/) and every error code."""

from __future__ import annotations

import pytest
import requests

M365 = {
    "serviceProvider": "Microsoft365",
    "providerConfig": {
        "clientId": "12345678-1234-1234-1234-123456789012",
        "clientSecret": "-123a5678_1234/1234*1234-123b567b12",
        "emailAddress": "abc@example.com",
        "providerTenantId": "12345678-1234-1234-1234-123456789012",
    },
}


# Singleton keyed by the token's tenant; GET with no state.
def test_get_unset_config(api):
    resp = api.get()
    assert resp.status_code == 200
    body = resp.json()
    assert body["isValid"] is False
    assert body["passwordExists"] is False
    assert body["errorCode"] == "CONFIG_NOT_SET"
    assert "serviceProvider" not in body


def test_config_is_a_singleton_per_tenant(qlik_emulator, api, h):
    acme = h.Api(qlik_emulator, qlik_emulator.tenant("acme"))
    assert api.put(h.basic_config(qlik_emulator)).status_code == 204
    assert api.get().json()["isValid"] is True
    assert acme.get().json()["errorCode"] == "CONFIG_NOT_SET"
    # a second PUT replaces the same document
    first_id = api.get().json()["_id"]
    assert api.put(h.basic_config(qlik_emulator, security="StartTLS", port=587)
                   ).status_code == 204
    got = api.get().json()
    assert got["_id"] == first_id
    assert got["securityType"] == "StartTLS"


# PUT validates, verifies, stores, 204.
def test_put_basic_auth_then_get(qlik_emulator, api, h):
    body = h.basic_config(qlik_emulator)
    resp = api.put(body)
    assert resp.status_code == 204
    assert resp.content == b""
    got = api.get().json()
    pc = {k: v for k, v in body["providerConfig"].items() if k != "emailPassword"}
    assert got["providerConfig"] == pc
    assert got["serviceProvider"] == "BasicAuth"
    assert got["senderName"] == got["providerConfig"]["senderName"] == "Qlik Emulator"
    assert got["passwordExists"] is True
    assert got["isValid"] is True and got["errorCode"] == "OK"
    assert got["authFailures"] == 0
    assert got["status"] == {"statusCode": 0, "statusReason": "OK"}
    assert got["tenantId"] == api.tenant.tenant_id
    assert got["modificationTime"] == got["lastUpdated"]
    for flat in ("serverAddress", "serverPort", "securityType", "emailAddress", "username",
                 "senderName"):
        assert got[flat] == pc[flat]
    assert body["providerConfig"]["emailPassword"] not in api.get().text


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"serverPort": 0}, "serverPort"),
        ({"serverPort": 70000}, "serverPort"),
        ({"serverPort": "abc"}, "serverPort"),
        ({"serverPort": True}, "serverPort"),
        ({"serverPort": 465.5}, "serverPort"),
        ({"securityType": "ssl/tls"}, "securityType"),
        ({"securityType": "TLS"}, "securityType"),
        ({"serverAddress": 42}, "serverAddress is not a string"),
        ({"emailAddress": ["a"]}, "emailAddress is not a string"),
        ({"clientId": "x"}, "clientId"),
        ({"serverAddress": None}, "serverAddress"),
        # Where the spec is clear (an address, a name for the From field, a host name):
        ({"serverAddress": ""}, "serverAddress must not be empty"),
        ({"serverAddress": "   "}, "serverAddress must not be empty"),
        ({"emailAddress": "not-an-address"}, "emailAddress is not an email address"),
        ({"emailAddress": "Qlik <qlik@example.com>"}, "emailAddress is not an email address"),
        ({"emailAddress": "a@example.com, b@example.com"}, "emailAddress is not an email"),
        ({"emailAddress": "a@example.com\r\nBcc: x@evil.test"}, "emailAddress is not an"),
        ({"senderName": "Qlik\r\nBcc: x@evil.test"}, "senderName contains a control"),
        ({"senderName": "Qlik\x00"}, "senderName contains a control character"),
        ({"senderName": "Qlik\x85Reports"}, "senderName contains a control character"),
    ],
)
def test_put_rejects_bad_fields(qlik_emulator, api, h, change, needle):
    body = h.basic_config(qlik_emulator)
    body["providerConfig"].update(change)
    resp = api.put(body)
    assert resp.status_code == 400
    code, title = h.errors(resp)
    assert code == "INPUTCHECK-1"
    assert needle in title
    assert api.get().json()["errorCode"] == "CONFIG_NOT_SET"  # nothing stored


@pytest.mark.parametrize(
    "body",
    [
        {"serviceProvider": "Gmail", "providerConfig": {}},
        {"serviceProvider": "BasicAuth"},
        {"serviceProvider": "BasicAuth", "providerConfig": "x"},
        {"serviceProvider": "BasicAuth", "providerConfig": {}, "extra": 1},
        [],
        "text",
    ],
)
def test_put_rejects_bad_shapes(api, h, body):
    resp = api.put(body)
    assert resp.status_code == 400
    assert h.errors(resp)[0] == "INPUTCHECK-1"


def test_put_serverport_numeric_string(qlik_emulator, api, h):
    assert api.put(h.basic_config(qlik_emulator, port="465")).status_code == 204
    assert api.get().json()["serverPort"] == 465


def test_put_without_password_keeps_stored_one(qlik_emulator, api, h):
    assert api.put(h.basic_config(qlik_emulator)).status_code == 204
    body = h.basic_config(qlik_emulator, security="StartTLS", port=587)
    del body["providerConfig"]["emailPassword"]
    assert api.put(body).status_code == 204
    assert api.get().json()["passwordExists"] is True
    assert api.action("verify-connection").json()["success"] is True


def test_put_without_password_and_none_stored_is_incomplete(qlik_emulator, api, h):
    body = h.basic_config(qlik_emulator)
    del body["providerConfig"]["emailPassword"]
    resp = api.put(body)
    assert resp.status_code == 400
    assert "emailPassword" in h.errors(resp)[1]


def test_put_failed_verification_is_400_and_not_saved(qlik_emulator, api, h):
    resp = api.put(h.basic_config(qlik_emulator, password="wrong-password-123"))
    assert resp.status_code == 400
    code, title = h.errors(resp)
    assert code == "INPUTCHECK-1"
    assert "authentication failed" in title.lower()
    assert "wrong-password-123" not in resp.text
    assert api.get().json()["errorCode"] == "CONFIG_NOT_SET"


def test_put_failed_verification_counts_on_stored_config(qlik_emulator, api, h):
    assert api.put(h.basic_config(qlik_emulator)).status_code == 204
    assert api.put(h.basic_config(qlik_emulator, password="nope-nope")).status_code == 400
    got = api.get().json()
    assert got["authFailures"] == 1
    assert got["errorCode"] == "INVALID_CREDENTIALS"
    assert got["isValid"] is False
    # a successful check resets the count
    assert api.action("verify-connection").json()["success"] is True
    got = api.get().json()
    assert (got["authFailures"], got["errorCode"], got["isValid"]) == (0, "OK", True)


def test_put_microsoft365(api, h):
    resp = api.put(M365)
    assert resp.status_code == 204
    got = api.get().json()
    assert got["serviceProvider"] == "Microsoft365"
    assert got["providerConfig"] == {k: v for k, v in M365["providerConfig"].items()
                                     if k != "clientSecret"}
    assert got["passwordExists"] is True
    assert M365["providerConfig"]["clientSecret"] not in api.get().text
    assert "serverAddress" not in got
    verify = api.action("verify-connection").json()
    assert verify["success"] is True


def test_put_microsoft365_rejected_secret_and_incomplete(api, h):
    bad = {"serviceProvider": "Microsoft365",
           "providerConfig": {**M365["providerConfig"], "clientSecret": "invalid-secret"}}
    resp = api.put(bad)
    assert resp.status_code == 400
    assert "Microsoft365" in h.errors(resp)[1]
    incomplete = {"serviceProvider": "Microsoft365",
                  "providerConfig": {"clientId": "x", "clientSecret": "y"}}
    resp = api.put(incomplete)
    assert resp.status_code == 400
    assert "providerTenantId" in h.errors(resp)[1]


def test_put_switching_provider_drops_other_credentials(qlik_emulator, api, h):
    assert api.put(M365).status_code == 204
    assert api.put(h.basic_config(qlik_emulator)).status_code == 204
    got = api.get().json()
    assert got["serviceProvider"] == "BasicAuth"
    assert "clientId" not in got["providerConfig"]


def test_microsoft365_send_is_simulated_into_mailbox(qlik_emulator, api):
    assert api.put(M365).status_code == 204
    resp = api.action("send-test-email", {"recipient": "ops@example.com", "subject": "m365",
                                          "body": "hi"})
    assert resp.json()["success"] is True
    assert [m["subject"] for m in qlik_emulator.mailbox()] == ["m365"]


# PATCH, deprecated, whitelist of 6 paths, 204.
def test_patch_ops(qlik_emulator, api, h):
    assert api.put(h.basic_config(qlik_emulator)).status_code == 204
    resp = api.patch([
        {"op": "replace", "path": "/serverPort", "value": "587"},
        {"op": "add", "path": "/securityType", "value": "StartTLS"},
    ])
    assert resp.status_code == 204 and resp.content == b""
    got = api.get().json()
    assert (got["serverPort"], got["securityType"]) == (587, "StartTLS")
    assert api.patch([{"op": "remove", "path": "/emailPassword"}]).status_code == 204
    got = api.get().json()
    assert got["passwordExists"] is False
    assert got["errorCode"] == "INCOMPLETE_CONFIG" and got["isValid"] is False
    assert api.action("validate").json() == {"isValid": False,
                                             "errorCode": "INCOMPLETE_CONFIG"}


def test_patch_answers_carry_deprecation_and_sunset_and_put_does_not(qlik_emulator, api, h):
    assert "Deprecation" not in api.put(h.basic_config(qlik_emulator)).headers
    resp = api.patch([{"op": "replace", "path": "/serverPort", "value": 2465}])
    assert resp.status_code == 204
    assert resp.headers["Deprecation"].startswith("@")
    assert "2026" in resp.headers["Sunset"]


def test_patch_does_not_verify(api):
    # The tutorial's PATCH to AWS SES works: PATCH stores without an SMTP check.
    resp = api.patch([{"op": "replace", "path": "/serverAddress", "value": "x.invalid"}])
    assert resp.status_code == 204
    assert api.get().json()["errorCode"] == "INCOMPLETE_CONFIG"


@pytest.mark.parametrize(
    ("ops", "needle"),
    [
        ([{"op": "replace", "path": "/senderName", "value": "x"}], "/senderName"),
        ([{"op": "replace", "path": "/clientId", "value": "x"}], "/clientId"),
        ([{"op": "move", "path": "/username", "value": "x"}], "op"),
        ([{"op": "replace, remove, add", "path": "/username", "value": "x"}], "op"),
        ([{"op": "replace", "path": "/serverPort", "value": "twenty"}], "serverPort"),
        ([{"op": "replace", "path": "/serverPort", "value": 0}], "serverPort"),
        ([{"op": "replace", "path": "/securityType", "value": "tls"}], "securityType"),
        ([{"op": "replace", "path": "/username", "value": 5}], "not a string"),
        ([{"op": "replace", "path": "/username"}], "value"),
        ([{"op": "replace", "path": "/serverAddress", "value": ""}], "must not be empty"),
        ([{"op": "add", "path": "/emailAddress", "value": "nope"}], "not an email address"),
        (["replace"], "not an object"),
        ({"op": "replace"}, "array"),
    ],
)
def test_patch_rejects(api, h, ops, needle):
    resp = api.patch(ops)
    assert resp.status_code == 400
    code, title = h.errors(resp)
    assert code == "INPUTCHECK-1"
    assert needle in title


def test_patch_is_atomic(api):
    resp = api.patch([
        {"op": "replace", "path": "/username", "value": "kept-out"},
        {"op": "replace", "path": "/nope", "value": "x"},
    ])
    assert resp.status_code == 400
    assert api.get().json()["errorCode"] == "CONFIG_NOT_SET"


def test_patch_on_microsoft365_config_is_refused(api, h):
    assert api.put(M365).status_code == 204
    resp = api.patch([{"op": "replace", "path": "/username", "value": "x"}])
    assert resp.status_code == 400
    assert "PUT" in h.errors(resp)[1]


# DELETE.
def test_delete(qlik_emulator, api, h):
    resp = api.delete()
    assert resp.status_code == 404
    assert h.errors(resp) == ("DELETE-1", "No email config for tenant")
    assert api.put(h.basic_config(qlik_emulator)).status_code == 204
    resp = api.delete()
    assert resp.status_code == 204 and resp.content == b""
    assert api.get().json()["errorCode"] == "CONFIG_NOT_SET"


# Actions 404 without config; SMTP failures are 200 success:false.
@pytest.mark.parametrize(
    ("action", "code"),
    [("send-test-email", "SENDTESTEMAIL-1"), ("verify-connection", "VERIFYCONNECTION-1")],
)
def test_actions_without_config(api, h, action, code):
    resp = api.action(action, {"recipient": "a@example.com", "subject": "s", "body": "b"})
    assert resp.status_code == 404
    assert h.errors(resp) == (code, "No email config for tenant")


def test_send_test_email_bad_bodies(qlik_emulator, api, h):
    assert api.put(h.basic_config(qlik_emulator)).status_code == 204
    for body in ({"subject": "no recipient"}, {"recipient": 5}, [1]):
        resp = api.action("send-test-email", body)
        assert resp.status_code == 400, body
        assert h.errors(resp)[0] == "INPUTCHECK-1"
    assert api.action("send-test-email").status_code == 400  # no body at all


def test_send_rejected_recipient(qlik_emulator, api, h):
    assert api.put(h.basic_config(qlik_emulator)).status_code == 204
    resp = api.action("send-test-email", {"recipient": "x@nowhere.invalid", "subject": "s",
                                          "body": "b"})
    assert resp.status_code == 200
    body = resp.json()
    assert body["success"] is False
    assert body["rejected"] == ["x@nowhere.invalid"] and body["accepted"] == []
    assert api.get().json()["authFailures"] == 0  # not a credential problem


def test_smtp_unreachable_is_200_connection_failed(qlik_emulator, api, h):
    assert api.patch([
        {"op": "replace", "path": "/serverAddress", "value": "smtp.example.invalid"},
        {"op": "replace", "path": "/serverPort", "value": 465},
        {"op": "replace", "path": "/securityType", "value": "SSL/TLS"},
        {"op": "replace", "path": "/emailAddress", "value": "a@example.com"},
    ]).status_code == 204
    for action in ("verify-connection", "send-test-email"):
        resp = api.action(action, {"recipient": "a@example.com"})
        assert resp.status_code == 200
        assert resp.json()["connectionFailed"] is True and resp.json()["success"] is False
    # PUT of the same unreachable server is refused (verification before saving)
    resp = api.put(h.basic_config(qlik_emulator, host="smtp.example.invalid"))
    assert resp.status_code == 400
    assert "resolve" in h.errors(resp)[1]


def test_failed_verify_connection_makes_the_config_invalid(qlik_emulator, api, h):
    assert api.put(h.basic_config(qlik_emulator)).status_code == 204
    # The server becomes unreachable (PATCH stores without a check, as on Qlik).
    assert api.patch([{"op": "replace", "path": "/serverAddress",
                       "value": "smtp.gone.invalid"}]).status_code == 204
    assert api.get().json()["isValid"] is True  # nothing has checked it yet
    result = api.action("verify-connection").json()
    assert result["success"] is False and result["connectionFailed"] is True
    got = api.get().json()
    assert (got["isValid"], got["errorCode"], got["authFailures"]) == (
        False, "PROVIDER_ERROR", 0)  # not a credential problem: no failure counted
    assert got["status"] == {"statusCode": 1, "statusReason": "PROVIDER_ERROR"}
    assert api.action("validate").json() == {"isValid": False, "errorCode": "PROVIDER_ERROR"}
    # Fixed and verified again: valid.
    assert api.patch([{"op": "replace", "path": "/serverAddress",
                       "value": "smtp.example.com"}]).status_code == 204
    assert api.action("verify-connection").json()["success"] is True
    assert api.get().json()["errorCode"] == "OK"


def test_rejected_recipient_does_not_make_the_config_invalid(qlik_emulator, api, h):
    assert api.put(h.basic_config(qlik_emulator)).status_code == 204
    result = api.action("send-test-email", {"recipient": "x@nowhere.invalid"}).json()
    assert result["success"] is False and result["rejected"] == ["x@nowhere.invalid"]
    assert api.get().json()["isValid"] is True


def test_non_ascii_bearer_is_401_not_500(api, h):
    resp = api.call("GET", token="", headers={"Authorization": "Bearer \u00fc".encode()})
    assert resp.status_code == 401
    assert h.errors(resp) == ("HTTP-401", "Unauthorized")


# validate always 200.
def test_validate(qlik_emulator, api, h):
    assert api.action("validate").json() == {"isValid": False, "errorCode": "CONFIG_NOT_SET"}
    assert api.put(h.basic_config(qlik_emulator)).status_code == 204
    resp = api.action("validate")
    assert resp.status_code == 200
    assert resp.json() == {"isValid": True, "errorCode": "OK"}


# Write-only secrets.
def test_secrets_never_echoed(qlik_emulator, api, h):
    assert api.put(h.basic_config(qlik_emulator)).status_code == 204
    password = qlik_emulator.smtp_user[1]
    texts = [api.get().text, api.action("validate").text,
             api.action("verify-connection").text,
             api.action("send-test-email", {"recipient": "a@example.com"}).text,
             requests.get(qlik_emulator.admin_url + "/requests", timeout=10,
                          headers=qlik_emulator.admin_headers).text]
    for text in texts:
        assert password not in text
        assert "emailPassword" not in text


# Roles.
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", ""), ("PUT", ""), ("PATCH", ""), ("DELETE", ""),
     ("POST", "/actions/send-test-email")],
)
def test_viewer_gets_rolecheck(viewer, h, method, path):
    resp = viewer.call(method, h.CONFIG + path, json={})
    assert resp.status_code == 403
    assert h.errors(resp) == ("ROLECHECK-1", "Must be a tenant admin")


def test_viewer_may_validate_and_verify(qlik_emulator, api, viewer, h):
    # The spec documents no 403 on these two; the emulator follows it.
    assert viewer.action("validate").status_code == 200
    assert viewer.action("verify-connection").status_code == 404
    assert api.put(h.basic_config(qlik_emulator)).status_code == 204
    assert viewer.action("verify-connection").json()["success"] is True


# Auth: 401 and cross-tenant refusal.
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer"}, {"Authorization": "Bearer nope"},
     {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": ""}],
)
def test_unauthorized(api, h, headers):
    resp = api.call("GET", token="", headers=headers)
    assert resp.status_code == 401
    assert h.errors(resp) == ("HTTP-401", "Unauthorized")


def test_cross_tenant_refusal(qlik_emulator, h):
    demo, acme = qlik_emulator.tenant("demo"), qlik_emulator.tenant("acme")
    for token in (demo.api_key, demo.viewer_api_key):
        resp = h.Api(qlik_emulator, acme, token=token).get()
        assert resp.status_code == 401
    token = requests.post(demo.url + "/oauth/token", json={
        "client_id": demo.client_id, "client_secret": demo.client_secret,
        "grant_type": "client_credentials"}, verify=qlik_emulator.ca_file, timeout=10
    ).json()["access_token"]
    assert h.Api(qlik_emulator, acme, token=token).get().status_code == 401
    assert h.Api(qlik_emulator, demo, token=token).get().status_code == 200
    # the other tenant's client credentials do not issue a token here
    resp = requests.post(acme.url + "/oauth/token", json={
        "client_id": demo.client_id, "client_secret": demo.client_secret,
        "grant_type": "client_credentials"}, verify=qlik_emulator.ca_file, timeout=10)
    assert resp.status_code == 401


def test_oauth_token_issue_and_expiry(qlik_emulator, qlik_tenant, h):
    url = qlik_tenant.url + "/oauth/token"
    resp = requests.post(url, json={
        "client_id": qlik_tenant.client_id, "client_secret": qlik_tenant.client_secret,
        "grant_type": "client_credentials", "scope": "admin_classic"},
        verify=qlik_emulator.ca_file, timeout=10)
    assert resp.status_code == 200
    token = resp.json()
    assert token["token_type"] == "bearer"
    assert token["expires_in"] == 3600
    client = h.Api(qlik_emulator, qlik_tenant, token=token["access_token"])
    assert client.put(h.basic_config(qlik_emulator)).status_code == 204  # M2M is admin
    assert client.get().status_code == 200
    requests.post(qlik_emulator.admin_url + f"/tenants/{qlik_tenant.name}/expire-tokens",
                  json={}, headers=qlik_emulator.admin_headers, timeout=10).raise_for_status()
    resp = client.get()
    assert resp.status_code == 401
    assert h.errors(resp)[0] == "HTTP-401"


def test_oauth_token_ttl(qlik_emulator_factory, h):
    emu = qlik_emulator_factory(token_ttl=0.0)
    tenant = emu.tenant("demo")
    token = requests.post(tenant.url + "/oauth/token", json={
        "client_id": tenant.client_id, "client_secret": tenant.client_secret,
        "grant_type": "client_credentials"}, verify=emu.ca_file, timeout=10).json()
    assert token["expires_in"] == 0
    assert h.Api(emu, tenant, token=token["access_token"]).get().status_code == 401


@pytest.mark.parametrize(
    ("body", "status"),
    [({"client_id": "x", "client_secret": "y", "grant_type": "client_credentials"}, 401),
     ({"grant_type": "password"}, 400), ([], 400)],
)
def test_oauth_token_refusals(qlik_emulator, qlik_tenant, body, status):
    resp = requests.post(qlik_tenant.url + "/oauth/token", json=body,
                         verify=qlik_emulator.ca_file, timeout=10)
    assert resp.status_code == status
    assert resp.json()["errors"][0]["code"]


# Robustness: malformed input, big bodies, unknown paths and methods.
def test_malformed_json(api, h):
    for method in ("PUT", "PATCH"):
        resp = api.call(method, data=b"{not json", headers={"Content-Type": "application/json"})
        assert resp.status_code == 400
        assert h.errors(resp) == ("INPUTCHECK-1", "Request body is not valid JSON")
    resp = api.call("PUT", data=b"\xff\xfe", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400


def test_huge_body_is_413(api, h):
    resp = api.call("PUT", data=b"[" + b"1," * 40000 + b"1]",
                    headers={"Content-Type": "application/json"})
    assert resp.status_code == 413
    assert h.errors(resp)[0] == "HTTP-413"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/api/v1/transports/nope", 404), ("POST", "/api/v1/transports/email-config", 405),
     ("GET", "/api/v1/transports/email-config/actions/validate", 405),
     ("POST", "/api/v1/transports/email-config/actions/explode", 404), ("GET", "/", 404)],
)
def test_unknown_paths_and_methods(api, h, method, path, status):
    resp = api.call(method, path)
    assert resp.status_code == status
    assert h.errors(resp)[0] == f"HTTP-{status}"


def test_unknown_tenant_and_root(qlik_emulator, api):
    resp = requests.get(qlik_emulator.api_url + "/t/ghost" + "/api/v1/transports/email-config",
                        verify=qlik_emulator.ca_file, timeout=10)
    assert resp.status_code == 404
    resp = requests.get(qlik_emulator.api_url + "/api/v1/transports/email-config",
                        verify=qlik_emulator.ca_file, timeout=10)
    assert resp.status_code == 404
    assert resp.json()["errors"][0]["code"] == "HTTP-404"


def test_set_config_out_of_band(qlik_emulator, api):
    qlik_emulator.set_config("demo", {"serverAddress": "smtp.console.example",
                                      "serverPort": 25, "securityType": "none",
                                      "emailAddress": "c@example.com"})
    got = api.get().json()
    assert got["serverAddress"] == "smtp.console.example"
    assert got["passwordExists"] is False
    assert got["isValid"] is True


def test_logs_never_carry_secrets(qlik_emulator, qlik_tenant, api, h, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    body = h.basic_config(qlik_emulator)
    api.put(body)
    api.put(h.basic_config(qlik_emulator, password="wrong-pass-777"))
    api.action("verify-connection")
    api.action("send-test-email", {"recipient": "r@example.com"})
    token = requests.post(qlik_tenant.url + "/oauth/token", json={
        "client_id": qlik_tenant.client_id, "client_secret": qlik_tenant.client_secret,
        "grant_type": "client_credentials"}, verify=qlik_emulator.ca_file, timeout=10
    ).json()["access_token"]
    h.Api(qlik_emulator, qlik_tenant, token=token).get()
    assert "PUT /api/v1/transports/email-config 204" in caplog.text
    for secret in (qlik_tenant.api_key, qlik_tenant.client_secret, token, "wrong-pass-777",
                   body["providerConfig"]["emailPassword"]):
        assert secret not in caplog.text


def test_silent_and_garbage_clients_do_not_block_others(qlik_emulator, api):
    import socket
    from urllib.parse import urlsplit

    port = urlsplit(qlik_emulator.api_url).port
    silent = socket.create_connection(("127.0.0.1", port))  # never shakes hands
    garbage = socket.create_connection(("127.0.0.1", port))
    garbage.sendall(b"GET / HTTP/1.1\r\n\r\n")  # plain HTTP on the TLS port
    try:
        assert api.get().status_code == 200
    finally:
        silent.close()
        garbage.close()


def test_chunked_huge_body_is_413(api, h):
    def chunks():
        for _ in range(100):
            yield b"x" * 1024

    resp = api.call("PUT", data=chunks(), headers={"Content-Type": "application/json"})
    assert resp.status_code == 413


def test_api_health_takes_get_only(qlik_emulator):
    url = qlik_emulator.api_url + "/health"
    assert requests.get(url, verify=qlik_emulator.ca_file, timeout=10).json() == {"status": "ok"}
    refused = requests.post(url, verify=qlik_emulator.ca_file, timeout=10)
    assert refused.status_code == 405 and refused.headers["Allow"] == "GET, HEAD"
    assert refused.json()["errors"][0]["code"] == "HTTP-405"
