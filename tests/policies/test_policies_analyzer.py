"""The whole pack through its real analyzer server: a CLI-less ``pulumi preview --policy-pack``.

``AnalyzerServer`` spawns ``python policies/__main__.py`` exactly as the CLI does and
speaks gRPC to it: GetAnalyzerInfo, Configure (schema defaults applied as the CLI
applies them, then the ``--policy-pack-config`` values), Analyze, AnalyzeStack.
One server for the module; every test configures it afresh.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from pulumi.runtime.proto import analyzer_pb2

from qlik_email_resource import secret_wire
from qlik_email_resource.offline.grpc_servers import AnalyzerServer
from qlik_email_resource.policy_pack.rules import ALLOWED_PORTS as PORTS
from qlik_email_resource.policy_pack.rules import ALLOWED_SMTP_HOSTS as HOSTS
from qlik_email_resource.policy_pack.rules import CREDENTIALS_PRESENT as CREDS
from qlik_email_resource.policy_pack.rules import ONE_CONFIG_PER_TENANT as ONE
from qlik_email_resource.policy_pack.rules import PORT_MATCHES_SECURITY as MATCH
from qlik_email_resource.policy_pack.rules import RESOURCE_TYPE as TYPE
from qlik_email_resource.policy_pack.rules import SENDER_DOMAINS as SENDERS
from qlik_email_resource.policy_pack.rules import TENANT_URL as TENANT
from qlik_email_resource.policy_pack.rules import TLS_REQUIRED as TLS
from qlik_email_resource.policy_pack.rules import VERIFY_ON_APPLY as VERIFY

PACK_DIR = Path(__file__).resolve().parents[2] / "policies"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
MANDATORY, ADVISORY = analyzer_pb2.MANDATORY, analyzer_pb2.ADVISORY

# Canaries: if any of these reach a diagnostic or the server's stderr, a secret leaked.
PASSWORD = "canary-PASSWORD-7f3a9c"
CLIENT_SECRET = "canary-CLIENTSECRET-51be0d"
API_KEY = "canary-APIKEY-c29e44"
CANARIES = (PASSWORD, CLIENT_SECRET, API_KEY)

# The qlik.dev tutorial's example: AWS SES on 2465 with implicit TLS.
TUTORIAL: dict[str, Any] = {
    "server_address": "email-smtp.eu-west-2.amazonaws.com",
    "server_port": 2465,
    "security_type": "SSL/TLS",
    "username": "SKIARX3IRHQ7J3ZLGABC",
    "email_address": "qlik@mydomain.com",
    "email_password": PASSWORD,
    "tenant_url": "https://mytenant.eu.qlikcloud.com",
    "api_key": API_KEY,
    "verify_connection": True,
}
M365: dict[str, Any] = {
    "service_provider": "Microsoft365",
    "client_id": "12345678-1234-1234-1234-123456789012",
    "client_secret": CLIENT_SECRET,
    "provider_tenant_id": "87654321-4321-4321-4321-210987654321",
    "email_address": "abc@mydomain.com",
    "tenant_url": "https://mytenant.eu.qlikcloud.com",
    "api_key": API_KEY,
    "verify_connection": True,
}


def urn(name: str) -> str:
    return f"urn:pulumi:dev::tenants::{TYPE}::{name}"


def props_of(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    merged = {**base, **changes}
    return {k: v for k, v in merged.items() if v is not None}


def secret(value: Any) -> dict[str, Any]:
    """A value wrapped the way the engine marshals secrets (KeepSecrets)."""
    return secret_wire.wrap(value)


@pytest.fixture
def diagnostics_of(pack: AnalyzerServer) -> Iterator[Any]:
    """``diagnostics_of(props, config=None, name="mail")``; scans every answer for canaries."""
    seen: list[analyzer_pb2.AnalyzeDiagnostic] = []

    def run(
        props: dict[str, Any], config: dict[str, Any] | None = None, name: str = "mail"
    ) -> dict[str, analyzer_pb2.AnalyzeDiagnostic]:
        pack.configure(config or {})
        found = pack.analyze(type_=TYPE, urn=urn(name), name=name, properties=props)
        seen.extend(found)
        names = [d.policyName for d in found]
        assert len(names) == len(set(names)), names
        return {d.policyName: d for d in found}

    yield run
    assert_no_canary(seen, pack)


def assert_no_canary(
    diagnostics: list[analyzer_pb2.AnalyzeDiagnostic], pack: AnalyzerServer
) -> None:
    text = ("\n".join(json_format.MessageToJson(d) for d in diagnostics) + pack.stderr()).lower()
    for canary in CANARIES:
        assert canary.lower() not in text


# ------------------------------------------------------------------ GetAnalyzerInfo

EXPECTED_INFO: dict[str, tuple[int, dict[str, Any]]] = {
    TLS: (MANDATORY, {"allowStartTls": True}),
    PORTS: (MANDATORY, {"allowedPorts": [465, 587, 2465, 2587]}),
    MATCH: (ADVISORY, {"implicitTlsPorts": [465, 2465], "startTlsPorts": [587, 2587]}),
    HOSTS: (MANDATORY, {"allowedHosts": []}),
    SENDERS: (MANDATORY, {"allowedDomains": []}),
    TENANT: (MANDATORY, {"allowedDomains": ["*.qlikcloud.com"], "allowLocalhost": False}),
    CREDS: (MANDATORY, {}),
    VERIFY: (ADVISORY, {}),
    ONE: (MANDATORY, {}),
}


def test_info_lists_every_rule_with_level_and_schema_defaults(pack: AnalyzerServer) -> None:
    info = pack.info()
    assert info.name == "qlik-email" and info.supportsConfig
    got = {}
    for policy in info.policies:
        schema = json_format.MessageToDict(policy.configSchema.properties)
        defaults = {key: spec["default"] for key, spec in schema.items()}
        assert all(spec.get("description") for spec in schema.values()), policy.name
        assert policy.description
        got[policy.name] = (policy.enforcementLevel, defaults)
    assert got == EXPECTED_INFO  # 587.0 == 587: defaults come back as floats
    kinds = {p.name: p.policy_type for p in info.policies}
    assert kinds[ONE] == analyzer_pb2.POLICY_TYPE_STACK
    assert {k for k, v in kinds.items() if v == analyzer_pb2.POLICY_TYPE_RESOURCE} == set(
        EXPECTED_INFO
    ) - {ONE}


# ------------------------------------------------------------------ the tutorial passes

TUTORIAL_VARIANTS: dict[str, dict[str, Any]] = {
    "as written": {},
    "port as float": {"server_port": 2465.0},
    "secrets wrapped": {"email_password": secret(PASSWORD), "api_key": secret(API_KEY)},
    "tenant from stack config": {"tenant_url": None, "api_key": None},
    "with provider outputs": {
        "__provider": secret("gASV..."),
        "tenant_id": "BL4t",
        "is_valid": True,
    },
    "StartTLS on 587": {"security_type": "StartTLS", "server_port": 587},
    "sender name": {"sender_name": "Qlik Reports"},
}


@pytest.mark.parametrize("variant", list(TUTORIAL_VARIANTS))
def test_tutorial_example_passes_default_pack(variant: str, diagnostics_of: Any) -> None:
    assert diagnostics_of(props_of(TUTORIAL, **TUTORIAL_VARIANTS[variant])) == {}


def test_tutorial_example_in_camel_case_passes(diagnostics_of: Any) -> None:
    camel = {
        "serverAddress": TUTORIAL["server_address"],
        "serverPort": 2465.0,
        "securityType": "SSL/TLS",
        "username": TUTORIAL["username"],
        "emailAddress": TUTORIAL["email_address"],
        "emailPassword": PASSWORD,
        "tenantUrl": TUTORIAL["tenant_url"],
        "verifyConnection": True,
    }
    assert diagnostics_of(camel) == {}


def test_microsoft365_passes_default_pack(diagnostics_of: Any) -> None:
    assert diagnostics_of(M365) == {}


def test_other_resource_types_get_no_diagnostics(pack: AnalyzerServer) -> None:
    pack.configure()
    found = pack.analyze(
        type_="aws:s3/bucket:Bucket", urn="urn:b", name="b", properties={"security_type": "none"}
    )
    assert found == []


# ------------------------------------------------------------------ fail, configured, disabled

# (id, rule under test, --policy-pack-config, property changes, {diagnostic: level} expected)
CASES: list[tuple[str, str, dict[str, Any], dict[str, Any], dict[str, int]]] = [
    ("tls fails on none", TLS, {}, {"security_type": "none"}, {TLS: MANDATORY, MATCH: ADVISORY}),
    (
        "tls: StartTLS forbidden",
        TLS,
        {TLS: {"allowStartTls": False}},
        {"security_type": "StartTLS", "server_port": 587},
        {TLS: MANDATORY},
    ),
    ("ports fails on 25", PORTS, {}, {"server_port": 25.0}, {PORTS: MANDATORY}),
    ("ports: only 465", PORTS, {PORTS: {"allowedPorts": [465]}}, {}, {PORTS: MANDATORY}),
    ("match fails on 587+SSL", MATCH, {}, {"server_port": 587}, {MATCH: ADVISORY}),
    (
        "match: 2525 is a submission port",
        MATCH,
        {
            PORTS: {"allowedPorts": [2525]},
            MATCH: {"startTlsPorts": [2525], "enforcementLevel": "mandatory"},
        },
        {"server_port": 2525},
        {MATCH: MANDATORY},
    ),
    ("hosts: not configured", HOSTS, {}, {"server_address": "smtp.evil.test"}, {}),
    (
        "hosts: sendgrid only",
        HOSTS,
        {HOSTS: {"allowedHosts": ["smtp.sendgrid.net"]}},
        {},
        {HOSTS: MANDATORY},
    ),
    (
        "hosts: SES pattern",
        HOSTS,
        {HOSTS: {"allowedHosts": ["email-smtp.*.amazonaws.com"]}},
        {},
        {},
    ),
    ("senders: not configured", SENDERS, {}, {"email_address": "x@evil.test"}, {}),
    (
        "senders: other domain",
        SENDERS,
        {SENDERS: {"allowedDomains": ["corp.test"]}},
        {},
        {SENDERS: MANDATORY},
    ),
    ("senders: mydomain", SENDERS, {SENDERS: {"allowedDomains": ["mydomain.com"]}}, {}, {}),
    (
        "tenant fails on http",
        TENANT,
        {},
        {"tenant_url": "http://mytenant.eu.qlikcloud.com"},
        {TENANT: MANDATORY},
    ),
    (
        "tenant: emulator refused by default",
        TENANT,
        {},
        {"tenant_url": "https://127.0.0.1:8443/t/demo"},
        {TENANT: MANDATORY},
    ),
    (
        "tenant: emulator allowed",
        TENANT,
        {TENANT: {"allowLocalhost": True}},
        {"tenant_url": "https://127.0.0.1:8443/t/demo"},
        {},
    ),
    (
        "tenant: us only",
        TENANT,
        {TENANT: {"allowedDomains": ["*.us.qlikcloud.com"]}},
        {},
        {TENANT: MANDATORY},
    ),
    ("creds: no password", CREDS, {}, {"email_password": None}, {CREDS: MANDATORY}),
    (
        "creds: as advisory",
        CREDS,
        {CREDS: {"enforcementLevel": "advisory"}},
        {"username": ""},
        {CREDS: ADVISORY},
    ),
    ("verify off", VERIFY, {}, {"verify_connection": False}, {VERIFY: ADVISORY}),
    (
        "verify: mandatory",
        VERIFY,
        {VERIFY: {"enforcementLevel": "mandatory"}},
        {"verify_connection": None},
        {VERIFY: MANDATORY},
    ),
]


@pytest.mark.parametrize(
    ("case", "rule", "config", "changes", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_rule_cases(
    case: str,
    rule: str,
    config: dict[str, Any],
    changes: dict[str, Any],
    expected: dict[str, int],
    diagnostics_of: Any,
) -> None:
    found = diagnostics_of(props_of(TUTORIAL, **changes), config)
    assert {name: d.enforcementLevel for name, d in found.items()} == expected
    if rule in expected:
        d = found[rule]
        assert d.message.startswith(d.description + "\n")
        assert f"TenantEmailConfig 'mail' fails {rule}: " in d.message and " Fix: " in d.message
        assert ".0" not in d.message.replace("127.0.0.1", "")  # ports printed as integers


FAILING = [c for c in CASES if c[1] in c[4]]


@pytest.mark.parametrize(
    ("case", "rule", "config", "changes", "expected"), FAILING, ids=[c[0] for c in FAILING]
)
def test_rule_disabled(
    case: str,
    rule: str,
    config: dict[str, Any],
    changes: dict[str, Any],
    expected: dict[str, int],
    diagnostics_of: Any,
) -> None:
    disabled = {**config, rule: {**config.get(rule, {}), "enforcementLevel": "disabled"}}
    found = diagnostics_of(props_of(TUTORIAL, **changes), disabled)
    assert set(found) == set(expected) - {rule}


def test_every_rule_has_a_failing_and_a_configured_case() -> None:
    failing = {c[1] for c in FAILING}
    configured = {c[1] for c in CASES if c[2]}
    assert failing == configured == set(EXPECTED_INFO) - {ONE}


# ------------------------------------------------------------------ the strict example config


def strict_config() -> dict[str, Any]:
    return json.loads((PACK_DIR / "examples" / "strict.json").read_text())


def test_strict_config_names_only_real_rules_and_settings(pack: AnalyzerServer) -> None:
    info = {
        p.name: json_format.MessageToDict(p.configSchema.properties) for p in pack.info().policies
    }
    for rule, settings in strict_config().items():
        assert rule in info, rule
        assert set(settings) - {"enforcementLevel"} <= set(info[rule]), rule


def test_strict_config_passes_the_tutorial(diagnostics_of: Any) -> None:
    assert diagnostics_of(TUTORIAL, strict_config()) == {}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"security_type": "StartTLS", "server_port": 587}, {TLS, PORTS}),
        ({"security_type": "StartTLS"}, {TLS, MATCH}),
        ({"server_address": "smtp.mailgun.org"}, {HOSTS}),
        ({"email_address": "qlik@gmail.com"}, {SENDERS}),
        ({"tenant_url": "https://mytenant.us.qlikcloud.com"}, {TENANT}),
        ({"verify_connection": None}, {VERIFY}),
    ],
)
def test_strict_config_is_mandatory_everywhere(
    changes: dict[str, Any], expected: set[str], diagnostics_of: Any
) -> None:
    found = diagnostics_of(props_of(TUTORIAL, **changes), strict_config())
    assert set(found) == expected
    assert {d.enforcementLevel for d in found.values()} == {MANDATORY}


# ------------------------------------------------------------------ unknowns during preview


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("security_type", {TLS, MATCH}),
        ("server_port", {PORTS, MATCH}),
        ("server_address", {HOSTS}),
        ("email_address", {SENDERS}),
        ("tenant_url", {TENANT}),
        ("email_password", {CREDS}),
        ("verify_connection", {VERIFY}),
        ("service_provider", {TLS, PORTS, MATCH, HOSTS, CREDS}),
    ],
)
def test_unknown_values_give_the_preview_advisory(
    field: str, expected: set[str], diagnostics_of: Any
) -> None:
    config = {
        HOSTS: {"allowedHosts": ["email-smtp.*.amazonaws.com"]},
        SENDERS: {"allowedDomains": ["mydomain.com"]},
    }
    found = diagnostics_of(props_of(TUTORIAL, **{field: UNKNOWN}), config)
    assert set(found) == expected
    for d in found.values():
        assert d.enforcementLevel == ADVISORY
        assert "during preview" in d.message and f".{field} can't be known" in d.message


# ------------------------------------------------------------------ the stack rule


def stack(
    pack: AnalyzerServer,
    resources: list[tuple[str, dict[str, Any]]],
    config: dict[str, Any] | None = None,
    type_: str = TYPE,
) -> list[analyzer_pb2.AnalyzeDiagnostic]:
    pack.configure(config or {})
    found = pack.analyze_stack(
        [
            {"type": type_, "urn": urn(name), "name": name, "properties": props}
            for name, props in resources
        ]
    )
    assert_no_canary(found, pack)
    return found


def test_stack_rule_reports_the_duplicate_with_its_urn(pack: AnalyzerServer) -> None:
    found = stack(
        pack,
        [
            ("eu", TUTORIAL),
            ("eu-again", props_of(TUTORIAL, tenant_url="https://MyTenant.eu.qlikcloud.com/")),
            ("us", props_of(TUTORIAL, tenant_url="https://mytenant.us.qlikcloud.com")),
        ],
    )
    assert [(d.policyName, d.urn, d.enforcementLevel) for d in found] == [
        (ONE, urn("eu-again"), MANDATORY)
    ]
    assert f"'eu-again' fails {ONE}" in found[0].message
    assert "same tenant as 'eu'" in found[0].message and "Fix:" in found[0].message


def test_stack_rule_two_configs_on_the_stack_default_tenant(pack: AnalyzerServer) -> None:
    no_url = props_of(TUTORIAL, tenant_url=None, api_key=None)
    found = stack(pack, [("a", no_url), ("b", no_url), ("c", TUTORIAL)])
    assert [d.urn for d in found] == [urn("b")]
    assert "stack's default tenant" in found[0].message


def test_stack_rule_distinct_emulator_tenants_pass(pack: AnalyzerServer) -> None:
    found = stack(
        pack,
        [
            ("demo", props_of(TUTORIAL, tenant_url="https://127.0.0.1:8443/t/demo")),
            ("acme", props_of(TUTORIAL, tenant_url="https://127.0.0.1:8443/t/acme")),
            ("stack-default", props_of(TUTORIAL, tenant_url=None)),
        ],
    )
    assert found == []


def test_stack_rule_disabled(pack: AnalyzerServer) -> None:
    assert (
        stack(pack, [("a", TUTORIAL), ("b", TUTORIAL)], {ONE: {"enforcementLevel": "disabled"}})
        == []
    )
    assert (
        len(
            stack(pack, [("a", TUTORIAL), ("b", TUTORIAL)], {ONE: {"enforcementLevel": "advisory"}})
        )
        == 1
    )


def test_stack_rule_ignores_other_types(pack: AnalyzerServer) -> None:
    assert stack(pack, [("a", TUTORIAL), ("b", TUTORIAL)], type_="aws:s3/bucket:Bucket") == []


def test_stack_rule_unknown_tenant_url_is_advisory_and_known_duplicates_still_fail(
    pack: AnalyzerServer,
) -> None:
    found = stack(
        pack, [("a", TUTORIAL), ("b", TUTORIAL), ("c", props_of(TUTORIAL, tenant_url=UNKNOWN))]
    )
    assert [(d.urn, d.enforcementLevel) for d in found] == [(urn("b"), MANDATORY), ("", ADVISORY)]
    assert "during preview" in found[1].message


# ------------------------------------------------------------------ secrets never leak


LEAKY = [
    props_of(
        TUTORIAL,
        security_type="none",
        server_port=25,
        verify_connection=False,
        tenant_url=f"http://user:{API_KEY}@evil.test/?apiKey={API_KEY}",
        email_address="x@evil.test",
    ),
    props_of(TUTORIAL, username=None, server_address=PASSWORD, email_address=PASSWORD),
    props_of(
        TUTORIAL, email_password=secret(PASSWORD), security_type=PASSWORD, server_port=PASSWORD
    ),
    props_of(M365, client_id=None, email_address=CLIENT_SECRET, tenant_url=CLIENT_SECRET),
    props_of(M365, service_provider=CLIENT_SECRET, client_secret=secret(CLIENT_SECRET)),
    props_of(TUTORIAL, service_provider=PASSWORD, verify_connection=API_KEY),
]
CONFIGS = [
    {},
    {HOSTS: {"allowedHosts": ["smtp.sendgrid.net"]}, SENDERS: {"allowedDomains": ["corp.test"]}},
]


@pytest.mark.parametrize("config", CONFIGS, ids=["default", "hosts+senders"])
@pytest.mark.parametrize("props", LEAKY, ids=[f"leaky{i}" for i in range(len(LEAKY))])
def test_no_diagnostic_contains_a_secret(
    props: dict[str, Any], config: dict[str, Any], diagnostics_of: Any
) -> None:
    found = diagnostics_of(props, config)
    assert found  # every leaky case does violate something; the canary scan runs at teardown


def test_no_stack_diagnostic_contains_a_secret(pack: AnalyzerServer) -> None:
    bad = props_of(TUTORIAL, tenant_url=f"https://{PASSWORD}.eu.qlikcloud.com")
    assert len(stack(pack, [("a", bad), ("b", bad)])) == 1


def test_canary_scan_can_fail(pack: AnalyzerServer) -> None:
    """The scan itself works: a diagnostic holding a canary is caught."""
    leaked = analyzer_pb2.AnalyzeDiagnostic(policyName=TLS, message=f"oops {PASSWORD}")
    with pytest.raises(AssertionError):
        assert_no_canary([leaked], pack)
