"""The demo's steps: start the emulator, review, deploy, policy gate, mail, drift, done."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from qlik_email_resource.demo.console import Console
from qlik_email_resource.demo.emulated import (
    emulator_environ,
    running_emulator,
    wait_for_mail,
)
from qlik_email_resource.demo.errors import DemoError
from qlik_email_resource.demo.outcome import StackRun, named_settings, ops
from qlik_email_resource.demo.stacks import DemoStacks
from qlik_email_resource.emulator.admin import inbox_html
from qlik_email_resource.fleet.live import client_for
from qlik_email_resource.fleet.tenants import ResolvedTenant, load
from qlik_email_resource.mapping import flatten
from qlik_email_resource.policy_pack.rules import TLS_REQUIRED

if TYPE_CHECKING:
    from qlik_email_resource.emulator import Emulator

TENANTS = ("demo", "acme")
DRIFT_TENANT = "demo"
DRIFT_FIELD = ("sender_name", "senderName", "Changed in the Qlik console")
RECIPIENT = "you@example.com"


def repo_root() -> Path:
    """The clone this package runs from: it holds policies/ and examples/."""
    here = Path(__file__).resolve().parents[2]
    needed = ("policies", "examples/tenants.yaml")
    missing = [p for p in needed if not (here / p).exists()]
    if missing:
        raise DemoError(
            f"the demo runs from a clone of the repository ({here} lacks {', '.join(missing)}); "
            "clone it and run `make demo` there"
        )
    return here


def run_demo(work: Path, *, keep_running: bool, verbose: bool, out: TextIO) -> int:
    root = repo_root()
    work.mkdir(parents=True, exist_ok=True)
    # Every run starts a fresh emulator (new ports, keys and empty tenants), so
    # stacks from an earlier run would point at tenants that no longer exist.
    for stale in ("offline-state", "pulumi-state", "emulator"):
        shutil.rmtree(work / stale, ignore_errors=True)
    secrets: list[str] = []
    console = Console(out, secrets)
    console.write("qlik-email-resource demo: two Qlik tenants' email, as code, no account needed")
    console.info(f"working files: {work}")

    console.step(f"Start the Qlik emulator: tenants {', '.join(TENANTS)} and an SMTP server")
    with running_emulator(TENANTS, work, keep_running, console) as emu:
        environ = emulator_environ(emu)
        secrets += [v for k, v in environ.items() if k.endswith(("_API_KEY", "_PASSWORD"))]
        for name in TENANTS:
            console.info(f"tenant {name:<5} {emu.tenant(name).url}")
        console.info(f"SMTP server 127.0.0.1 (TLS {emu.info['smtp']['tls_port']}), "
                     f"inbox page {emu.mailbox_url}")

        fleet = load(root / "examples" / "tenants.yaml", environ)
        tenants = [fleet.tenant(name).resolve(environ) for name in TENANTS]
        with closing(DemoStacks(fleet, root, work)) as stacks:
            story = Story(console, stacks, emu, tenants, verbose)
            story.review()
            story.deploy()
            story.policy_gate()
            story.send_mail(work / "inbox.html")
            story.drift()
            console.step("Done")
            console.info(f"engine: {stacks.label}")
        if keep_running:
            console.info(f"inbox: {emu.mailbox_url}")
        else:
            console.info(f"inbox: {work / 'inbox.html'} (the emulator is stopped; for the live "
                         "page run `.venv/bin/python -m qlik_email_resource.demo --keep-running`)")
    return 0


class Story:
    """The steps after the emulator is up, each checking what it shows."""

    def __init__(
        self,
        console: Console,
        stacks: DemoStacks,
        emu: Emulator,
        tenants: Sequence[ResolvedTenant],
        verbose: bool,
    ) -> None:
        self.console = console
        self.stacks = stacks
        self.emu = emu
        self.tenants = tenants
        self.verbose = verbose

    def review(self) -> None:
        self.console.step("Review: preview both stacks with the policy pack (policies/)")
        self.console.info(f"engine: {self.stacks.label}")
        self.console.info("program: the fleet's, one stack per tenant "
                          "(qlik_email_resource/fleet/program.py), settings: examples/tenants.yaml")
        for resolved in self.tenants:
            run = self._run("preview", resolved)
            verdict = ", ".join(run.violations) or "no policy violations"
            self.console.info(f"{resolved.tenant.name}: {ops(run.result)}; {verdict}")

    def deploy(self) -> None:
        self.console.step("Deploy: `up` both stacks (the policy pack runs again and would block)")
        for resolved in self.tenants:
            run = self._run("up", resolved)
            self.console.info(f"{resolved.tenant.name}: {ops(run.result)}")
        for resolved in self.tenants:
            with closing(client_for(resolved)) as client:
                config = client.get_config()
            self.console.info(
                f"{resolved.tenant.name}: the tenant now holds server "
                f"{config.get('serverAddress')}:{config.get('serverPort')} "
                f"({config.get('securityType')}), isValid={config.get('isValid')}"
            )
            if config.get("isValid") is not True:
                raise DemoError(f"tenant {resolved.tenant.name} reports an invalid configuration")

    def policy_gate(self) -> None:
        bad = {"security_type": "none", "server_port": 25}
        self.console.step(
            "Policy gate: preview a change to plain SMTP (security_type none, port 25)"
        )
        target = self.tenants[0]
        self.emu.clear_requests()
        run = self.stacks.preview_change(target, bad)
        if (self.verbose or self.stacks.always_show) and run.report:
            self.console.info(run.report)
        for finding in run.result.violations:
            if finding.message.strip():
                self.console.info(f"policy: {finding.message.strip().splitlines()[-1]}")
        writes = [r for r in self.emu.requests() if r["method"] != "GET"]
        if run.ok or TLS_REQUIRED not in " ".join(run.violations) or writes:
            raise DemoError("the policy pack did not block a change to plain SMTP")
        self.console.info(f"{target.tenant.name}: blocked by {', '.join(run.violations)}; "
                          "nothing was sent to the tenant")

    def send_mail(self, inbox_file: Path) -> None:
        self.console.step("Send a test email from each tenant")
        self.emu.clear_mailbox()
        for resolved in self.tenants:
            with closing(client_for(resolved)) as client:
                answer = client.send_test_email(
                    RECIPIENT,
                    f"Test mail from Qlik tenant {resolved.tenant.name}",
                    "Sent by `make demo` through the tenant's email configuration.",
                )
            if not answer.get("success", True):
                raise DemoError(f"tenant {resolved.tenant.name} could not send: {answer}")
            self.console.info(f"{resolved.tenant.name}: sent to {RECIPIENT}")
        for mail in wait_for_mail(self.emu, len(self.tenants)):
            self.console.info(f"inbox: from {mail['from']} to {mail['to']}: {mail['subject']}")
        self.console.info(f"see them at {self.emu.mailbox_url}")
        # A copy that outlives the emulator, so the mails can be read after the demo ends.
        inbox_file.write_text(inbox_html(self.emu.mailbox()), encoding="utf-8")
        self.console.info(f"or, after the demo, in {inbox_file}")

    def drift(self) -> None:
        field_name, qlik_name, value = DRIFT_FIELD
        self.console.step(
            f"Drift: change {field_name} of tenant {DRIFT_TENANT} behind Pulumi's back"
        )
        drifted = next(t for t in self.tenants if t.tenant.name == DRIFT_TENANT)
        with closing(client_for(drifted)) as client:
            current = dict(client.get_config().get("providerConfig") or {})
        # A console edit changes one field and keeps the stored password; the
        # emulator's set_config replaces the whole config, so send all of it.
        current[qlik_name] = value
        current["emailPassword"] = drifted.email_secrets.get("email_password")
        self.emu.set_config(
            DRIFT_TENANT, {"serviceProvider": "BasicAuth", "providerConfig": current}
        )
        self.console.info(
            f"set {qlik_name} = {value!r} through the emulator (as in the Qlik console)"
        )
        run = self._run("refresh", drifted)
        found = named_settings(run.result.drift)
        self.console.info(
            f"refresh: the stack now records the drift ({', '.join(found) or 'changed'})"
        )
        run = self._run("up", drifted, what="repairing up")
        self.console.info(f"up: {ops(run.result)}")
        if run.result.changes and field_name not in named_settings(run.result.changes):
            raise DemoError(f"up did not change {field_name} back")
        with closing(client_for(drifted)) as client:
            now = flatten(client.get_config())["sender_name"]
        wanted = drifted.tenant.email.get(field_name)
        if now != wanted:
            raise DemoError(f"{field_name} is {now!r} after up, expected {wanted!r}")
        self.console.info(f"the tenant holds {field_name} = {now!r} again")

    def _run(self, operation: str, resolved: ResolvedTenant, what: str = "") -> StackRun:
        """Run one stack operation, show its report, stop the demo if it did not work."""
        run = self.stacks.run(operation, resolved)
        if (self.verbose or self.stacks.always_show or not run.ok) and run.report:
            self.console.info(run.report)
        if not run.ok:
            if run.result.error:
                self.console.info(f"error: {run.result.error}")
            raise DemoError(f"{what or operation} of {resolved.tenant.name} failed (details above)")
        return run
