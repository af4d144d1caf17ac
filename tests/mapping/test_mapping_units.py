"""mapping.py alone: normalise/validate, expand (PUT body, JSON-Patch), flatten, diff."""

from __future__ import annotations

from typing import Any

import jsonpatch
from hypothesis import given
from hypothesis import strategies as st

from qlik_email_resource import mapping, secret_wire

BASE = {
    "server_address": "smtp.example.com",
    "server_port": 587,
    "security_type": "StartTLS",
    "email_address": "qlik@example.com",
    "username": "bot",
    "email_password": "pw-1",
}

# A label neither starts nor ends with a hyphen (check refuses "a-.example").
hosts = st.from_regex(r"[a-z]([a-z0-9-]{0,9}[a-z0-9])?(\.[a-z]{2,5}){1,2}", fullmatch=True)
emails = st.builds(lambda u, h: f"{u}@{h}", st.from_regex(r"[a-z][a-z0-9.]{0,8}", fullmatch=True),
                   hosts).filter(lambda e: ".@" not in e)
secrets_ = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1,
                   max_size=20)
basic_states = st.fixed_dictionaries(
    {
        "server_address": hosts,
        "server_port": st.integers(1, 65535),
        "security_type": st.sampled_from(mapping.SECURITY_TYPES),
        "email_address": emails,
        # Printable text: control characters are refused by design (see below).
        "username": st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1,
                            max_size=10).map(str.strip).filter(bool),
        "email_password": secrets_,
    }
)


def qlik_view(state: dict[str, Any]) -> dict[str, Any]:
    """What a PATCH-able document holds for a state (Qlik field names)."""
    return {
        mapping.BASIC_FIELDS[k]: v for k, v in state.items()
        if k in mapping.PATCH_PATHS and v is not None
    }


# --- normalise / validate ------------------------------------------------------------------


@given(st.integers(1, 65535), st.sampled_from(["float", "int", "str"]))
def test_ports_normalise_to_int(port: int, form: str) -> None:
    raw: Any = {"float": float(port), "int": port, "str": str(port)}[form]
    out, problems = mapping.normalize({**BASE, "server_port": raw})
    assert problems == []
    assert out["server_port"] == port and type(out["server_port"]) is int


@given(st.one_of(st.integers(max_value=0), st.integers(min_value=65536),
                 st.floats(allow_nan=True).filter(lambda f: not float(f).is_integer())))
def test_bad_ports_are_reported(port: Any) -> None:
    _, problems = mapping.normalize({**BASE, "server_port": port})
    assert [p.property for p in problems] == ["server_port"]


@given(basic_states)
def test_normalise_is_idempotent(state: dict[str, Any]) -> None:
    once, problems = mapping.normalize(state)
    assert problems == []
    twice, again = mapping.normalize(once)
    assert (twice, again) == (once, [])


def test_security_type_case_is_normalised_and_near_misses_suggested() -> None:
    for raw, want in (("starttls", "StartTLS"), ("ssl/tls", "SSL/TLS"), ("NONE", "none")):
        out, problems = mapping.normalize({**BASE, "security_type": raw})
        assert problems == [] and out["security_type"] == want
    cases = {
        ("tls", 465): "use 'SSL/TLS'",
        ("tls", 587): "use 'StartTLS'",
        ("tls", 2525): "'SSL/TLS' for implicit TLS",
        ("ssl", 2525): "use 'SSL/TLS'",
        ("start-tls", 2525): "use 'StartTLS'",
        ("bogus", 2525): "one of 'none', 'StartTLS' or 'SSL/TLS'",
    }
    for (raw, port), hint in cases.items():
        _, problems = mapping.normalize({**BASE, "security_type": raw, "server_port": port})
        assert len(problems) == 1 and hint in problems[0].reason, (raw, problems)


def test_all_problems_reported_at_once() -> None:
    _, problems = mapping.normalize({
        "service_provider": "Microsoft365", "server_address": "x", "email_address": "nope",
        "clientId": "abc",
    })
    by_prop = {p.property: p.reason for p in problems}
    assert set(by_prop) == {
        "clientId", "client_id", "client_secret", "provider_tenant_id", "email_address",
        "server_address",
    }
    assert "Did you mean 'client_id'" in by_prop["clientId"]
    assert "does not apply to service_provider 'Microsoft365'" in by_prop["server_address"]


def test_secrets_and_unknowns_pass_through() -> None:
    wrapped = secret_wire.wrap("pw")

    class Unknown:  # the shape pulumi.output.Unknown has during preview
        pass

    out, problems = mapping.normalize({**BASE, "email_password": wrapped,
                                       "server_address": Unknown()})
    assert problems == []
    assert out["email_password"] == "pw"
    assert type(out["server_address"]).__name__ == "Unknown"


LONG_LABEL = "a" * 64
BAD_HOSTS = {
    f"{LONG_LABEL}.example.com": "longer than 63",
    ".".join(["a" * 63] * 4) + ".com": "longer than 253",
    "-": "'-'",
    "smtp..example.com": "empty label",
    ".example.com": "empty label",
    "smtp.example.com..": "empty label",
    "-smtp.example.com": "hyphen",
    "smtp-.example.com": "hyphen",
    "999.999.999.999": "not an IPv4 address",
    "10.0.0.256": "not an IPv4 address",
    "1.2.3": "not an IPv4 address",
    "smtp.exa mple.com": "letters, digits",
    "sm\u00fctp.example.com": "letters, digits",
    "[::1": "IPv6",
    "::zz": "IPv6",
}
GOOD_HOSTS = [
    "localhost", "mailhog", "127.0.0.1", "::1", "[::1]", "2001:db8::25", "smtp.example.com.",
    "email-smtp.eu-west-2.amazonaws.com", f"{'a' * 63}.com", "xn--bcher-kva.example",
    ".".join(["a" * 63] * 3) + "." + "b" * 61, "smtp_relay.corp.example", "1e100.net",
]


def test_bad_host_names_are_refused_with_the_reason() -> None:
    for host, reason in BAD_HOSTS.items():
        _, problems = mapping.normalize({**BASE, "server_address": host})
        assert [p.property for p in problems] == ["server_address"], host
        text = problems[0].reason
        assert reason in text, (host, text)
        assert text.startswith("server_address") and "use " in text, text


def test_good_host_names_pass() -> None:
    for host in GOOD_HOSTS:
        out, problems = mapping.normalize({**BASE, "server_address": host})
        assert problems == [] and out["server_address"] == host, (host, problems)


CONTROL_CHARS = ["\r", "\n", "\x00", "\t", "\x1b", "\x7f", "\x85"]


def test_control_characters_are_refused_in_header_fields() -> None:
    for field in ("sender_name", "email_address", "username"):
        for char in CONTROL_CHARS:
            value = {"sender_name": "Qlik{}Reports", "email_address": "qlik{}@example.com",
                     "username": "bot{}user"}[field].format(char)
            _, problems = mapping.normalize({**BASE, field: value})
            assert [p.property for p in problems] == [field], (field, char, problems)
            text = problems[0].reason
            assert text.startswith(field) and "control character" in text, text
            assert repr(char) in text and "remove it" in text, text


def test_nul_is_refused_in_the_password_without_showing_it() -> None:
    _, problems = mapping.normalize({**BASE, "email_password": "pw\x00secret-value"})
    assert [p.property for p in problems] == ["email_password"]
    assert "NUL" in problems[0].reason and "secret-value" not in problems[0].reason


def test_parse_port_is_the_one_integer_converter() -> None:
    assert [mapping.parse_port(v) for v in (465, 465.0, "465", " 587 ")] == [465, 465, 465, 587]
    for bad in (True, 465.5, "\u00b2", "\u0663", "465.0", 0, 65536, None, "x"):
        try:
            mapping.parse_port(bad)
        except ValueError as exc:
            assert "server_port" in str(exc) and "65535" in str(exc), exc
        else:
            raise AssertionError(f"{bad!r} was accepted")


def test_tenant_url_and_api_key_rules() -> None:
    _, problems = mapping.normalize({**BASE, "api_key": "k"})
    assert [p.property for p in problems] == ["api_key"]
    for bad in ("tenant.eu.qlikcloud.com", "http://tenant.eu.qlikcloud.com",
                "https://tenant.eu.qlikcloud.com/api/v1"):
        _, problems = mapping.normalize({**BASE, "tenant_url": bad})
        assert [p.property for p in problems] == ["tenant_url"], bad
    out, problems = mapping.normalize({**BASE, "tenant_url": "https://t.eu.qlikcloud.com/"})
    assert problems == [] and out["tenant_url"] == "https://t.eu.qlikcloud.com"


# --- expand -------------------------------------------------------------------------------


@given(basic_states, basic_states, st.sets(st.sampled_from(sorted(mapping.PATCH_PATHS))))
def test_patch_takes_old_document_to_new(
    old: dict[str, Any], other: dict[str, Any], changed: set[str]
) -> None:
    new = {**old, **{k: other[k] for k in changed}}
    ops = mapping.expand_patch(old, new)
    assert ops is not None
    # minimal: one op per field that really differs, nothing else
    assert {op["path"] for op in ops} == {
        mapping.PATCH_PATHS[k] for k in changed if old[k] != other[k]
    }
    assert jsonpatch.apply_patch(qlik_view(old), ops) == qlik_view(new)
    assert all(isinstance(op.get("value"), int) for op in ops if op["path"] == "/serverPort")


@given(basic_states)
def test_patch_removes_unset_fields(old: dict[str, Any]) -> None:
    new = {k: v for k, v in old.items() if k not in ("username", "email_password")}
    ops = mapping.expand_patch(old, new)
    assert ops is not None
    assert jsonpatch.apply_patch(qlik_view(old), ops) == qlik_view(new)


def test_patch_cannot_express_put_only_changes() -> None:
    assert mapping.expand_patch(BASE, {**BASE, "sender_name": "Reports"}) is None
    m365 = {"service_provider": "Microsoft365", "client_id": "c", "client_secret": "s",
            "provider_tenant_id": "p", "email_address": "a@example.com"}
    assert mapping.expand_patch(BASE, m365) is None
    assert mapping.expand_patch(m365, {**m365, "client_secret": "t"}) is None
    assert mapping.expand_patch(BASE, BASE) == []


@given(basic_states, st.one_of(st.none(), st.text(min_size=1, max_size=10)))
def test_put_body_carries_every_declared_field(state: dict[str, Any], sender: str | None) -> None:
    body = mapping.expand_put({**state, "sender_name": sender, "tenant_url": "https://x"})
    assert body["serviceProvider"] == "BasicAuth"
    config = body["providerConfig"]
    assert config["emailPassword"] == state["email_password"]
    assert config["serverPort"] == state["server_port"]
    assert ("senderName" in config) == (sender is not None)
    assert set(config) <= set(mapping.BASIC_FIELDS.values())


def test_put_body_for_microsoft365() -> None:
    body = mapping.expand_put({"service_provider": "Microsoft365", "client_id": "c",
                               "client_secret": "s", "provider_tenant_id": "p",
                               "email_address": "a@example.com", "server_port": 25})
    assert body == {"serviceProvider": "Microsoft365", "providerConfig": {
        "clientId": "c", "clientSecret": "s", "providerTenantId": "p",
        "emailAddress": "a@example.com"}}


# --- flatten --------------------------------------------------------------------------------

ANSWER_FLAT = {
    "_id": "64c03b868a37cb93b4529c89", "serverAddress": "email-smtp.eu-west-2.amazonaws.com",
    "serverPort": 2465, "securityType": "SSL/TLS", "emailAddress": "qlik@mydomain.com",
    "modificationTime": "2023-07-25T21:16:38.271Z", "tenantId": "BL4tTJ4S7xrHTcq0zQxQrJ5qB1_Q6cSo",
    "isValid": True, "authFailures": 0, "status": {"statusCode": 0, "statusReason": "OK"},
    "username": "SKIARX3IRHQ7J3ZLGABC", "passwordExists": True,
}


def test_flatten_tutorial_answer_with_unknown_fields() -> None:
    out = mapping.flatten({**ANSWER_FLAT, "somethingNew": {"x": 1}})
    assert out["service_provider"] == "BasicAuth"
    assert out["server_port"] == 2465 and out["security_type"] == "SSL/TLS"
    assert out["tenant_id"] == "BL4tTJ4S7xrHTcq0zQxQrJ5qB1_Q6cSo"
    assert (out["status_code"], out["status_reason"]) == (0, "OK")
    assert out["password_exists"] is True and "email_password" not in out


def test_flatten_prefers_nested_provider_config() -> None:
    answer = {"serviceProvider": "BasicAuth", "serverPort": 25.0, "passwordExists": False,
              "providerConfig": {"serverPort": 587.0, "senderName": "Reports",
                                 "serverAddress": "smtp.example.com"}}
    out = mapping.flatten(answer)
    assert out["server_port"] == 587 and out["sender_name"] == "Reports"
    m365 = mapping.flatten({"serviceProvider": "Microsoft365", "providerConfig": {
        "clientId": "c", "providerTenantId": "p", "emailAddress": "a@example.com"}})
    assert (m365["client_id"], m365["provider_tenant_id"]) == ("c", "p")
    assert m365["server_address"] is None


def test_empty_answer_is_not_configured() -> None:
    assert not mapping.is_configured({"isValid": False, "passwordExists": False})
    assert not mapping.is_configured({"isValid": False, "passwordExists": False,
                                      "errorCode": "CONFIG_NOT_SET", "tenantId": "x"})
    assert mapping.is_configured(ANSWER_FLAT)


def test_read_inputs_drop_a_lost_password() -> None:
    old = {**BASE, "tenant_url": "https://t.example.com"}
    gone = mapping.read_inputs(old, {**ANSWER_FLAT, "passwordExists": False})
    assert "email_password" not in gone and gone["tenant_url"] == "https://t.example.com"
    kept = mapping.read_inputs(old, ANSWER_FLAT)
    assert kept["email_password"] == "pw-1" and kept["server_port"] == 2465


# --- diff -------------------------------------------------------------------------------------


@given(basic_states)
def test_diff_of_same_state_is_empty(state: dict[str, Any]) -> None:
    olds = {**state, "server_port": float(state["server_port"]), "password_exists": True}
    assert mapping.diff(olds, state).changes == []


@given(basic_states, basic_states, st.sampled_from(sorted(mapping.PATCH_PATHS)))
def test_diff_names_exactly_the_changed_field(
    old: dict[str, Any], other: dict[str, Any], key: str
) -> None:
    new = {**old, key: other[key]}
    want = [key] if old[key] != other[key] else []
    assert mapping.diff({**old, "password_exists": True}, new).changes == want


def test_diff_replaces_only_on_another_tenant() -> None:
    d = mapping.diff(BASE, {**BASE, "tenant_url": "https://b"}, old_tenant="https://a",
                     new_tenant="https://b")
    assert d.replaces == ["tenant_url"]
    same = mapping.diff(BASE, {**BASE, "tenant_url": "https://a"}, old_tenant="https://a",
                        new_tenant="https://a")
    assert same.replaces == [] and same.changes == ["tenant_url"]


def test_lost_password_is_a_change() -> None:
    olds = {**BASE, "email_password": None, "password_exists": False}
    assert "email_password" in mapping.diff(olds, BASE).changes
    assert mapping.changed_fields(olds, BASE) == ["email_password"]


# --- tenant URLs and the delete guard --------------------------------------------------------


def test_tenant_url_spellings_normalise_to_one() -> None:
    from qlik_email_resource.tenant_url import normalize_tenant_url, tenant_url_problem

    same = {
        "https://t.eu.qlikcloud.com": [
            "https://t.eu.qlikcloud.com/", "HTTPS://T.EU.QlikCloud.COM",
            "https://t.eu.qlikcloud.com:443/", " https://t.eu.qlikcloud.com ",
        ],
        "http://localhost/t/Demo": ["http://LOCALHOST:80/t/Demo/", "HTTP://localhost/t/Demo"],
        "https://[::1]:8443/t/x": ["https://[::1]:8443/t/x/"],
        "https://127.0.0.1:8443/t/x": ["https://127.0.0.1:8443/t/x//"],
    }
    for canonical, spellings in same.items():
        assert normalize_tenant_url(canonical) == canonical
        for spelling in spellings:
            assert normalize_tenant_url(spelling) == canonical, spelling
    # the path prefix keeps its case; another port or host is another tenant
    assert normalize_tenant_url("https://h/t/Demo") != normalize_tenant_url("https://h/t/demo")
    assert normalize_tenant_url("https://h:8443") != normalize_tenant_url("https://h")
    # credentials in the URL are refused, and never shown
    why = tenant_url_problem("https://admin:hunter2-secret@t.eu.qlikcloud.com")
    assert why and "user name or password" in why and "hunter2" not in why
    why = tenant_url_problem("https://t.eu.qlikcloud.com/?apikey=k3y-in-query")
    assert why and "query" in why and "k3y" not in why


def test_diff_sees_no_change_in_another_spelling_of_the_tenant_url() -> None:
    olds = {**BASE, "tenant_url": "HTTPS://T.eu.qlikcloud.com:443/", "password_exists": True}
    news = {**BASE, "tenant_url": "https://t.eu.qlikcloud.com"}
    assert mapping.diff(olds, news, old_tenant="https://t.eu.qlikcloud.com",
                        new_tenant="https://t.eu.qlikcloud.com").changes == []


def test_not_written_by_compares_tenant_and_modification_time() -> None:
    state = {**BASE, "tenant_id": "T1", "modification_time": "2025-01-01T00:00:00.000Z"}
    answer = {**ANSWER_FLAT, "tenantId": "T1", "modificationTime": "2025-01-01T00:00:00.000Z"}
    assert mapping.not_written_by(state, answer) is None
    later = {**answer, "modificationTime": "2025-01-01T00:00:00.001Z"}
    assert "changed at 2025-01-01T00:00:00.001Z" in (mapping.not_written_by(state, later) or "")
    other = {**answer, "tenantId": "T2"}
    assert "tenant T2" in (mapping.not_written_by(state, other) or "")


def test_not_written_by_without_timestamps_compares_the_written_fields() -> None:
    answer = {k: v for k, v in ANSWER_FLAT.items() if k not in ("modificationTime", "lastUpdated")}
    state = mapping.outputs({}, answer)
    state["modification_time"] = None
    assert mapping.not_written_by(state, answer) is None
    moved = {**answer, "serverAddress": "elsewhere.example.com"}
    assert "server_address" in (mapping.not_written_by(state, moved) or "")


def test_same_value_reads_blank_as_unset_and_struct_floats_as_ints() -> None:
    # The comparison of not_written_by and the fleet's drift.
    assert mapping.same_value("sender_name", "", None)
    assert mapping.same_value("server_port", 587.0, 587)
    assert not mapping.same_value("server_port", 587, 465)
    assert mapping.same_value("password_exists", True, True)  # an output, not an input
    assert not mapping.same_value("password_exists", True, False)
    assert mapping.same_value("auth_failures", 2.0, 2)


def test_struct_number_converts_floats_only() -> None:
    assert mapping.struct_number(465.0) == 465 and isinstance(mapping.struct_number(465.0), int)
    assert mapping.struct_number(465.5) == 465.5
    assert mapping.struct_number("0465") == "0465"
    assert mapping.struct_number(True) is True
