"""Property tests for the desired-state model (mapping.py) and the provider's check.

Whatever a program passes (wrong types, floats from protobuf, unicode digits,
half-URLs, secret wrappers), ``check`` must answer with a normalised config or
with check failures that name a property: never an exception, which Pulumi
would show as a provider crash with a traceback.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from qlik_email_resource import mapping, secret_wire
from qlik_email_resource.provider import TenantEmailConfigProvider

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Anything at all: what a careless program, a stack config string or protobuf can send.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["", " ", "465", "465.0", "٣", "²", "1e3", "0x1d1", "-1", "65536",
                     "ssl", "tls", "StartTLS", "ssl/tls", "NONE", "Microsoft365", "m365",
                     "http://[", "https://", "https://x.invalid/api/v1", "http://::1]",
                     "a@b.c", "smtp://mail.example.com", "mail.example.com\n"]),
)
anything = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(max_size=8), inner, max_size=3),
    ),
    max_leaves=6,
)


def secret(value: Any) -> dict[str, Any]:
    return secret_wire.wrap(value)


maybe_secret = anything | anything.map(secret)
keys = st.sampled_from([*mapping.INPUTS, "serverPort", "securityType", "password",
                        "__provider", "__defaults", "tenantUrl", ""]) | st.text(max_size=12)
random_inputs = st.dictionaries(keys, maybe_secret, max_size=10)

# Valid values per field, to build configs that normalise cleanly.
hosts = st.sampled_from(["smtp.example.com", "email-smtp.eu-west-2.amazonaws.com",
                         "127.0.0.1", "mail.acme.test", " smtp.example.org "])
emails = st.sampled_from(["qlik@example.com", "ops@acme.test", "a.b@mail.example.org"])
passwords = st.text(st.characters(blacklist_characters="\0"), min_size=1, max_size=20)
basic_values: dict[str, st.SearchStrategy[Any]] = {
    "server_address": hosts,
    "server_port": st.integers(1, 65535) | st.integers(1, 65535).map(float)
    | st.integers(1, 65535).map(str),
    "security_type": st.sampled_from(["none", "StartTLS", "SSL/TLS", "starttls", "ssl/tls"]),
    "email_address": emails,
    # Control characters are refused in header fields, NUL in passwords (mapping.py).
    "sender_name": st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1,
                           max_size=20).filter(lambda s: s.strip() != ""),
    "tenant_url": st.sampled_from(["https://a.eu.qlikcloud.com", "https://b.us.qlikcloud.com/",
                                   "http://127.0.0.1:8443/t/demo"]),
    "verify_connection": st.booleans(),
    "test_email_recipient": emails,
}


@st.composite
def valid_basic(draw: st.DrawFn) -> dict[str, Any]:
    props = {key: draw(basic_values[key]) for key in
             ("server_address", "server_port", "security_type", "email_address")}
    if draw(st.booleans()):
        props["username"] = draw(st.sampled_from(["user", "AKIAEXAMPLE", "mailer"]))
        props["email_password"] = draw(passwords.map(secret) | passwords)
    for key in ("sender_name", "tenant_url", "verify_connection", "test_email_recipient"):
        if draw(st.booleans()):
            props[key] = draw(basic_values[key])
    if "tenant_url" in props and draw(st.booleans()):
        props["api_key"] = secret(draw(st.text(min_size=1, max_size=30)))
    return props


@st.composite
def valid_m365(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "service_provider": "Microsoft365",
        "client_id": draw(st.uuids().map(str)),
        "client_secret": secret(draw(st.text(min_size=1, max_size=30))),
        "provider_tenant_id": draw(st.uuids().map(str)),
        "email_address": draw(emails),
    }


valid_configs = valid_basic() | valid_m365()


@st.composite
def mutants(draw: st.DrawFn) -> dict[str, Any]:
    """A valid config with one to three fields replaced by anything: the inputs that
    reach the deepest checks (a field is judged once the others are fine)."""
    props = dict(draw(valid_configs))
    for key in draw(st.lists(st.sampled_from(mapping.INPUTS), min_size=1, max_size=3)):
        props[key] = draw(maybe_secret)
    return props


any_inputs = random_inputs | mutants()


def normalized(props: dict[str, Any]) -> dict[str, Any]:
    out, problems = mapping.normalize(props)
    assert not problems, problems
    return out


@FUZZ
@given(any_inputs)
# Found by this test: int() refused what str.isdigit() accepted; urlsplit raised.
@example({"server_port": "²"})
@example({"tenant_url": "http://["})
@example({"tenant_url": "https://tenant.example:port"})
def test_normalize_never_raises(news: dict[str, Any]) -> None:
    out, problems = mapping.normalize(news)
    for problem in problems:
        assert isinstance(problem.property, str)  # the key as given, even ""
        assert isinstance(problem.reason, str) and problem.reason
    if not problems:
        # A config that passed is a fixed point, and both request bodies can be built.
        again, more = mapping.normalize(out)
        assert not more and again == out
        mapping.expand_put(out)
        mapping.expand_patch_full(out)


@FUZZ
@given(any_inputs)
def test_provider_check_never_raises(news: dict[str, Any]) -> None:
    result = TenantEmailConfigProvider().check({}, news)
    for failure in result.failures or []:
        assert isinstance(failure.property, str) and failure.reason
    # Secret inputs leave check wrapped, whatever else happened.
    for key in mapping.SECRET_INPUTS:
        value = (result.inputs or {}).get(key)
        assert value is None or (isinstance(value, dict) and secret_wire.SIG_KEY in value)


@FUZZ
@given(valid_configs)
def test_valid_configs_normalise_to_clean_wire_values(props: dict[str, Any]) -> None:
    out = normalized(props)
    body = mapping.expand_put(out)
    assert body["serviceProvider"] in mapping.SERVICE_PROVIDERS
    port = body["providerConfig"].get("serverPort")
    assert port is None or (type(port) is int and 1 <= port <= 65535)
    security = body["providerConfig"].get("securityType")
    assert security is None or security in mapping.SECURITY_TYPES


@FUZZ
@given(valid_configs, st.data())
def test_one_wrongly_typed_field_is_reported_by_name(props: dict[str, Any],
                                                     data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(sorted(props)))
    bad = data.draw(st.sampled_from([[], {}, ["smtp.example.com"], {"a": 1}]))
    bad = data.draw(st.sampled_from([bad, secret(bad)]))
    _, problems = mapping.normalize({**props, key: bad})
    assert key in {p.property for p in problems}


@FUZZ
@given(st.dictionaries(st.text(max_size=20), anything, max_size=12)
       | st.fixed_dictionaries({"providerConfig": st.dictionaries(st.text(max_size=15),
                                                                  anything, max_size=8)},
                               optional={"serviceProvider": anything, "status": anything,
                                         "passwordExists": anything, "serverPort": anything}))
def test_reading_any_answer_never_raises(answer: dict[str, Any]) -> None:
    # [I] answers: real tenants add fields; reading must tolerate whatever comes.
    mapping.is_configured(answer)
    live = mapping.flatten(answer)
    assert live["server_port"] is None or type(live["server_port"]) is int
    mapping.outputs({"email_password": "pw"}, answer)
    mapping.read_inputs({"email_password": "pw"}, answer)


# --- diff ------------------------------------------------------------------------------


def as_state(props: dict[str, Any]) -> dict[str, Any]:
    """What state holds after create: outputs, with the port back as a protobuf float."""
    out = normalized(props)
    state = {key: out.get(key) for key in mapping.INPUTS}
    if isinstance(state.get("server_port"), int):
        state["server_port"] = float(state["server_port"])
    for key in mapping.SECRET_INPUTS:
        if state.get(key) is not None:
            state[key] = secret(state[key])
    return state


@FUZZ
@given(valid_configs)
def test_diff_of_a_config_with_itself_is_empty(props: dict[str, Any]) -> None:
    out = normalized(props)
    assert mapping.diff(out, out).changes == []
    # ...also across the forms state and checked inputs take on the wire.
    result = mapping.diff(as_state(props), out)
    assert result.changes == [] and result.replaces == []
    assert mapping.changed_fields(as_state(props), out) == []
    # No PATCH ops at all (or None for Microsoft365, which PATCH cannot express).
    assert mapping.expand_patch(as_state(props), out) in ([], None)
    provider_diff = TenantEmailConfigProvider().diff("id", as_state(props), out)
    assert not provider_diff.changes


other_values: dict[str, st.SearchStrategy[Any]] = {
    **basic_values,
    "username": st.sampled_from(["user", "other-user", "AKIAEXAMPLE2"]),
    "email_password": passwords,
    "client_id": st.uuids().map(str),
    "client_secret": st.text(min_size=1, max_size=20),
    "provider_tenant_id": st.uuids().map(str),
    "api_key": st.text(min_size=1, max_size=20),
}


@FUZZ
@given(valid_configs, st.data())
def test_diff_detects_every_single_field_change(props: dict[str, Any],
                                                data: st.DataObject) -> None:
    old = normalized(props)
    key = data.draw(st.sampled_from(sorted(k for k in old if k != "service_provider")))
    new_raw = dict(props)
    if data.draw(st.booleans()):
        new_raw[key] = data.draw(other_values[key])
    else:
        new_raw.pop(key)  # the field is removed from the program
    new, problems = mapping.normalize(new_raw)
    assume(not problems)
    changed = [k for k in mapping.INPUTS if mapping.unwrap_secret(old.get(k))
               != mapping.unwrap_secret(new.get(k))]
    # Equivalent spellings (465 vs "465", False vs absent) are no change.
    assume(changed and not (key == "verify_connection" and not old.get(key)
                            and not new.get(key)))
    assert changed == [key]
    result = mapping.diff(as_state(props), new)
    assert key in result.changes
    assert TenantEmailConfigProvider().diff("id", as_state(props), new).changes
    if key in mapping.API_FIELDS:
        assert key in mapping.changed_fields(as_state(props), new)
        ops = mapping.expand_patch(as_state(props), new)
        # PATCH either says exactly this one field, or the provider must PUT.
        assert ops is None or [op["path"] for op in ops] == [mapping.PATCH_PATHS[key]]
