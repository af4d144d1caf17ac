"""Fuzz the emulator's request parsing over real sockets (TLS, raw http.client).

Whatever arrives (malformed JSON, wrong types, huge bodies, unknown paths, odd
methods and headers), the answer is a success the API documents or a Qlik-shaped
4xx ``{"errors":[{"code","title"}]}``: never a 500, never a hang, and never a
success for a call that is not authorised. A method the API does not document on one
of its paths is a 405 with ``Allow``; HEAD answers as GET and never writes. The admin
listener answers only its token, a loopback Host and JSON bodies.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qlik_email_resource.emulator import Emulator

CONFIG = "/api/v1/transports/email-config"
ACTIONS = ("send-test-email", "validate", "verify-connection")
API_PATHS = (CONFIG, *(f"{CONFIG}/actions/{a}" for a in ACTIONS), "/oauth/token")
# (method, path) pairs the API documents: only these may ever answer 2xx.
DOCUMENTED = {
    ("GET", CONFIG), ("PUT", CONFIG), ("PATCH", CONFIG), ("DELETE", CONFIG),
    *(("POST", f"{CONFIG}/actions/{a}") for a in ACTIONS), ("POST", "/oauth/token"),
}
# HEAD is GET without a body: documented wherever GET is.
DOCUMENTED_OR_HEAD = DOCUMENTED | {("HEAD", p) for m, p in DOCUMENTED if m == "GET"}
# The emulator's own liveness check, outside every tenant (it answers any method).
HEALTH = "/health"
TIMEOUT = 20.0  # far beyond any answer; reaching it means the server hung
FUZZ = settings(max_examples=120, deadline=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])


class Answer:
    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def __repr__(self) -> str:
        return f"Answer({self.status}, {self.body[:300]!r})"


class Wire:
    """Raw HTTPS requests to the emulator's API listener, one connection each."""

    def __init__(self, emu: Emulator) -> None:
        parts = urlsplit(emu.api_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 443
        self.context = ssl.create_default_context(cafile=emu.ca_file)
        self.emu = emu

    def connect(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            self.host, self.port, context=self.context, timeout=TIMEOUT
        )

    def send(self, method: str, path: str, body: bytes | None = None,
             headers: Mapping[str, str] | None = None) -> Answer:
        conn = self.connect()
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            response = conn.getresponse()
            return Answer(response.status, dict(response.getheaders()), response.read())
        finally:
            conn.close()


def assert_qlik_shaped(answer: Answer, method: str) -> None:
    assert answer.status < 500, answer
    if answer.status < 400 or method == "HEAD":
        return
    data = json.loads(answer.body)
    errors = data["errors"]
    assert isinstance(errors, list) and errors, answer
    for error in errors:
        assert isinstance(error["code"], str) and error["code"], answer
        assert isinstance(error["title"], str) and error["title"], answer


@pytest.fixture(scope="module")
def emu(qlik_emulator_session: Emulator) -> Emulator:
    qlik_emulator_session.reset()
    return qlik_emulator_session


@pytest.fixture(scope="module")
def wire(emu: Emulator) -> Wire:
    return Wire(emu)


def admin(emu: Emulator, tenant: str = "demo") -> dict[str, str]:
    return {"Authorization": f"Bearer {emu.tenant(tenant).api_key}"}


# --- bodies ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                               max_size=4),
    max_leaves=10,
)
field_values = json_values | st.sampled_from(
    ["465", 465, 465.5, -1, 70000, "SSL/TLS", "ssl", "x.invalid", "smtp.example.com", "", "ü" * 50]
)
basic_keys = st.sampled_from(["serverAddress", "serverPort", "securityType", "username",
                              "emailAddress", "emailPassword", "senderName", "clientId",
                              "clientSecret", "providerTenantId", "unknown", ""])
near_put = st.fixed_dictionaries(
    {"providerConfig": st.dictionaries(basic_keys, field_values, max_size=8)},
    optional={"serviceProvider": st.sampled_from(["BasicAuth", "Microsoft365", "basic", ""])
              | json_values,
              "extra": json_values},
)
near_patch = st.lists(
    st.fixed_dictionaries(
        {"op": st.sampled_from(["replace", "add", "remove", "move", "test", ""]) | json_values},
        optional={"path": st.sampled_from(["/serverPort", "/emailPassword", "/senderName",
                                           "/serverAddress", "serverPort", "/", ""])
                  | json_values,
                  "value": field_values},
    ),
    max_size=5,
)
# SMTP hosts in these bodies are never local: a PUT that passes validation is
# verified against the bundled SMTP server (routed) or fails at once (.invalid).
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    near_put.map(lambda v: json.dumps(v).encode()),
    near_patch.map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b"{", b"[", b"null", b"\xff\xfe", b'{"a": NaN}', b"1e999999",
                     b'"' + b"\\u" * 10 + b'"', b"[" * 5000 + b"]" * 5000]),
)


@FUZZ
@given(st.sampled_from([("PUT", CONFIG), ("PATCH", CONFIG),
                        *(("POST", p) for p in API_PATHS if p != CONFIG)]),
       bodies,
       st.sampled_from(["application/json", "text/plain", "application/json-patch+json",
                        "multipart/form-data; boundary=x", ""]))
def test_any_body_gets_a_documented_answer_or_a_qlik_4xx(
    emu: Emulator, wire: Wire, call: tuple[str, str], body: bytes, content_type: str
) -> None:
    method, path = call
    headers = {**admin(emu), "Content-Type": content_type}
    answer = wire.send(method, f"/t/demo{path}", body, headers)
    assert_qlik_shaped(answer, method)


@pytest.mark.parametrize("size", [64 * 1024 + 1, 1024 * 1024, 8 * 1024 * 1024])
@pytest.mark.parametrize("method,path", [("PUT", CONFIG), ("PATCH", CONFIG),
                                          ("POST", f"{CONFIG}/actions/send-test-email"),
                                          ("POST", "/oauth/token")])
def test_huge_bodies_are_refused_with_413(
    emu: Emulator, wire: Wire, size: int, method: str, path: str
) -> None:
    body = b'{"providerConfig": {"senderName": "' + b"x" * size + b'"}}'
    try:
        answer = wire.send(method, f"/t/demo{path}", body,
                           {**admin(emu), "Content-Type": "application/json"})
    except (BrokenPipeError, ConnectionResetError):
        # The server may answer and close before the client has written everything;
        # then http.client cannot read the answer. Check the server saw and refused it.
        answer = None
    if answer is not None:
        assert answer.status == 413, answer
        assert_qlik_shaped(answer, method)
    logged = [r for r in emu.requests() if r["method"] == method and r["path"] == path]
    assert logged and logged[-1]["status"] == 413


def test_huge_chunked_body_is_refused(emu: Emulator, wire: Wire) -> None:
    def chunks() -> Any:
        for _ in range(64):
            yield b"x" * 16 * 1024

    conn = wire.connect()
    try:
        try:
            conn.request("PUT", f"/t/demo{CONFIG}", body=chunks(), encode_chunked=True,
                         headers={**admin(emu), "Content-Type": "application/json"})
            answer = conn.getresponse()
            status, body = answer.status, answer.read()
        except (BrokenPipeError, ConnectionResetError):
            status, body = 0, b""
    finally:
        conn.close()
    # Werkzeug cuts a chunked body at the cap without raising, so the emulator sees a
    # truncated (invalid) document: 400 rather than 413, but never accepted, never a 5xx.
    if status:
        assert status in (400, 413), body
        assert_qlik_shaped(Answer(status, {}, body), "PUT")
    assert emu.requests()[-1]["status"] in (400, 413)


# --- methods and paths -------------------------------------------------------------------

methods = st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS",
                           "TRACE", "PROPFIND", "MKCOL", "get", "Put", "BREW"]) | st.text(
    alphabet=st.characters(min_codepoint=65, max_codepoint=90), min_size=1, max_size=10)
segments = st.sampled_from(["api", "v1", "v2", "transports", "email-config", "actions",
                            "validate", "verify-connection", "send-test-email", "oauth",
                            "token", "..", ".", "", "%2e%2e", "%00", "t", "demo", "acme",
                            "nosuch", "admin", "faults", "requests", "health"]) | st.text(
    max_size=12).map(lambda s: quote(s, safe=""))
paths = st.one_of(
    st.sampled_from(API_PATHS).map(lambda p: f"/t/demo{p}"),
    st.lists(segments, max_size=7).map(lambda parts: "/t/demo/" + "/".join(parts)),
    st.lists(segments, max_size=7).map(lambda parts: "/" + "/".join(parts)),
    st.sampled_from(API_PATHS).map(lambda p: f"/t/nosuch{p}"),
    st.sampled_from(API_PATHS).map(lambda p: f"/t/demo{p}?x=1&x=%ff"),
    st.sampled_from(API_PATHS).map(lambda p: f"/t/demo{p.upper()}"),
)


@FUZZ
@given(methods, paths, st.one_of(st.none(), st.just(b'[{"op":"replace","path":"/senderName",'
                                                    b'"value":"x"}]'), st.binary(max_size=40)))
def test_any_method_and_path_gets_a_documented_answer_or_a_qlik_4xx(
    emu: Emulator, wire: Wire, method: str, path: str, body: bytes | None
) -> None:
    answer = wire.send(method, path, body, admin(emu))
    assert_qlik_shaped(answer, method)
    rel_path = urlsplit(path).path
    rel = rel_path.removeprefix("/t/demo").rstrip("/")
    if rel_path.startswith("/t/demo/") and rel in API_PATHS and (
            method.upper(), rel) not in DOCUMENTED_OR_HEAD:
        # A documented path with a method it does not document: 405, naming what it takes.
        assert answer.status == 405, (method, path, answer)
        assert answer.headers.get("Allow"), answer
    if 200 <= answer.status < 300:
        rel = urlsplit(path).path.removeprefix("/t/demo").rstrip("/")
        if urlsplit(path).path.rstrip("/") == HEALTH:
            return
        # Werkzeug upper-cases the method (RFC 9110 says methods are case-sensitive; a
        # lenient server is harmless here: auth and routing still apply).
        verb = "GET" if method.upper() == "HEAD" else method.upper()  # HEAD = GET sans body
        assert (verb, rel) in DOCUMENTED, (method, path, answer)


# --- headers -----------------------------------------------------------------------------

header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255),
                      max_size=60)


@FUZZ
@given(
    st.sampled_from(["admin", "viewer", "other-tenant", "none"]),
    st.sampled_from(["Bearer {}", "bearer {}", "Bearer  {} ", "Basic {}", "{}", "Bearer",
                     "Bearer {}{}", "Token {}", "Bearer {},Bearer {}", "Bearer \u00fc{}",
                     "Bearer {}\u00ff"]) | header_text,
    st.dictionaries(st.sampled_from(["Content-Type", "Accept", "X-Forwarded-For", "Cookie",
                                     "X-Qlik-User", "Host", "Accept-Encoding", "Expect",
                                     "Transfer-Encoding"]),
                    header_text, max_size=3),
    st.sampled_from([("GET", CONFIG), ("DELETE", CONFIG), ("POST", f"{CONFIG}/actions/validate"),
                     ("PUT", CONFIG)]),
)
def test_odd_headers_never_crash_and_never_authorise(
    emu: Emulator, wire: Wire, who: str, auth_format: str, extra: dict[str, str],
    call: tuple[str, str],
) -> None:
    key = {"admin": emu.tenant("demo").api_key, "viewer": emu.tenant("demo").viewer_api_key,
           "other-tenant": emu.tenant("acme").api_key, "none": ""}[who]
    authorization = auth_format.replace("{}", key)
    method, path = call
    headers = {**extra, "Authorization": authorization}
    if extra.get("Transfer-Encoding") or extra.get("Expect"):
        headers.pop("Transfer-Encoding", None)  # http.client frames the body itself
        headers.pop("Expect", None)
    try:
        answer = wire.send(method, f"/t/demo{path}", b"{}" if method == "PUT" else None,
                           headers)
    except (http.client.InvalidURL, ValueError, UnicodeEncodeError):
        return  # the client refused to send it: nothing reached the server
    assert_qlik_shaped(answer, method)
    if 200 <= answer.status < 300:
        # Only this tenant's own key authorises (a viewer for validate only).
        assert authorization.split(" ", 1)[-1].strip() in (
            emu.tenant("demo").api_key, emu.tenant("demo").viewer_api_key
        ), (authorization, answer)


@FUZZ
@given(st.sampled_from(["admin", "viewer", "none"]), bodies,
       st.sampled_from(["application/json", "text/plain", ""]))
def test_head_answers_as_get_and_never_writes(
    emu: Emulator, wire: Wire, who: str, body: bytes, content_type: str
) -> None:
    key = {"admin": emu.tenant("demo").api_key, "viewer": emu.tenant("demo").viewer_api_key,
           "none": "not-a-key"}[who]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": content_type}
    before = wire.send("GET", f"/t/demo{CONFIG}", None, admin(emu)).body
    head = wire.send("HEAD", f"/t/demo{CONFIG}", body, headers)
    get = wire.send("GET", f"/t/demo{CONFIG}", None, headers)
    assert head.status == get.status, (head, get)
    assert head.body == b""
    assert wire.send("GET", f"/t/demo{CONFIG}", None, admin(emu)).body == before


# --- the admin listener ----------------------------------------------------------------------

ADMIN_PATHS = ("/health", "/requests", "/faults", "/mailbox", "/smtp-users", "/tenants",
               "/tenants/demo/expire-tokens", "/tenants/demo/config", "/reset")


@FUZZ
@given(
    methods,
    st.sampled_from(ADMIN_PATHS) | st.lists(segments, max_size=4).map(
        lambda parts: "/" + "/".join(parts)),
    st.sampled_from(["loopback", "localhost", "foreign", "foreign-port", "no-port"]),
    st.sampled_from(["admin-token", "tenant-key", "none", "garbage", "query"]),
    st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded",
                     ""]),
    st.one_of(st.none(), st.just(b'{"tenant": "demo", "kind": "drop", "name": "fuzzed"}'),
              st.binary(max_size=40)),
)
def test_admin_listener_answers_only_its_token_from_loopback(
    emu: Emulator, method: str, path: str, host: str, auth: str, content_type: str,
    body: bytes | None,
) -> None:
    parts = urlsplit(emu.admin_url)
    port = parts.port
    host_header = {"loopback": f"127.0.0.1:{port}", "localhost": f"localhost:{port}",
                   "foreign": f"evil.example:{port}", "foreign-port": "127.0.0.1:1",
                   "no-port": "127.0.0.1"}[host]
    headers = {"Host": host_header, "Content-Type": content_type}
    target = path
    if auth == "admin-token":
        headers["Authorization"] = f"Bearer {emu.admin_token}"
    elif auth == "tenant-key":
        headers["Authorization"] = f"Bearer {emu.tenant('demo').api_key}"
    elif auth == "garbage":
        headers["Authorization"] = "Bearer \u00fc"
    elif auth == "query":
        target = f"{path}?token={emu.admin_token}"
    tenants_before = set(emu.tenant_infos())
    conn = http.client.HTTPConnection(parts.hostname or "", port, timeout=TIMEOUT)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value.encode("latin-1", "replace"))
        conn.putheader("Content-Length", str(len(body or b"")))
        conn.endheaders(body or b"")
        response = conn.getresponse()
        answer = Answer(response.status, dict(response.getheaders()), response.read())
    except (http.client.InvalidURL, ValueError):
        return  # the client refused to send it
    finally:
        conn.close()
        faults = emu.list_faults()
        emu.clear_faults()  # an authorised example may add one: the next starts clean
    assert_qlik_shaped(answer, method)
    if method.upper() not in ("HEAD",) and answer.status >= 400:
        assert json.loads(answer.body)["errors"][0]["code"].startswith("ADMIN-"), answer
    if 200 <= answer.status < 300:
        loopback = host in ("loopback", "localhost")
        token_ok = auth == "admin-token" or (
            auth == "query" and method.upper() in ("GET", "HEAD"))
        health = urlsplit(target).path.rstrip("/") == "/health" and auth in ("none", "query")
        assert loopback and (token_ok or health), (method, target, headers, answer)
        if method.upper() in ("POST", "PUT"):
            assert content_type == "application/json", answer
    if not (host in ("loopback", "localhost") and auth == "admin-token"):
        # No stranger changed anything.
        assert set(emu.tenant_infos()) == tenants_before
        assert faults == []


# --- below HTTP: request lines the HTTP layer itself must refuse --------------------------


@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n",
    b"GET /t/demo/api/v1/transports/email-config HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET " + b"/a" * 40000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"PUT /t/demo/api/v1/transports/email-config HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: -5\r\n\r\n",
    b"PUT /t/demo/api/v1/transports/email-config HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: abc\r\n\r\n",
    b"GET /t/demo/api/v1/transports/email-config HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n",
])
def test_malformed_http_is_refused_and_closed(emu: Emulator, wire: Wire, raw: bytes) -> None:
    with socket.create_connection((wire.host, wire.port), timeout=TIMEOUT) as plain, \
            wire.context.wrap_socket(plain, server_hostname=wire.host) as sock:
        sock.sendall(raw)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except (ConnectionResetError, ssl.SSLError):
            pass
    # These never reach the API app: Python's HTTP layer refuses them (an HTML error
    # page, without a status line for an HTTP/0.9-looking request). What matters here:
    # an error, never a 500 or an answer from the API, and the connection closed.
    if data.startswith(b"HTTP/"):
        status = int(data.split(b"\r\n", 1)[0].split()[1])
    else:
        status = int(data.split(b"Error code: ", 1)[1][:3])
    assert 400 <= status < 600 and status != 500, data[:300]
    assert b"email-config" not in data and b"serverAddress" not in data
