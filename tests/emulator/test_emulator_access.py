"""Who may do what, over real sockets: HEAD and undocumented methods on the API, the admin
interface's token, Host and content-type rules, fault validation, and the OAuth token
endpoint's request forms and per-client rate limits."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import pytest
import requests

from qlik_email_resource.emulator.faults import FaultError

PATCH_USERNAME = [{"op": "replace", "path": "/username", "value": "written-by-head"}]


# --- HEAD and methods the API does not document --------------------------------------------


def test_head_is_get_without_a_body_and_never_writes(qlik_emulator, api, viewer, h):
    # The viewer key and a JSON-Patch body: HEAD must answer what GET answers (403).
    resp = viewer.call("HEAD", json=PATCH_USERNAME)
    assert resp.status_code == viewer.get().status_code == 403
    assert resp.content == b""
    assert api.get().json()["errorCode"] == "CONFIG_NOT_SET"  # nothing written
    # Without a token: 401 like GET.
    assert api.call("HEAD", token="").status_code == api.call("GET", token="").status_code == 401
    # The admin key on a set config: 200 like GET, no body, nothing changed.
    assert api.put(h.basic_config(qlik_emulator)).status_code == 204
    before = api.get().json()
    resp = api.call("HEAD", json=PATCH_USERNAME)
    assert resp.status_code == 200
    assert resp.content == b""
    assert api.get().json() == before
    assert ("HEAD", h.CONFIG, 200) in [(r["method"], r["path"], r["status"])
                                       for r in qlik_emulator.requests()]


@pytest.mark.parametrize("method", ["OPTIONS", "TRACE", "PROPFIND", "MKCOL", "BREW", "POST"])
def test_undocumented_methods_get_405_in_qliks_shape_with_allow(api, viewer, h, method):
    for who in (api, viewer):
        resp = who.call(method, json=PATCH_USERNAME)
        assert resp.status_code == 405, (method, resp.text)
        assert h.errors(resp)[0] == "HTTP-405"
        assert set(resp.headers["Allow"].split(", ")) == {"GET", "HEAD", "PUT", "PATCH",
                                                          "DELETE"}
    assert api.get().json()["errorCode"] == "CONFIG_NOT_SET"


@pytest.mark.parametrize("action", ["validate", "verify-connection", "send-test-email"])
def test_head_on_an_action_is_405(api, h, action):
    resp = api.call("HEAD", f"{h.CONFIG}/actions/{action}")
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "POST"


# --- the admin interface: token -------------------------------------------------------------

ADMIN_CALLS = [
    ("GET", "/tenants"), ("POST", "/tenants"), ("GET", "/requests"), ("DELETE", "/requests"),
    ("GET", "/faults"), ("POST", "/faults"), ("DELETE", "/faults"), ("GET", "/mailbox"),
    ("DELETE", "/mailbox"), ("POST", "/smtp-users"), ("POST", "/tenants/demo/expire-tokens"),
    ("PUT", "/tenants/demo/config"), ("POST", "/reset"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_CALLS)
def test_admin_calls_need_the_admin_token(qlik_emulator, api, h, method, path):
    assert api.put(h.basic_config(qlik_emulator)).status_code == 204
    resp = requests.request(method, qlik_emulator.admin_url + path, json={}, timeout=10)
    assert resp.status_code == 401
    code, title = h.errors(resp)
    assert code == "ADMIN-401"
    assert "admin_token" in title and "Authorization: Bearer" in title
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert qlik_emulator.tenant("demo").api_key not in resp.text
    assert api.get().json()["isValid"] is True  # /reset did nothing


def test_admin_token_is_in_the_startup_json_and_works(qlik_emulator, qlik_tenant, h):
    admin, token = qlik_emulator.admin_url, qlik_emulator.admin_token
    assert token and qlik_emulator.info["admin_token"] == token
    assert qlik_emulator.admin_headers == {"Authorization": f"Bearer {token}"}
    resp = requests.get(admin + "/tenants", headers=qlik_emulator.admin_headers, timeout=10)
    assert resp.status_code == 200
    assert resp.json()["demo"]["api_key"] == qlik_tenant.api_key
    # A tenant key or a near miss is not the admin token.
    for wrong in (qlik_tenant.api_key, token[:-1], token + "x", "ü"):
        resp = requests.get(admin + "/tenants", timeout=10,
                            headers={"Authorization": f"Bearer {wrong}".encode()})
        assert resp.status_code == 403, wrong
        assert h.errors(resp)[0] == "ADMIN-403"
        assert qlik_tenant.api_key not in resp.text.replace(wrong, "")
    # Health needs no token (it says nothing), but a wrong one is still refused.
    assert requests.get(admin + "/health", timeout=10).json() == {"status": "ok"}


def test_a_browser_reads_with_the_token_in_the_url_but_cannot_write(qlik_emulator, h):
    admin, token = qlik_emulator.admin_url, qlik_emulator.admin_token
    assert qlik_emulator.mailbox_url == f"{admin}/mailbox?token={token}"
    page = requests.get(qlik_emulator.mailbox_url, headers={"Accept": "text/html"}, timeout=10)
    assert page.status_code == 200 and "Emulator inbox" in page.text
    # Writes take the header only: a token in a URL ends up in histories and logs.
    resp = requests.delete(qlik_emulator.mailbox_url, timeout=10)
    assert resp.status_code == 401
    assert "header" in h.errors(resp)[1]


# --- the admin interface: Host and content type ----------------------------------------------


def _raw_admin_get(admin_url: str, token: str, host: str | None) -> tuple[int, bytes]:
    parts = urlsplit(admin_url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.putrequest("GET", "/tenants", skip_host=True)
        if host is not None:
            conn.putheader("Host", host)
        conn.putheader("Authorization", f"Bearer {token}")
        conn.endheaders()
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1",
                                  "localhost", "127.0.0.1:1", "127.0.0.1.nip.io:{port}",
                                  "localhost.evil.example:{port}", "", None])
def test_admin_refuses_a_foreign_host_header(qlik_emulator, host):
    port = urlsplit(qlik_emulator.admin_url).port
    sent = None if host is None else host.format(port=port)
    status, body = _raw_admin_get(qlik_emulator.admin_url, qlik_emulator.admin_token, sent)
    assert status == 403, body
    assert b"ADMIN-403" in body and b"Host" in body
    assert qlik_emulator.tenant("demo").api_key.encode() not in body


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}",
                                  "[::1]:{port}"])
def test_admin_accepts_loopback_hosts_with_its_port(qlik_emulator, host):
    port = urlsplit(qlik_emulator.admin_url).port
    status, body = _raw_admin_get(qlik_emulator.admin_url, qlik_emulator.admin_token,
                                  host.format(port=port))
    assert status == 200, body


@pytest.mark.parametrize(("content_type", "data"), [
    ("text/plain", '{"name": "sneaky"}'),
    ("application/x-www-form-urlencoded", "name=sneaky"),
    ("multipart/form-data; boundary=b", '--b\r\nContent-Disposition: form-data; name="name"'
                                        '\r\n\r\nsneaky\r\n--b--\r\n'),
    (None, '{"name": "sneaky"}'),
])
def test_admin_takes_json_bodies_only(qlik_emulator, api, h, content_type, data):
    headers = dict(qlik_emulator.admin_headers)
    if content_type:
        headers["Content-Type"] = content_type
    resp = requests.post(qlik_emulator.admin_url + "/tenants", data=data, headers=headers,
                         timeout=10)
    assert resp.status_code == 415
    code, title = h.errors(resp)
    assert code == "ADMIN-415" and "Content-Type: application/json" in title
    assert "sneaky" not in qlik_emulator.tenant_infos()
    # A body-less write needs the JSON type too (an HTML form can post an empty body).
    assert api.put(h.basic_config(qlik_emulator)).status_code == 204
    resp = requests.post(qlik_emulator.admin_url + "/reset", headers=headers, timeout=10)
    assert resp.status_code == 415
    assert api.get().json()["isValid"] is True


def test_admin_json_with_charset_and_empty_object_work(qlik_emulator, api, h):
    assert api.put(h.basic_config(qlik_emulator)).status_code == 204
    resp = requests.post(qlik_emulator.admin_url + "/reset", data=b"{}", timeout=10, headers={
        **qlik_emulator.admin_headers, "Content-Type": "application/json; charset=utf-8"})
    assert resp.status_code == 204
    assert api.get().json()["errorCode"] == "CONFIG_NOT_SET"


def test_admin_unknown_method_is_405_with_allow(qlik_emulator, h):
    resp = requests.request("PATCH", qlik_emulator.admin_url + "/faults", json={},
                            headers=qlik_emulator.admin_headers, timeout=10)
    assert resp.status_code == 405
    assert h.errors(resp)[0] == "ADMIN-405"
    assert set(resp.headers["Allow"].split(", ")) == {"GET", "HEAD", "POST", "DELETE"}


def test_admin_head_never_writes(qlik_emulator, h):
    body = {"tenant": "demo", "kind": "status", "status": 503}
    resp = requests.head(qlik_emulator.admin_url + "/faults", json=body,
                         headers=qlik_emulator.admin_headers, timeout=10)
    assert resp.status_code == 200
    assert qlik_emulator.list_faults() == []


# --- faults are validated when they are added --------------------------------------------------


@pytest.mark.parametrize(("params", "needle"), [
    ({"kind": "status", "status": 503, "retry_after": "x"}, "retry_after"),
    ({"kind": "status", "status": 503, "retry_after": -1}, "retry_after"),
    ({"kind": "status", "status": 503, "retry_after": 2.5}, "retry_after"),
    ({"kind": "status", "status": 503, "retry_after": True}, "retry_after"),
    ({"kind": "status", "status": 503, "retry_after": 10**9}, "retry_after"),
    ({"kind": "status", "status": "503"}, "status"),
    ({"kind": "status", "status": 200}, "status"),
    ({"kind": "latency", "seconds": True}, "seconds"),
    ({"kind": "latency", "seconds": "1"}, "seconds"),
    ({"kind": "latency", "seconds": -1}, "seconds"),
    ({"kind": "latency", "seconds": 0.1, "retry_after": 2}, "retry_after"),
    ({"kind": "drop", "status": 503}, "status"),
    ({"kind": "drop", "count": 0}, "count"),
    ({"kind": "drop", "count": True}, "count"),
    ({"kind": "drop", "count": "2"}, "count"),
    ({"kind": "patch_removed", "count": 2}, "count"),
    ({"kind": "patch_removed", "status": 500}, "status"),
    ({"kind": "status", "status": 503, "methods": ["GET", "FETCH"]}, "methods"),
    ({"kind": "status", "status": 503, "methods": "GET"}, "methods"),
    ({"kind": "status", "status": 503, "methods": []}, "methods"),
    ({"kind": "status", "status": 503, "bogus": 1}, "bogus"),
    ({"kind": "explode"}, "kind"),
    ({"kind": 5}, "kind"),
])
def test_bad_fault_parameters_are_refused_naming_the_parameter(qlik_emulator, api, h, params,
                                                               needle):
    resp = requests.post(qlik_emulator.admin_url + "/faults", json={"tenant": "demo", **params},
                         headers=qlik_emulator.admin_headers, timeout=10)
    assert resp.status_code == 400
    code, title = h.errors(resp)
    assert code == "ADMIN-400" and needle in title
    assert qlik_emulator.list_faults() == []
    assert [api.get().status_code for _ in range(2)] == [200, 200]  # later calls unharmed
    if isinstance(params["kind"], str):
        kind, rest = params["kind"], {k: v for k, v in params.items() if k != "kind"}
        with pytest.raises(FaultError, match=needle):
            qlik_emulator.add_fault("demo", kind, **rest)


def test_retry_after_is_sent_as_given(qlik_emulator, api):
    qlik_emulator.add_fault("demo", "status", status=503, retry_after=0)
    assert api.get().headers["Retry-After"] == "0"
    qlik_emulator.add_fault("demo", "status", status=429, retry_after=3)
    assert api.get().headers["Retry-After"] == "3"


def test_fault_for_get_applies_to_head(qlik_emulator, api):
    qlik_emulator.add_fault("demo", "status", status=503, methods=["get"])
    assert api.call("HEAD").status_code == 503
    assert api.get().status_code == 200


# --- the OAuth token endpoint -----------------------------------------------------------------


def _token(emu, tenant, **kwargs) -> requests.Response:
    return requests.post(tenant.url + "/oauth/token", verify=emu.ca_file, timeout=10, **kwargs)


def _works(emu, tenant, h, resp: requests.Response) -> bool:
    assert resp.status_code == 200, resp.text
    assert resp.json()["token_type"] == "bearer"
    return h.Api(emu, tenant, token=resp.json()["access_token"]).get().status_code == 200


def test_token_from_a_form_encoded_body(qlik_emulator, qlik_tenant, h):
    resp = _token(qlik_emulator, qlik_tenant, data={
        "grant_type": "client_credentials", "client_id": qlik_tenant.client_id,
        "client_secret": qlik_tenant.client_secret, "scope": "admin_classic"})
    assert _works(qlik_emulator, qlik_tenant, h, resp)
    assert resp.json()["scope"] == "admin_classic"


def test_token_with_client_secret_basic(qlik_emulator, qlik_tenant, h):
    resp = _token(qlik_emulator, qlik_tenant, data={"grant_type": "client_credentials"},
                  auth=(qlik_tenant.client_id, qlik_tenant.client_secret))
    assert _works(qlik_emulator, qlik_tenant, h, resp)
    # JSON body with Basic credentials works too
    resp = _token(qlik_emulator, qlik_tenant, json={"grant_type": "client_credentials"},
                  auth=(qlik_tenant.client_id, qlik_tenant.client_secret))
    assert _works(qlik_emulator, qlik_tenant, h, resp)


def test_token_basic_with_a_wrong_secret_is_401_with_a_basic_challenge(qlik_emulator,
                                                                       qlik_tenant, h):
    resp = _token(qlik_emulator, qlik_tenant, data={"grant_type": "client_credentials"},
                  auth=(qlik_tenant.client_id, "wrong-secret-123"))
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Basic")
    assert "wrong-secret-123" not in resp.text


@pytest.mark.parametrize(("kwargs", "needle"), [
    # two ways to authenticate in one request (RFC 6749 §2.3)
    ({"data": {"grant_type": "client_credentials", "client_secret": "x"},
      "auth": ("id", "secret")}, "one"),
    # a parameter twice (RFC 6749 §3.2)
    ({"data": [("grant_type", "client_credentials"), ("client_id", "a"), ("client_id", "b"),
               ("client_secret", "s")]}, "client_id"),
    ({"data": {"grant_type": "password", "client_id": "a", "client_secret": "s"}},
     "grant_type"),
    ({"data": {"client_id": "a", "client_secret": "s"}}, "grant_type"),
    ({"headers": {"Authorization": "Basic !!notbase64"},
      "data": {"grant_type": "client_credentials"}}, "Basic"),
])
def test_token_request_refusals_name_the_problem(qlik_emulator, qlik_tenant, h, kwargs, needle):
    resp = _token(qlik_emulator, qlik_tenant, **kwargs)
    assert resp.status_code == 400
    code, title = h.errors(resp)
    assert code == "OAUTH-1" and needle in title


def test_failed_logins_cannot_lock_out_the_real_client(qlik_emulator_factory, h):
    emu = qlik_emulator_factory(rate_limits={"tier1": 3, "tier2": 2, "window": 60})
    tenant = emu.tenant("demo")
    good = {"grant_type": "client_credentials", "client_id": tenant.client_id,
            "client_secret": tenant.client_secret}
    # A flood of bad logins: the real client's id with wrong secrets, then made-up ids.
    flood = [_token(emu, tenant, data={**good, "client_secret": f"guess-{i}"}).status_code
             for i in range(5)]
    assert flood[:2] == [401, 401] and set(flood[2:]) == {429}
    refused = _token(emu, tenant, data={**good, "client_id": "other", "client_secret": "x"})
    assert refused.status_code == 429  # this address is over its failure budget
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # The real client is not locked out: its bucket is its own.
    assert _works(emu, tenant, h, _token(emu, tenant, data=good))
    assert _works(emu, tenant, h, _token(emu, tenant, auth=(tenant.client_id,
                                                            tenant.client_secret),
                                         data={"grant_type": "client_credentials"}))
    # ...and that bucket is limited in turn (2 per minute here).
    assert _token(emu, tenant, data=good).status_code == 429


def test_unauthenticated_calls_are_limited_without_locking_out_real_users(
        qlik_emulator_factory, h):
    emu = qlik_emulator_factory(rate_limits={"tier1": 3, "tier2": 2, "window": 60})
    tenant = emu.tenant("demo")
    stranger = h.Api(emu, tenant, token="not-a-key")
    assert [stranger.get().status_code for _ in range(5)] == [401, 401, 401, 429, 429]
    assert h.Api(emu, tenant).get().status_code == 200
    assert h.Api(emu, tenant, token=tenant.viewer_api_key).action("validate").status_code == 200
