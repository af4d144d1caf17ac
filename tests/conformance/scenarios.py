"""The conformance corpus: scenarios as data, run once per engine (offline runner, real CLI).

A scenario names a program (`main`: the repository's own program and Pulumi.yaml;
`multi`: tests/conformance/program, resources described by config), the tenants
it needs (roles `A`, `B`: each engine gets fresh emulator tenants for them), the
base stack config, and its steps. A step is one command (`preview`, `up`,
`refresh`, `destroy`) with the config changes made before it (cumulative; `None`
removes a key), the emulator set-up done before it (faults, out-of-band changes),
and what both engines are expected to do: the outcome (`ok`, `blocked`: a
mandatory policy stopped it, `failed`), and optionally the TenantEmailConfig
operations and the policy diagnostics (policy, level).

Strings may hold placeholders that each engine fills in for its own tenants:
`{url:A}`, `{api_key:A}`, `{viewer_key:A}`, `{ca_file}`, `{smtp_user}`,
`{smtp_password}`. `Secret(...)` marks a secret config value
(`pulumi config set --secret`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qlik_email_resource.offline import Secret
from qlik_email_resource.policy_pack.rules import (
    ALLOWED_PORTS,
    ONE_CONFIG_PER_TENANT,
    TENANT_URL,
    TLS_REQUIRED,
    VERIFY_ON_APPLY,
)

ROOT = Path(__file__).resolve().parents[2]
# `main`: the repository's program; `multi`: resources described by config.
PROGRAMS = {"main": ROOT, "multi": Path(__file__).resolve().parent / "program"}

OK, BLOCKED, FAILED = "ok", "blocked", "failed"
MANDATORY, ADVISORY = "mandatory", "advisory"

# The tutorial's Amazon SES relay; the emulator routes it to its own SMTP server.
SES = "email-smtp.eu-west-2.amazonaws.com"
# The same for every scenario, so that one policy pack server serves the corpus.
POLICY_CONFIG: dict[str, dict[str, Any]] = {TENANT_URL: {"allowLocalhost": True}}


# -- emulator set-up, done before a step ------------------------------------------------


@dataclass(frozen=True)
class SetConfig:
    """An out-of-band change, as if made in the Qlik console (no SMTP check)."""

    tenant: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class DeleteConfig:
    """The tenant's config deleted outside the stack (a DELETE with the admin key)."""

    tenant: str


@dataclass(frozen=True)
class Fault:
    """An emulator fault for the tenant (see docs/emulator.md, Faults)."""

    tenant: str
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SmtpUser:
    """Add (or re-password) a login on the bundled SMTP server."""

    username: str
    password: str


Action = SetConfig | DeleteConfig | Fault | SmtpUser


@dataclass(frozen=True)
class Step:
    command: str
    config: Mapping[str, Any] = field(default_factory=dict)
    setup: tuple[Action, ...] = ()
    expect: str = OK
    ops: tuple[str, ...] | None = None
    policies: frozenset[tuple[str, str]] | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    steps: tuple[Step, ...]
    program: str = "main"
    tenants: tuple[str, ...] = ("A",)
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def stack(self) -> str:
        return f"conf-{self.name}"

    def configured_steps(self) -> Iterator[tuple[Step, dict[str, Any]]]:
        """Each step with the stack config it runs with (changes accumulate; None removes)."""
        config = dict(self.config)
        for step in self.steps:
            merged = {**config, **step.config}
            config = {key: value for key, value in merged.items() if value is not None}
            yield step, dict(config)


NO_POLICY: frozenset[tuple[str, str]] = frozenset()


def policies(*pairs: tuple[str, str]) -> frozenset[tuple[str, str]]:
    return frozenset(pairs)


# -- the repository's program (one resource, credentials as provider config) -----------

MAIN_CONFIG: dict[str, Any] = {
    "qlik:tenantUrl": "{url:A}",
    "qlik:apiKey": Secret("{api_key:A}"),
    "qlik:caBundle": "{ca_file}",
    "email:serverAddress": SES,
    "email:serverPort": "2465",
    "email:securityType": "SSL/TLS",
    "email:username": "{smtp_user}",
    "email:password": Secret("{smtp_password}"),
    "email:emailAddress": "reports@example.com",
}


def main(name: str, what: str, *steps: Step, **config: Any) -> Scenario:
    """A scenario of the repository's program; `config` keys use `__` for `:`."""
    overrides = {key.replace("__", ":"): value for key, value in config.items()}
    merged = {**MAIN_CONFIG, **overrides}
    return Scenario(name, what, steps, config={k: v for k, v in merged.items() if v is not None})


# -- the multi-resource program (per-resource credentials) -------------------------------

MULTI_CONFIG: dict[str, Any] = {
    "qlik:caBundle": "{ca_file}",
    "conformance:smtpPassword": Secret("{smtp_password}"),
}


def email(name: str, tenant: str, **inputs: Any) -> dict[str, Any]:
    """One TenantEmailConfig of the multi program, on tenant role `tenant`."""
    return {
        "name": name,
        "inputs": {
            "tenant_url": f"{{url:{tenant}}}",
            "api_key": {"secret": f"apiKey{tenant}"},
            "server_address": SES,
            "server_port": 2465,
            "security_type": "SSL/TLS",
            "username": "{smtp_user}",
            "email_password": {"secret": "smtpPassword"},
            "email_address": "reports@example.com",
            "sender_name": "Qlik reports",
            "verify_connection": True,
            **inputs,
        },
    }


def resources(*declared: dict[str, Any]) -> dict[str, Any]:
    return {"conformance:resources": list(declared)}


def multi(name: str, what: str, *steps: Step, tenants: tuple[str, ...] = ("A", "B")) -> Scenario:
    keys = {f"conformance:apiKey{role}": Secret(f"{{api_key:{role}}}") for role in tenants}
    return Scenario(name, what, steps, program="multi", tenants=tenants,
                    config={**MULTI_CONFIG, **keys})


DRIFTED = {
    "serverAddress": "smtp.elsewhere.example.com", "serverPort": 2465, "securityType": "SSL/TLS",
    "emailAddress": "console@example.com", "username": "console-user",
}
ROTATING_USER = "rotating-user"
# Passwords the scenarios set on the SMTP server (canaries for the leak check).
SMTP_PASSWORDS = ("first-Passw0rd", "second-Passw0rd", "wrong-password")

SCENARIOS: tuple[Scenario, ...] = (
    main(
        "lifecycle", "preview and up of a new stack, a no-op up (no write), destroy",
        Step("preview", ops=("create",), policies=NO_POLICY),
        Step("up", ops=("create",), policies=NO_POLICY),
        Step("up", ops=("same",), policies=NO_POLICY),
        Step("destroy", ops=("delete",)),
    ),
    main(
        "adopt", "the first up adopts a config made in the console and overwrites it",
        Step("up", setup=(SetConfig("A", DRIFTED),), ops=("create",)),
    ),
    main(
        "updates", "each kind of update: a port (JSON Patch), a sender name (PUT), a new "
        "SMTP password alone (rotation of a secret)",
        Step("up", setup=(SmtpUser(ROTATING_USER, "first-Passw0rd"),), ops=("create",),
             config={"email:username": ROTATING_USER,
                     "email:password": Secret("first-Passw0rd")}),
        Step("up", config={"email:serverPort": "465"}, ops=("update",)),
        Step("up", config={"email:senderName": "Reports team"}, ops=("update",)),
        Step("up", setup=(SmtpUser(ROTATING_USER, "second-Passw0rd"),), ops=("update",),
             config={"email:password": Secret("second-Passw0rd")}),
    ),
    main(
        "update-patch-gone", "the tenant answers PATCH with 405: the update goes out as a PUT",
        Step("up", ops=("create",)),
        Step(
            "up", config={"email:serverPort": "465"},
            setup=(Fault("A", "patch_removed", {"status": 405}),), ops=("update",),
        ),
    ),
    multi(
        "replace", "moving the resource to another tenant replaces it",
        Step("up", config=resources(email("email", "A")), ops=("create",)),
        Step("up", config=resources(email("email", "B")), ops=("replace",)),
    ),
    main(
        "refresh", "refresh reads a console change and up repairs it; refresh after the "
        "config was deleted outside drops the resource and up creates it again",
        Step("up", ops=("create",)),
        Step("refresh", setup=(SetConfig("A", DRIFTED),), ops=("read",)),
        Step("up", ops=("update",)),
        Step("refresh", setup=(DeleteConfig("A"),), ops=("delete",)),
        Step("up", ops=("create",)),
    ),
    main(
        "destroy-saved-config", "destroy after the stack's API key changed uses the saved one",
        Step("up", ops=("create",)),
        Step("destroy", config={"qlik:apiKey": Secret("not-the-key")}, ops=("delete",)),
    ),
    main(
        "policy-mandatory", "a mandatory policy blocks up before anything is written",
        Step("up", expect=BLOCKED, policies=policies(
            (TLS_REQUIRED, MANDATORY), (ALLOWED_PORTS, MANDATORY),
        )),
        email__securityType="none", email__serverPort="25",
    ),
    main(
        "policy-advisory", "an advisory policy reports and up goes ahead",
        Step("up", ops=("create",), policies=policies((VERIFY_ON_APPLY, ADVISORY))),
        email__verifyConnection="false",
    ),
    multi(
        "policy-unknown", "a policy reading a value unknown during preview; then the up",
        Step(
            "preview",
            config=resources(
                email("first", "A"),
                email("second", "B", verify_connection={"output": ["first", "is_valid"]}),
            ),
            ops=("create", "create"),
            policies=policies((VERIFY_ON_APPLY, ADVISORY)),
        ),
        # `up` previews first, so the unknown shows there too.
        Step("up", ops=("create", "create"),
             policies=policies((VERIFY_ON_APPLY, ADVISORY))),
    ),
    multi(
        "policy-stack", "two configs on one tenant: the stack policy blocks up",
        Step(
            "up", config=resources(email("first", "A"), email("second", "A")),
            expect=BLOCKED, policies=policies((ONE_CONFIG_PER_TENANT, MANDATORY)),
        ),
        tenants=("A",),
    ),
    main(
        "config-missing", "a required config key is missing",
        Step("up", expect=FAILED),
        email__emailAddress=None,
    ),
    main(
        "config-type", "a config value of the wrong type (Pulumi.yaml says integer)",
        Step("up", expect=FAILED),
        email__serverPort="twenty-five",
    ),
    main(
        "config-secret-plain", "a `secret: true` key given as a plain value",
        Step("up", expect=FAILED),
        email__password="{smtp_password}",
    ),
    main(
        "provider-check", "the provider's Check rejects an input",
        Step("up", expect=FAILED),
        email__emailAddress="not-an-address",
    ),
    main(
        "provider-auth", "the tenant refuses the API key (401)",
        Step("up", expect=FAILED),
        qlik__apiKey=Secret("not-the-key"),
    ),
    main(
        "provider-smtp", "the tenant's SMTP check refuses the password",
        Step("up", expect=FAILED),
        email__password=Secret("wrong-password"),
    ),
    multi(
        "partial-failure", "one resource is created, the other fails: state keeps the first",
        Step(
            "up", expect=FAILED,
            config={**resources(email("first", "A"), email("second", "B")),
                    "conformance:apiKeyB": Secret("not-the-key")},
        ),
        Step("up", config={"conformance:apiKeyB": Secret("{api_key:B}")},
             ops=("same", "create")),
    ),
    multi(
        "output-null", "an output whose value is None (no sender name) is no stack output",
        Step("up", config=resources(email("email", "A", sender_name=None)), ops=("create",)),
        tenants=("A",),
    ),
    main(
        "rate-limited", "429s with Retry-After are retried and the up succeeds",
        Step("up", setup=(Fault("A", "status", {"status": 429, "count": 2, "retry_after": 1,
                                               "methods": ["PUT"]}),), ops=("create",)),
    ),
    main(
        "rate-limit-exhausted", "429s beyond the retry budget fail the up",
        Step("up", setup=(Fault("A", "status", {"status": 429, "count": 5, "retry_after": 1,
                                               "methods": ["PUT"]}),), expect=FAILED),
        qlik__maxRetries="1",
    ),
)

BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
assert len(BY_NAME) == len(SCENARIOS), "scenario names must be unique"
