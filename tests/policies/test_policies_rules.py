"""The rule logic, called through each policy's own ``validate(...)`` (no analyzer).

Fast and exact; what the analyzer adds (schema defaults, enforcement levels,
secret unwrapping, unknowns) is covered in test_policies_analyzer.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from policies import rules

OPTS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)
BY_NAME = {p.name: p for p in rules.POLICIES}
RESOURCE_RULES = [p.name for p in rules.POLICIES if isinstance(p, ResourceValidationPolicy)]
M365: dict[str, Any] = {
    "service_provider": "Microsoft365",
    "client_id": "12345678-1234-1234-1234-123456789012",
    "client_secret": "m365-client-secret",
    "provider_tenant_id": "87654321-4321-4321-4321-210987654321",
    "email_address": "abc@mydomain.com",
    "verify_connection": True,
}


def urn(name: str, type_: str = rules.RESOURCE_TYPE) -> str:
    return f"urn:pulumi:dev::tenants::{type_}::{name}"


class Recorder:
    """A ``report_violation`` that keeps (message, urn) pairs."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str | None]] = []

    def __call__(self, message: str, urn: str | None = None) -> None:
        self.found.append((message, urn))


def check(
    rule: str,
    props: dict[str, Any],
    config: dict[str, Any] | None = None,
    *,
    type_: str = rules.RESOURCE_TYPE,
    name: str = "mail",
) -> list[str]:
    policy = BY_NAME[rule]
    assert isinstance(policy, ResourceValidationPolicy)
    report = Recorder()
    args = ResourceValidationArgs(type_, props, urn(name, type_), name, OPTS, None, config)
    policy.validate(args, report)
    return [message for message, _ in report.found]


def check_stack(
    resources: Sequence[tuple[str, Mapping[str, Any]]],
    type_: str = rules.RESOURCE_TYPE,
    report: Recorder | None = None,
) -> list[tuple[str, str | None]]:
    policy = BY_NAME[rules.ONE_CONFIG_PER_TENANT]
    assert isinstance(policy, StackValidationPolicy)
    report = report if report is not None else Recorder()
    stack = [
        PolicyResource(type_, props, urn(name, type_), name, OPTS, None, None, [], {})
        for name, props in resources
    ]
    policy.validate(StackValidationArgs(stack), report)
    return report.found


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    merged = {**base, **changes}
    return {k: v for k, v in merged.items() if v is not None}


def assert_one(messages: list[str], rule: str, *fragments: str) -> str:
    assert len(messages) == 1, messages
    message = messages[0]
    assert f"TenantEmailConfig 'mail' fails {rule}:" in message
    assert "Fix:" in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


# ------------------------------------------------------------------ the published names


def test_policy_names_are_the_published_ones() -> None:
    """Tests take the names from the pack, except text that mirrors a user's file (a
    tenants.yaml or --policy-pack-config body); this one pins them, because users'
    --policy-pack-config files and CI logs key on them (a rename breaks them)."""
    assert rules.POLICY_NAMES == (
        "email-tls-required",
        "email-allowed-ports",
        "email-port-matches-security",
        "email-allowed-smtp-hosts",
        "email-sender-domains",
        "email-tenant-url",
        "email-credentials-present",
        "email-verify-on-apply",
        "email-one-config-per-tenant",
    )
    assert rules.RESOURCE_TYPE == "pulumi-python:dynamic/qlik:TenantEmailConfig"


# ------------------------------------------------------------------ the tutorial passes them all


@pytest.mark.parametrize("rule", RESOURCE_RULES)
def test_tutorial_example_passes_every_rule(rule: str, tutorial: dict[str, Any]) -> None:
    assert check(rule, tutorial) == []


@pytest.mark.parametrize("rule", RESOURCE_RULES)
def test_other_resource_types_are_ignored(rule: str) -> None:
    assert (
        check(rule, {"security_type": "none"}, type_="aws:ses/domainIdentity:DomainIdentity") == []
    )


# ------------------------------------------------------------------ email-tls-required


@pytest.mark.parametrize("security", ["SSL/TLS", "StartTLS"])
def test_tls_required_passes_tls(security: str, tutorial: dict[str, Any]) -> None:
    assert check(rules.TLS_REQUIRED, with_(tutorial, security_type=security)) == []


@pytest.mark.parametrize(
    ("security", "fragment"),
    [("none", "security_type is 'none'"), (None, "not set"), ("tls", "'tls'")],
)
def test_tls_required_fails_without_tls(
    security: str | None, fragment: str, tutorial: dict[str, Any]
) -> None:
    messages = check(rules.TLS_REQUIRED, with_(tutorial, security_type=security))
    assert_one(messages, rules.TLS_REQUIRED, fragment, "'SSL/TLS' or 'StartTLS'")


def test_tls_required_configured_to_forbid_starttls(tutorial: dict[str, Any]) -> None:
    config = {"allowStartTls": False}
    starttls = with_(tutorial, security_type="StartTLS", server_port=587)
    message = assert_one(check(rules.TLS_REQUIRED, starttls, config), rules.TLS_REQUIRED)
    assert "does not allow" in message and "or 'StartTLS'" not in message
    assert check(rules.TLS_REQUIRED, tutorial, config) == []


def test_tls_required_skips_microsoft365() -> None:
    assert check(rules.TLS_REQUIRED, M365) == []


# ------------------------------------------------------------------ email-allowed-ports


@pytest.mark.parametrize("port", [465, 587.0, 2465.0, 2587, "587"])
def test_allowed_ports_pass(port: Any, tutorial: dict[str, Any]) -> None:
    assert check(rules.ALLOWED_PORTS, with_(tutorial, server_port=port)) == []


def test_allowed_ports_fail_prints_integers(tutorial: dict[str, Any]) -> None:
    message = assert_one(
        check(rules.ALLOWED_PORTS, with_(tutorial, server_port=25.0)),
        rules.ALLOWED_PORTS,
        "server_port 25 is not one of the allowed ports (465, 587, 2465, 2587)",
    )
    assert "25.0" not in message and "465.0" not in message


@pytest.mark.parametrize(("port", "fragment"), [(None, "not set"), (587.5, "not a whole")])
def test_allowed_ports_missing_or_odd(port: Any, fragment: str, tutorial: dict[str, Any]) -> None:
    assert_one(
        check(rules.ALLOWED_PORTS, with_(tutorial, server_port=port)), rules.ALLOWED_PORTS, fragment
    )


@pytest.mark.parametrize("port", ["\u00b2", "\u0663", "\uff15\uff18\uff17", " 5\u00b2 "])
def test_non_ascii_digit_ports_are_reported(port: str, tutorial: dict[str, Any]) -> None:
    # str.isdigit() is True for superscripts and other scripts' digits; int() rejects
    # some ("²") and silently converts others ("٣" -> 3): neither is a port.
    props = with_(tutorial, server_port=port)
    assert_one(check(rules.ALLOWED_PORTS, props), rules.ALLOWED_PORTS, "not a whole port number")
    assert check(rules.PORT_MATCHES_SECURITY, props) == []


def test_allowed_ports_configured_with_float_config(tutorial: dict[str, Any]) -> None:
    config = {"allowedPorts": [465.0]}  # as the analyzer delivers it
    assert_one(check(rules.ALLOWED_PORTS, tutorial, config), rules.ALLOWED_PORTS, "(465)")
    assert check(rules.ALLOWED_PORTS, with_(tutorial, server_port=465.0), config) == []


# ------------------------------------------------------------------ email-port-matches-security


@pytest.mark.parametrize(
    ("port", "security"),
    [
        (465, "SSL/TLS"),
        (2465.0, "SSL/TLS"),
        (587, "StartTLS"),
        (2587.0, "StartTLS"),
        (2525, "none"),
    ],
)
def test_port_matches_security_pass(port: Any, security: str, tutorial: dict[str, Any]) -> None:
    props = with_(tutorial, server_port=port, security_type=security)
    assert check(rules.PORT_MATCHES_SECURITY, props) == []


@pytest.mark.parametrize(
    ("port", "security", "fragments"),
    [
        (465, "StartTLS", ("465 is an implicit-TLS port", "set security_type to 'SSL/TLS'")),
        (
            587.0,
            "SSL/TLS",
            ("587 is a submission", "set security_type to 'StartTLS'", "port 465 or 2465"),
        ),
        (2465, "none", ("2465 is an implicit-TLS port", "'none'")),
    ],
)
def test_port_matches_security_fail(
    port: Any, security: str, fragments: tuple[str, ...], tutorial: dict[str, Any]
) -> None:
    props = with_(tutorial, server_port=port, security_type=security)
    assert_one(check(rules.PORT_MATCHES_SECURITY, props), rules.PORT_MATCHES_SECURITY, *fragments)


def test_port_matches_security_configured(tutorial: dict[str, Any]) -> None:
    props = with_(tutorial, server_port=2525, security_type="SSL/TLS")
    config = {"startTlsPorts": [2525.0]}
    assert_one(
        check(rules.PORT_MATCHES_SECURITY, props, config), rules.PORT_MATCHES_SECURITY, "2525"
    )


def test_port_matches_security_ignores_missing_values() -> None:
    assert check(rules.PORT_MATCHES_SECURITY, {"server_port": 465}) == []
    assert check(rules.PORT_MATCHES_SECURITY, {"security_type": "none"}) == []


# ------------------------------------------------------------------ email-allowed-smtp-hosts

HOSTS = {"allowedHosts": ["email-smtp.*.amazonaws.com", "smtp.sendgrid.net"]}


def test_allowed_hosts_unconfigured_passes_everything(tutorial: dict[str, Any]) -> None:
    assert check(rules.ALLOWED_SMTP_HOSTS, with_(tutorial, server_address="smtp.evil.test")) == []
    assert (
        check(rules.ALLOWED_SMTP_HOSTS, with_(tutorial, server_address="x"), {"allowedHosts": []})
        == []
    )


@pytest.mark.parametrize(
    "host",
    [
        "email-smtp.eu-west-2.amazonaws.com",
        "email-smtp.us-east-1.amazonaws.com",
        "SMTP.SendGrid.NET.",
    ],
)
def test_allowed_hosts_configured_pass(host: str, tutorial: dict[str, Any]) -> None:
    assert check(rules.ALLOWED_SMTP_HOSTS, with_(tutorial, server_address=host), HOSTS) == []


@pytest.mark.parametrize(
    "host",
    [
        "smtp.evil.test",
        "email-smtp.eu-west-2.amazonaws.com.evil.test",  # suffix trick
        "email-smtp.a.b.amazonaws.com",  # an inner '*' is one label only
        "evilsmtp.sendgrid.net",
    ],
)
def test_allowed_hosts_configured_fail(host: str, tutorial: dict[str, Any]) -> None:
    messages = check(rules.ALLOWED_SMTP_HOSTS, with_(tutorial, server_address=host), HOSTS)
    assert_one(messages, rules.ALLOWED_SMTP_HOSTS, repr(host), "smtp.sendgrid.net")


def test_allowed_hosts_missing_address_fails_when_configured(tutorial: dict[str, Any]) -> None:
    messages = check(rules.ALLOWED_SMTP_HOSTS, with_(tutorial, server_address=None), HOSTS)
    assert_one(messages, rules.ALLOWED_SMTP_HOSTS, "server_address is not set")


# ------------------------------------------------------------------ email-sender-domains

SENDERS = {"allowedDomains": ["mydomain.com"]}


def test_sender_domains_unconfigured_passes_everything(tutorial: dict[str, Any]) -> None:
    assert check(rules.SENDER_DOMAINS, with_(tutorial, email_address="x@evil.test")) == []


@pytest.mark.parametrize("address", ["qlik@mydomain.com", "Qlik Reports <qlik@MyDomain.com>"])
def test_sender_domains_configured_pass(address: str, tutorial: dict[str, Any]) -> None:
    assert check(rules.SENDER_DOMAINS, with_(tutorial, email_address=address), SENDERS) == []


@pytest.mark.parametrize(
    ("address", "fragment"),
    [
        ("qlik@evil.test", "on 'evil.test'"),
        ("qlik@reports.mydomain.com", "on 'reports.mydomain.com'"),  # exact unless '*.'
        ("qlik@mydomain.com.evil.test", "on 'mydomain.com.evil.test'"),
        ("no-at-sign", "has no domain"),
        (None, "email_address is not set"),
    ],
)
def test_sender_domains_configured_fail(
    address: str | None, fragment: str, tutorial: dict[str, Any]
) -> None:
    messages = check(rules.SENDER_DOMAINS, with_(tutorial, email_address=address), SENDERS)
    assert_one(messages, rules.SENDER_DOMAINS, fragment)


def test_sender_domains_wildcard_covers_subdomains(tutorial: dict[str, Any]) -> None:
    props = with_(tutorial, email_address="qlik@reports.mydomain.com")
    assert check(rules.SENDER_DOMAINS, props, {"allowedDomains": ["*.mydomain.com"]}) == []


def test_sender_domains_applies_to_microsoft365() -> None:
    assert_one(
        check(rules.SENDER_DOMAINS, M365, {"allowedDomains": ["other.test"]}), rules.SENDER_DOMAINS
    )


# ------------------------------------------------------------------ email-tenant-url


@pytest.mark.parametrize(
    "url",
    [
        "https://mytenant.eu.qlikcloud.com",
        "https://MyTenant.US.qlikcloud.com/",
        "https://mytenant.eu.qlikcloud.com:443",
        None,  # from stack config: a policy cannot see it
    ],
)
def test_tenant_url_pass(url: str | None, tutorial: dict[str, Any]) -> None:
    assert check(rules.TENANT_URL, with_(tutorial, tenant_url=url)) == []


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://mytenant.eu.qlikcloud.com", "does not use https://"),
        (
            "https://mytenant.eu.qlikcloud.com.evil.test",
            "not on an allowed domain (*.qlikcloud.com)",
        ),
        ("https://qlikcloud.com", "not on an allowed domain"),
        ("https://127.0.0.1:8443/t/demo", "allowLocalhost: true"),
        ("mytenant.eu.qlikcloud.com", "not an absolute URL"),
        ("https://host:notaport", "not an absolute URL"),
    ],
)
def test_tenant_url_fail(url: str, fragment: str, tutorial: dict[str, Any]) -> None:
    assert_one(check(rules.TENANT_URL, with_(tutorial, tenant_url=url)), rules.TENANT_URL, fragment)


@pytest.mark.parametrize(
    "url",
    ["https://localhost:8443/t/demo", "https://127.0.0.1:50123/t/acme", "https://[::1]:9/t/x"],
)
def test_tenant_url_localhost_when_allowed(url: str, tutorial: dict[str, Any]) -> None:
    props = with_(tutorial, tenant_url=url)
    assert check(rules.TENANT_URL, props, {"allowLocalhost": True}) == []
    assert len(check(rules.TENANT_URL, props)) == 1


def test_tenant_url_http_never_passes_even_on_localhost(tutorial: dict[str, Any]) -> None:
    props = with_(tutorial, tenant_url="http://127.0.0.1:8080/t/demo")
    assert_one(
        check(rules.TENANT_URL, props, {"allowLocalhost": True}), rules.TENANT_URL, "https://"
    )


def test_tenant_url_configured_domains(tutorial: dict[str, Any]) -> None:
    config = {"allowedDomains": ["*.us.qlikcloud.com"]}
    assert_one(check(rules.TENANT_URL, tutorial, config), rules.TENANT_URL, "*.us.qlikcloud.com")
    props = with_(tutorial, tenant_url="https://t.us.qlikcloud.com")
    assert check(rules.TENANT_URL, props, config) == []


def test_tenant_url_message_drops_credentials_and_query(tutorial: dict[str, Any]) -> None:
    props = with_(
        tutorial, tenant_url="http://admin:hunter22@mytenant.eu.qlikcloud.com/?key=QUERYKEY"
    )
    message = assert_one(check(rules.TENANT_URL, props), rules.TENANT_URL)
    assert "hunter22" not in message and "QUERYKEY" not in message
    assert "'http://mytenant.eu.qlikcloud.com'" in message


# ------------------------------------------------------------------ email-credentials-present


def test_credentials_present_pass(tutorial: dict[str, Any]) -> None:
    assert check(rules.CREDENTIALS_PRESENT, tutorial) == []
    assert check(rules.CREDENTIALS_PRESENT, M365) == []


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"email_password": None}, "missing: email_password"),
        ({"email_password": "  "}, "missing: email_password"),
        ({"username": None, "email_password": None}, "missing: username, email_password"),
        ({"service_provider": "Gmail"}, "service_provider is 'Gmail'"),
    ],
)
def test_credentials_present_basic_auth_fail(
    changes: dict[str, Any], fragment: str, tutorial: dict[str, Any]
) -> None:
    message = assert_one(
        check(rules.CREDENTIALS_PRESENT, with_(tutorial, **changes)),
        rules.CREDENTIALS_PRESENT,
        fragment,
    )
    assert "YourPasswordHere" not in message


def test_credentials_present_microsoft365_fail() -> None:
    message = assert_one(
        check(rules.CREDENTIALS_PRESENT, with_(M365, client_secret=None, provider_tenant_id="")),
        rules.CREDENTIALS_PRESENT,
        "Microsoft365 needs client_id, client_secret, provider_tenant_id",
        "missing: client_secret, provider_tenant_id",
    )
    assert str(M365["client_id"]) not in message


def test_credentials_tolerate_camel_case() -> None:
    camel = {"serviceProvider": "Microsoft365", "clientId": "c", "clientSecret": "s"}
    assert_one(
        check(rules.CREDENTIALS_PRESENT, camel),
        rules.CREDENTIALS_PRESENT,
        "missing: provider_tenant_id",
    )


# ------------------------------------------------------------------ email-verify-on-apply


def test_verify_on_apply(tutorial: dict[str, Any]) -> None:
    assert check(rules.VERIFY_ON_APPLY, tutorial) == []
    assert_one(
        check(rules.VERIFY_ON_APPLY, with_(tutorial, verify_connection=None)),
        rules.VERIFY_ON_APPLY,
        "not set",
    )
    assert_one(
        check(rules.VERIFY_ON_APPLY, with_(tutorial, verify_connection=False)),
        rules.VERIFY_ON_APPLY,
        "False",
    )


# ------------------------------------------------------------------ email-one-config-per-tenant


def test_one_config_per_tenant_same_url_normalised(tutorial: dict[str, Any]) -> None:
    found = check_stack(
        [
            ("a", with_(tutorial, tenant_url="https://MyTenant.eu.qlikcloud.com/")),
            ("b", with_(tutorial, tenant_url="https://mytenant.eu.qlikcloud.com:443")),
            ("c", with_(tutorial, tenant_url="https://other.eu.qlikcloud.com")),
        ]
    )
    assert len(found) == 1
    message, found_urn = found[0]
    assert found_urn == urn("b")
    assert f"'b' fails {rules.ONE_CONFIG_PER_TENANT}" in message and "same tenant as 'a'" in message
    assert "'https://mytenant.eu.qlikcloud.com'" in message


def test_one_config_per_tenant_stack_default_tenant(tutorial: dict[str, Any]) -> None:
    found = check_stack(
        [("a", with_(tutorial, tenant_url=None)), ("b", with_(tutorial, tenant_url=""))]
    )
    assert [u for _, u in found] == [urn("b")]
    assert "stack's default tenant" in found[0][0]


def test_one_config_per_tenant_distinct_tenants_pass(tutorial: dict[str, Any]) -> None:
    assert (
        check_stack(
            [
                ("default", with_(tutorial, tenant_url=None)),
                ("demo", with_(tutorial, tenant_url="https://127.0.0.1:8443/t/demo")),
                ("acme", with_(tutorial, tenant_url="https://127.0.0.1:8443/t/acme")),
                ("other-port", with_(tutorial, tenant_url="https://127.0.0.1:9443/t/demo")),
            ]
        )
        == []
    )


def test_one_config_per_tenant_ignores_other_types(tutorial: dict[str, Any]) -> None:
    assert check_stack([("a", tutorial), ("b", tutorial)], type_="aws:s3/bucket:Bucket") == []


def test_one_config_per_tenant_three_duplicates_report_two(tutorial: dict[str, Any]) -> None:
    found = check_stack([("a", tutorial), ("b", tutorial), ("c", tutorial)])
    assert [u for _, u in found] == [urn("b"), urn("c")]


@pytest.mark.parametrize("order", [("first", "second"), ("second", "first")])
def test_one_config_per_tenant_names_the_same_resource_in_any_order(
    order: tuple[str, str], tutorial: dict[str, Any]
) -> None:
    """The engine hands AnalyzeStack its resources in no fixed order (it ranges over
    a concurrent map: pkg/resource/deploy/step_generator.go, AnalyzeResources), so the
    rule orders them by URN: the finding is the same in every run and engine."""
    found = check_stack([(name, tutorial) for name in order])
    assert [u for _, u in found] == [urn("second")]
    assert "same tenant as 'first'" in found[0][0]


# ------------------------------------------------------------------ helpers, unknowns, robustness


@pytest.mark.parametrize(
    ("host", "pattern", "expected"),
    [
        ("a.eu.qlikcloud.com", "*.qlikcloud.com", True),
        ("qlikcloud.com", "*.qlikcloud.com", False),
        ("a.qlikcloud.com.evil", "*.qlikcloud.com", False),
        ("aqlikcloud.com", "*.qlikcloud.com", False),
        ("email-smtp.eu-west-2.amazonaws.com", "email-smtp.*.amazonaws.com", True),
        ("email-smtp.x.y.amazonaws.com", "email-smtp.*.amazonaws.com", False),
        ("smtp1.example.com", "smtp*.example.com", True),
        ("", "*.example.com", False),
    ],
)
def test_host_matches(host: str, pattern: str, expected: bool) -> None:
    assert rules.host_matches(host, pattern) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (587.0, 587),
        (587, 587),
        (" 587 ", 587),
        (587.5, None),
        (True, None),
        ("x", None),
        (None, None),
        ("\u00b2", None),
        ("\u0663", None),
    ],
)
def test_as_int(value: Any, expected: int | None) -> None:
    assert rules.as_int(value) == expected


@pytest.mark.parametrize("rule", RESOURCE_RULES)
def test_unknown_values_raise_the_preview_error_only(rule: str, tutorial: dict[str, Any]) -> None:
    """Every field unknown: a rule passes or raises UnknownValueError, never anything else."""
    props = unknown_checking_proxy({key: UNKNOWN_STRING_VALUE for key in tutorial})
    config = {"allowedHosts": ["smtp.sendgrid.net"], "allowedDomains": ["mydomain.com"]}
    with contextlib.suppress(UnknownValueError):
        check(rule, props, config)


def test_stack_rule_checks_known_urls_then_reports_unknown(tutorial: dict[str, Any]) -> None:
    stack = [
        ("a", tutorial),
        ("b", dict(tutorial)),
        ("c", with_(tutorial, tenant_url=UNKNOWN_STRING_VALUE)),
    ]
    proxied = [(name, unknown_checking_proxy(props)) for name, props in stack]
    report = Recorder()
    with pytest.raises(UnknownValueError):
        check_stack(proxied, report=report)
    found = report.found
    assert [u for _, u in found] == [urn("b")]


def test_secret_pasted_into_a_printed_field_is_blanked(tutorial: dict[str, Any]) -> None:
    props = with_(tutorial, server_address="Sup3r-Secret-PW", email_password="Sup3r-Secret-PW")
    message = assert_one(check(rules.ALLOWED_SMTP_HOSTS, props, HOSTS), rules.ALLOWED_SMTP_HOSTS)
    assert "Sup3r-Secret-PW" not in message and "[secret]" in message


FIELDS = [
    "server_address",
    "server_port",
    "security_type",
    "username",
    "email_address",
    "email_password",
    "sender_name",
    "service_provider",
    "client_id",
    "client_secret",
    "provider_tenant_id",
    "tenant_url",
    "api_key",
    "verify_connection",
    "serverPort",
]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        [
            "SSL/TLS",
            "StartTLS",
            "none",
            "Microsoft365",
            "https://a.eu.qlikcloud.com",
            "http://[::1",
            "https://x:99999",
            "@",
            "a@b@c",
        ]
    ),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=150, deadline=None)
@given(props=st.dictionaries(st.sampled_from(FIELDS), VALUES), rule=st.sampled_from(RESOURCE_RULES))
def test_no_rule_crashes_on_odd_values(props: dict[str, Any], rule: str) -> None:
    config = {
        "allowedHosts": ["*.example.com"],
        "allowedDomains": ["example.com"],
        "allowLocalhost": True,
    }
    for messages in (check(rule, props), check(rule, props, config)):
        assert all(isinstance(m, str) and "Fix:" in m for m in messages)
