"""The repo's program (Pulumi.yaml + __main__.py) under the real Pulumi CLI and engine.

Two stacks, as a user keeps them: `tenant-a` (the tutorial's SES settings, an API
key) and `tenant-b` (StartTLS, an OAuth2 client), each against its own emulated
tenant, with the policy pack `policies/` and a config derived from
policies/examples/strict.json. Every step asserts on the tenant's request log and
on the config the tenant holds. The CLI is the pinned one (`make cli`); how the
program and the pack run without a Python language host: tests/cli/clienv.py.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pulumi import automation as auto

from qlik_email_resource.emulator import Emulator
from qlik_email_resource.policy_pack.rules import (
    ALLOWED_PORTS,
    ALLOWED_SMTP_HOSTS,
    RESOURCE_TYPE,
    SENDER_DOMAINS,
    TENANT_URL,
    TLS_REQUIRED,
)
from tests.cli.clienv import REPO, CliEnv, CliProject, needs_cli

pytestmark = needs_cli

CONFIG_PATH = "/api/v1/transports/email-config"
STRICT = json.loads((REPO / "policies" / "examples" / "strict.json").read_text())


def for_emulator(config: dict[str, Any]) -> dict[str, Any]:
    """strict.json as a team would adapt it to the emulator: local tenants, example.com."""
    adapted = copy.deepcopy(config)
    adapted[TENANT_URL]["allowLocalhost"] = True
    adapted[SENDER_DOMAINS]["allowedDomains"] = ["*.example.com"]
    return adapted


class Run:
    """One stack of the copied program, with what every command printed and reported."""

    def __init__(self, project: CliProject, name: str, cli: CliEnv) -> None:
        self.project = project
        self.name = name
        self.cli = cli
        self.stack = project.stack(name)
        self.printed: list[str] = []
        self.events: list[Any] = []

    def policy(self, config: dict[str, Any], label: str) -> dict[str, Any]:
        path = self.cli.workdir / f"policy-{self.name}-{label}.json"
        path.write_text(json.dumps(config))
        return {
            "policy_packs": [self.cli.policy_pack(REPO / "policies")],
            "policy_pack_configs": [str(path)],
        }

    def __call__(self, operation: str, ok: bool = True, **kwargs: Any) -> Any:
        self.events = []
        try:
            result = getattr(self.stack, operation)(
                color="never", on_output=self.printed.append,
                on_event=self.events.append, **kwargs,
            )
        except auto.CommandError as exc:
            self.printed.append(str(exc))
            assert not ok, f"{operation} failed:\n{exc}"
            return None
        assert ok, f"{operation} succeeded, expected a failure:\n{result.stdout}"
        return result

    def ops(self) -> list[str]:
        metas = [e.resource_pre_event.metadata for e in self.events if e.resource_pre_event]
        return [str(getattr(m.op, "value", m.op)) for m in metas if m.type == RESOURCE_TYPE]

    def diffs(self) -> list[str]:
        """Inputs that the step changes. The dynamic provider's Diff names no keys, so
        the engine's events carry none (`diffs` is empty): compare old and new inputs."""
        changed: set[str] = set()
        for e in self.events:
            meta = e.resource_pre_event.metadata if e.resource_pre_event else None
            if meta is None or meta.type != RESOURCE_TYPE or not (meta.old and meta.new):
                continue
            olds, news = meta.old.inputs or {}, meta.new.inputs or {}
            changed |= {k for k in olds.keys() | news.keys()
                        if not k.startswith("__") and olds.get(k) != news.get(k)}
        return sorted(changed)

    def violations(self) -> dict[str, str]:
        return {
            e.policy_event.policy_name: e.policy_event.enforcement_level
            for e in self.events if e.policy_event is not None
        }


def config_writes(emu: Emulator, tenant: str) -> list[tuple[str, int]]:
    return [
        (r["method"], r["status"]) for r in emu.requests()
        if r["tenant"] == tenant and r["path"] == CONFIG_PATH and r["method"] != "GET"
    ]


def non_gets(emu: Emulator) -> list[dict[str, Any]]:
    return [r for r in emu.requests() if r["method"] not in ("GET", "HEAD")]


def held(emu: Emulator, tenant: str) -> Any:
    """The config the tenant holds (the emulator's model), None when it has none."""
    model = emu.backend.tenant(tenant)
    assert model is not None
    return model.config


@pytest.fixture
def emu(qlik_emulator_factory: Callable[..., Emulator]) -> Iterator[Emulator]:
    yield qlik_emulator_factory(tenants=("tenant-a", "tenant-b"))


@pytest.fixture
def cli(tmp_path: Path) -> CliEnv:
    return CliEnv.create(tmp_path)


def test_cli_tenant_a_lifecycle_with_the_policy_pack(cli: CliEnv, emu: Emulator) -> None:
    tenant = emu.tenant("tenant-a")
    # The committed stack file's SMTP login, made a user of the emulator's SMTP server.
    username, first, second = "AKIAEXAMPLEEXAMPLE", "smtp-pw-first-7f3a", "smtp-pw-second-9c1e"
    emu.add_smtp_user(username, first)
    project = cli.project(REPO)
    run = Run(project, "tenant-a", cli)
    # Pulumi.tenant-a.yaml as committed, pointed at the emulated tenant.
    project.configure("tenant-a", {"qlik:tenantUrl": tenant.url, "qlik:caBundle": emu.ca_file},
                      secrets={"qlik:apiKey": tenant.api_key, "email:password": first})
    strict, adapted = run.policy(STRICT, "strict"), run.policy(for_emulator(STRICT), "adapted")

    # strict.json as shipped: a local tenant URL and example.com senders are mandatory
    # violations; preview and up both stop before the tenant hears of anything.
    run("preview", ok=False, **strict)
    assert run.violations() == {TENANT_URL: "mandatory", SENDER_DOMAINS: "mandatory"}
    run("up", ok=False, **strict)
    assert set(run.violations()) == {TENANT_URL, SENDER_DOMAINS}
    assert emu.requests() == [] and held(emu, "tenant-a") is None

    run("preview", **adapted)
    assert run.ops() == ["create"] and run.violations() == {} and emu.requests() == []
    up = run("up", **adapted)
    assert run.ops() == ["create"]
    assert config_writes(emu, "tenant-a") == [("PUT", 204)]
    config = held(emu, "tenant-a")
    assert (config.fields["serverAddress"], config.fields["serverPort"]) == (
        "email-smtp.eu-west-2.amazonaws.com", 2465)
    assert config.fields["senderName"] == "Tenant A reports" and config.secret == first
    outputs = {k: v.value for k, v in up.outputs.items()}
    assert outputs["is_valid"] is True and outputs["tenant_id"] == tenant.tenant_id

    emu.clear_requests()
    run("up", **adapted)
    assert run.ops() == ["same"] and non_gets(emu) == []

    # One field: one minimal write (PATCH can express a sender address change).
    project.configure("tenant-a", {"email:emailAddress": "alerts@tenant-a.example.com"})
    emu.clear_requests()
    run("up", **adapted)
    assert (run.ops(), run.diffs()) == (["update"], ["email_address"])
    assert config_writes(emu, "tenant-a") == [("PATCH", 204)]
    assert held(emu, "tenant-a").fields["emailAddress"] == "alerts@tenant-a.example.com"

    # Password rotation: the SMTP server gets the new password, then the stack.
    emu.add_smtp_user(username, second)
    project.configure("tenant-a", {}, secrets={"email:password": second})
    emu.clear_requests()
    up = run("up", **adapted)
    assert run.ops() == ["update"] and len(config_writes(emu, "tenant-a")) == 1
    assert held(emu, "tenant-a").secret == second and up.outputs["is_valid"].value is True

    # Drift: a console edit; refresh records it without writing, up puts it back.
    fields = dict(held(emu, "tenant-a").fields)
    emu.set_config("tenant-a", {**fields, "senderName": "Edited in the console",
                                "emailPassword": second})
    emu.clear_requests()
    run("refresh")
    assert non_gets(emu) == []
    assert "Edited in the console" in project.export("tenant-a")
    emu.clear_requests()
    run("up", **adapted)
    assert (run.ops(), run.diffs()) == (["update"], ["sender_name"])
    assert len(config_writes(emu, "tenant-a")) == 1
    assert held(emu, "tenant-a").fields["senderName"] == "Tenant A reports"

    # Deleted outside Pulumi: refresh drops it from the state, up creates it again.
    requests.delete(f"{tenant.url}{CONFIG_PATH}", verify=emu.ca_file, timeout=10,
                    headers={"Authorization": f"Bearer {tenant.api_key}"}).raise_for_status()
    run("refresh")
    assert RESOURCE_TYPE not in project.export("tenant-a")
    emu.clear_requests()
    run("up", **adapted)
    assert run.ops() == ["create"] and config_writes(emu, "tenant-a") == [("PUT", 204)]
    assert held(emu, "tenant-a").secret == second

    # No secret in clear: not in the exported state, the backend's files, or any output.
    exported = project.export("tenant-a")
    backend = "".join(p.read_text(errors="replace") for p in cli.backend_dir.rglob("*")
                      if p.is_file())
    stack_file = (project.dir / "Pulumi.tenant-a.yaml").read_text()
    for secret in (tenant.api_key, first, second):
        for where, text in (("export", exported), ("backend", backend),
                            ("stack config", stack_file), ("output", "\n".join(run.printed))):
            assert secret not in text, f"a secret in clear in the {where}"
    assert json.loads(exported)["deployment"]["secrets_providers"]["type"] == "passphrase"

    emu.clear_requests()
    run("destroy")
    assert run.ops() == ["delete"] and config_writes(emu, "tenant-a") == [("DELETE", 204)]
    assert held(emu, "tenant-a") is None


def test_cli_tenant_b_oauth_starttls_advisory_and_patch_removed(
    cli: CliEnv, emu: Emulator
) -> None:
    tenant = emu.tenant("tenant-b")
    emu.add_smtp_user("qlik-reports", "smtp-pw-b-41d0")
    project = cli.project(REPO)
    run = Run(project, "tenant-b", cli)
    project.configure(
        "tenant-b",
        {"qlik:tenantUrl": tenant.url, "qlik:caBundle": emu.ca_file,
         "qlik:clientId": tenant.client_id},
        secrets={"qlik:clientSecret": tenant.client_secret, "email:password": "smtp-pw-b-41d0"},
    )
    adapted = for_emulator(STRICT)
    # StartTLS on 587 from a host of its own: against strict.json's TLS, port and
    # host rules. Mandatory blocks; the same rules as advisory let it through, warned.
    run("preview", ok=False, **run.policy(adapted, "adapted"))
    # (587 is a StartTLS port, so email-port-matches-security is satisfied.)
    blocked = {TLS_REQUIRED, ALLOWED_PORTS, ALLOWED_SMTP_HOSTS}
    assert run.violations() == dict.fromkeys(blocked, "mandatory")
    assert emu.requests() == []

    advisory = copy.deepcopy(adapted)
    for name in blocked:
        advisory[name]["enforcementLevel"] = "advisory"
    relaxed = run.policy(advisory, "advisory")
    up = run("up", **relaxed)
    assert run.violations() == dict.fromkeys(blocked, "advisory")
    assert run.ops() == ["create"] and config_writes(emu, "tenant-b") == [("PUT", 204)]
    assert ("POST", "/oauth/token") in {(r["method"], r["path"]) for r in emu.requests()}
    assert held(emu, "tenant-b").fields["securityType"] == "StartTLS"
    assert up.outputs["is_valid"].value is True
    # testEmailRecipient: the tenant sent a test mail through the StartTLS server.
    assert [m["to"] for m in emu.mailbox()] == [["admin@tenant-b.example.com"]]

    # Qlik retires PATCH: the update falls back to one PUT and the change lands.
    emu.add_fault("tenant-b", "patch_removed", status=405)
    project.configure("tenant-b", {"email:emailAddress": "reports@tenant-b.example.com"})
    emu.clear_requests()
    run("up", **relaxed)
    assert (run.ops(), run.diffs()) == (["update"], ["email_address"])
    assert config_writes(emu, "tenant-b") == [("PATCH", 405), ("PUT", 204)]
    assert held(emu, "tenant-b").fields["emailAddress"] == "reports@tenant-b.example.com"

    exported = project.export("tenant-b")
    for secret in (tenant.client_secret, "smtp-pw-b-41d0"):
        assert secret not in exported and secret not in "\n".join(run.printed)

    run("destroy")
    assert held(emu, "tenant-b") is None
