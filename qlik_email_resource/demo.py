"""`make demo`: from a fresh clone to two configured tenants, with no Qlik account.

Starts the emulator (two tenants and an SMTP server), deploys the example
settings (examples/tenants.yaml) to both with the repo's Pulumi program
(Pulumi.yaml + __main__.py), reviews them with the policy pack, sends a test
mail per tenant, then changes a setting behind Pulumi's back and shows refresh
finding the drift and up repairing it.

The real `pulumi` CLI runs the stacks (on a local file backend under .demo/)
when it is on PATH (`make demo` adds the one `make cli` built); otherwise the
offline runner does, and says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from qlik_email_resource.emulator.http import inbox_html
from qlik_email_resource.errors import QlikError
from qlik_email_resource.fleet.report import redact
from qlik_email_resource.fleet.tenants import (
    CredentialError,
    ResolvedTenant,
    TenantsFileError,
    load,
)

TENANTS = ("demo", "acme")
DRIFT_TENANT = "demo"
DRIFT_FIELD = ("sender_name", "senderName", "Changed in the Qlik console")
RECIPIENT = "you@example.com"
# Only protects the demo's throw-away local backend; never use it for real stacks.
DEMO_PASSPHRASE = "qlik-email-demo-not-a-secret"


class DemoError(Exception):
    """A step failed; the message says what to do."""


def repo_root() -> Path:
    """The clone this package runs from: it holds Pulumi.yaml, policies/ and examples/."""
    here = Path(__file__).resolve().parent.parent
    needed = ("Pulumi.yaml", "policies", "examples/tenants.yaml")
    missing = [p for p in needed if not (here / p).exists()]
    if missing:
        raise DemoError(
            f"the demo runs from a clone of the repository ({here} lacks {', '.join(missing)}); "
            "clone it and run `make demo` there"
        )
    return here


class Console:
    """Numbered steps and indented details, on one stream, flushed as they come."""

    def __init__(self, out: TextIO, secrets: list[str]) -> None:
        self.out = out
        self.secrets = secrets
        self.number = 0

    def step(self, title: str) -> None:
        self.number += 1
        self.write(f"\n==> {self.number}. {title}")

    def info(self, text: str = "") -> None:
        for line in text.splitlines() or [""]:
            self.write(f"    {line}")

    def write(self, text: str) -> None:
        self.out.write(redact(text, self.secrets) + "\n")
        self.out.flush()


@dataclass
class Outcome:
    """What one stack operation did, in the demo's terms."""

    ok: bool
    text: str
    changed: dict[str, list[str]] = field(default_factory=dict)  # op -> fields
    violations: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # one line per violation
    always_show: bool = False


# The repo program's `email:` keys (Pulumi.yaml) by provider input name.
PROGRAM_KEYS = {
    "server_address": "serverAddress",
    "server_port": "serverPort",
    "security_type": "securityType",
    "username": "username",
    "email_address": "emailAddress",
    "email_password": "password",
    "sender_name": "senderName",
    "verify_connection": "verifyConnection",
    "test_email_recipient": "testEmailRecipient",
}


def program_config(resolved: ResolvedTenant) -> dict[str, tuple[str, bool]]:
    """Stack config for the repo program: `qlik:*` provider config, `email:*` settings."""
    tenant = resolved.tenant
    unknown = sorted(set(tenant.email) - set(PROGRAM_KEYS))
    if unknown:
        raise DemoError(f"the repo program has no setting for {', '.join(unknown)}")
    config: dict[str, tuple[str, bool]] = {"qlik:tenantUrl": (tenant.url, False)}
    if resolved.api_key:
        config["qlik:apiKey"] = (resolved.api_key, True)
    if tenant.ca_bundle:
        config["qlik:caBundle"] = (tenant.ca_bundle, False)
    for key, value in tenant.email.items():
        text = json.dumps(value) if isinstance(value, bool) else str(value)
        config[f"email:{PROGRAM_KEYS[key]}"] = (text, False)
    for key, value in resolved.email_secrets.items():
        config[f"email:{PROGRAM_KEYS[key]}"] = (value, True)
    return config


class OfflineEngine:
    """The offline runner on the repo's program; one provider process per stack, as the CLI."""

    label = "offline runner (the Pulumi CLI is not on PATH): real provider and policy servers"

    def __init__(self, root: Path, work: Path, policy_config: Mapping[str, Any]) -> None:
        self.root = root
        self.work = work / "offline-state"
        self.work.mkdir(parents=True, exist_ok=True)
        self.policy_config = dict(policy_config)
        self.project = str(yaml.safe_load((root / "Pulumi.yaml").read_text())["name"])

    def _stack(self, resolved: ResolvedTenant, with_policies: bool) -> Any:
        # Imported before the first run: the runner forgets modules that a program
        # directory's run imported from below that directory, and the repo root
        # holds this package, whose provider class must stay one object.
        import qlik_email_resource.resource  # noqa: F401
        from qlik_email_resource.offline import OfflineStack, Secret

        config = {
            key: Secret(value) if secret else value
            for key, (value, secret) in program_config(resolved).items()
        }
        env = {"QLIK_CA_BUNDLE": resolved.tenant.ca_bundle} if resolved.tenant.ca_bundle else {}
        return OfflineStack(
            str(self.root),
            project=self.project,
            stack=resolved.tenant.name,
            config=config,
            state_file=str(self.work / f"{resolved.tenant.name}.json"),
            policy_packs=[str(self.root / "policies")] if with_policies else [],
            policy_config=self.policy_config if with_policies else None,
            env=env,
            quiet=True,
        )

    def run(self, operation: str, resolved: ResolvedTenant) -> Outcome:
        from qlik_email_resource.offline import OfflineRunError

        try:
            with self._stack(resolved, with_policies=operation in ("preview", "up")) as stack:
                result = getattr(stack, operation)()
        except OfflineRunError as exc:
            return Outcome(ok=False, text=str(exc))
        changed: dict[str, list[str]] = {}
        for step in result.steps:
            if step.op != "same" or step.changed_fields:
                changed.setdefault(step.op, []).extend(step.changed_fields)
        return Outcome(
            ok=result.ok,
            text=result.report(),
            changed=changed,
            violations=[f"{v.policy} ({v.level})" for v in result.violations],
            details=[v.message.strip().splitlines()[-1] for v in result.violations],
        )


    def preview_change(self, resolved: ResolvedTenant, change: Mapping[str, Any]) -> Outcome:
        """Preview the stack as if its settings had ``change``; writes nothing."""
        tenant = dataclasses.replace(resolved.tenant, email={**resolved.tenant.email, **change})
        return self.run("preview", dataclasses.replace(resolved, tenant=tenant))


class CliEngine:
    """The real `pulumi` CLI on the repo's program, state in a local file backend.

    The CLI runs in a copy of the project under .demo/project (Pulumi.yaml and
    __main__.py), so the stack files it writes (Pulumi.demo.yaml, ...) never land
    in the clone. Secrets reach the CLI on stdin, never on a command line.
    Preview, up and refresh go through the Automation API with the program's
    __main__.py as an inline program, and the policy pack as pulumi_cli prepares
    it: this works with or without the CLI's Python language host (docs/cli.md).
    """

    def __init__(self, root: Path, work: Path, policy_config: Mapping[str, Any]) -> None:
        from qlik_email_resource import pulumi_cli

        self.root = root
        self.work = work
        self.project = _project_copy(root, work / "project")
        state = work / "pulumi-state"
        state.mkdir(parents=True, exist_ok=True)
        self.policy_config_file = work / "policy-config.json"
        self.policy_config_file.write_text(json.dumps(dict(policy_config), indent=2))
        self.policy_pack = pulumi_cli.policy_pack_for_cli(root / "policies", work)
        self.cli_env = {
            "PULUMI_BACKEND_URL": f"file://{state.resolve()}",
            "PULUMI_CONFIG_PASSPHRASE": DEMO_PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            **pulumi_cli.plugin_environ(),
        }
        self.env = {**os.environ, **self.cli_env}
        version = self._pulumi(["version"]).stdout.strip()
        self.label = f"the Pulumi CLI {version}, local backend file://{state.resolve()}"
        if not pulumi_cli.has_python_language_host():
            self.label += " (program inline via the Automation API, no Python language host)"
        self._configured: set[str] = set()
        self._stacks: dict[str, Any] = {}

    def _pulumi(
        self, args: Sequence[str], stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        # A value on stdin (config set) is read as piped input, not a prompt.
        flags = [] if stdin is not None else ["--non-interactive"]
        proc = subprocess.run(
            ["pulumi", *flags, "--color", "never", *args],
            cwd=self.project, env=self.env, input=stdin, capture_output=True, text=True,
            check=False,
        )
        if check and proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise DemoError(f"`pulumi {' '.join(args[:2])}` failed:\n" + "\n".join(tail))
        return proc

    def _configure(self, resolved: ResolvedTenant) -> list[str]:
        name = resolved.tenant.name
        common = ["--stack", name]
        if name not in self._configured:
            if self._pulumi(["stack", "select", name], check=False).returncode != 0:
                self._pulumi(["stack", "init", name])
            for key, (value, secret) in program_config(resolved).items():
                flag = "--secret" if secret else "--plaintext"
                self._pulumi(["config", "set", *common, flag, key], stdin=value)
            self._configured.add(name)
        return common

    def _stack(self, name: str) -> Any:
        from pulumi import automation as auto

        from qlik_email_resource.pulumi_cli import program_from_file

        if name not in self._stacks:
            workspace = auto.LocalWorkspace(
                work_dir=str(self.project),
                program=program_from_file(self.project / "__main__.py"),
                env_vars=self.cli_env,
            )
            self._stacks[name] = auto.Stack.select(name, workspace)
        return self._stacks[name]

    def _engine(self, name: str, operation: str, **options: Any) -> Outcome:
        from pulumi import automation as auto

        events = _CliEvents()
        if operation in ("preview", "up"):
            options.update(policy_packs=[self.policy_pack],
                           policy_pack_configs=[str(self.policy_config_file)])
        try:
            result = getattr(self._stack(name), operation)(
                diff=True, color="never", on_event=events.handle, **options
            )
        except auto.CommandError as exc:
            text = "\n".join(x for x in (exc_stdout(exc), exc_stderr(exc)) if x).strip()
            ok, text = False, text or str(exc)
        else:
            ok, text = True, str(result.stdout).strip()
        # The CLI's own output is the point of this path: it is always shown.
        return Outcome(ok=ok, text=text, always_show=True, changed=events.changed,
                       violations=events.violations)

    def run(self, operation: str, resolved: ResolvedTenant) -> Outcome:
        self._configure(resolved)
        return self._engine(resolved.tenant.name, operation)

    def preview_change(self, resolved: ResolvedTenant, change: Mapping[str, Any]) -> Outcome:
        """`pulumi preview` on a copy of the stack config with ``change`` applied."""
        self._configure(resolved)
        name = resolved.tenant.name
        # A copy of the stack's config file, so the real one keeps the deployed values.
        trial = self.work / f"Pulumi.{name}.trial.yaml"
        shutil.copyfile(self.project / f"Pulumi.{name}.yaml", trial)
        for key, value in change.items():
            text = json.dumps(value) if isinstance(value, bool) else str(value)
            self._pulumi(["config", "set", "--stack", name, "--config-file", str(trial),
                          f"email:{PROGRAM_KEYS[key]}"], stdin=text)
        return self._engine(name, "preview", config_file=str(trial))


class _CliEvents:
    """What the demo reports from the engine's events: steps, changed settings, policies."""

    def __init__(self) -> None:
        self.changed: dict[str, list[str]] = {}
        self.violations: list[str] = []
        self._refreshing = False

    def handle(self, event: Any) -> None:
        # The dynamic provider's diff names no keys, so the events carry none: the
        # changed settings are the inputs that differ. A refresh step announces
        # itself as "refresh" and reports what it read as an "update" when the
        # tenant drifted: there, the outputs that differ.
        for step, part in ((event.resource_pre_event, "inputs"),
                           (event.res_outputs_event, "outputs")):
            if step is None or not step.metadata.type.startswith("pulumi-python:dynamic"):
                continue
            meta = step.metadata
            op = str(getattr(meta.op, "value", meta.op))
            if op == "refresh" and part == "inputs":
                self._refreshing = True
                continue
            if op == "same" or (part == "outputs") != self._refreshing:
                continue
            olds = (getattr(meta.old, part, None) if meta.old else None) or {}
            news = (getattr(meta.new, part, None) if meta.new else None) or {}
            fields = sorted(k for k in olds.keys() | news.keys()
                            if not k.startswith("__") and olds.get(k) != news.get(k))
            key = "refresh" if self._refreshing else op
            self.changed.setdefault(key, []).extend(fields if olds and news else [])
        policy = event.policy_event
        if policy is not None:
            entry = f"{policy.policy_name} ({policy.enforcement_level})"
            if entry not in self.violations:
                self.violations.append(entry)


def exc_stdout(exc: Exception) -> str:
    return str(getattr(exc, "stdout", "") or "")


def exc_stderr(exc: Exception) -> str:
    return str(getattr(exc, "stderr", "") or "")


def _project_copy(root: Path, target: Path) -> Path:
    """The repo's program in ``target``, its virtualenv made absolute (this Python's)."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root / "__main__.py", target / "__main__.py")
    project = yaml.safe_load((root / "Pulumi.yaml").read_text())
    runtime = project.get("runtime")
    if isinstance(runtime, dict) and sys.prefix != sys.base_prefix:
        runtime.setdefault("options", {})["virtualenv"] = sys.prefix
    (target / "Pulumi.yaml").write_text(
        "# A working copy of the repo's Pulumi.yaml, written by `make demo`.\n"
        + yaml.safe_dump(project, sort_keys=False)
    )
    return target


@contextmanager
def _emulator(work: Path, keep_running: bool, console: Console) -> Iterator[Any]:
    from qlik_email_resource.emulator import Emulator

    emu = Emulator(tenants=TENANTS, workdir=work / "emulator")
    emu.start()
    try:
        yield emu
        if keep_running:
            console.step("The emulator keeps running (--keep-running); stop it with Ctrl-C")
            console.info(f"inbox: {emu.mailbox_url}")
            console.info(f"API:   {emu.api_url}/t/<tenant>   admin: {emu.admin_url}")
            stop = threading.Event()
            # Ctrl-C, or SIGTERM from a process manager, ends the wait cleanly.
            previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
            finally:
                signal.signal(signal.SIGTERM, previous)
            console.info("stopping the emulator")
    finally:
        emu.stop()


def emulator_environ(emu: Any) -> dict[str, str]:
    """What examples/tenants.yaml reads from the environment, from the running emulator."""
    info = emu.info
    return {
        "QLIK_EMULATOR_API_URL": info["api_url"],
        "QLIK_EMULATOR_CA": info["ca_file"],
        "QLIK_EMULATOR_SMTP_PASSWORD": info["smtp"]["password"],
        **{f"QLIK_{name.upper()}_API_KEY": t["api_key"] for name, t in info["tenants"].items()},
    }


def _show(console: Console, outcome: Outcome, verbose: bool) -> None:
    if verbose or outcome.always_show or not outcome.ok:
        console.info(outcome.text)


def run_demo(work: Path, *, keep_running: bool, verbose: bool, out: TextIO) -> int:
    root = repo_root()
    work.mkdir(parents=True, exist_ok=True)
    # Every run starts a fresh emulator (new ports, keys and empty tenants), so
    # stacks from an earlier run would point at tenants that no longer exist.
    for stale in ("offline-state", "pulumi-state", "emulator", "project"):
        shutil.rmtree(work / stale, ignore_errors=True)
    for config_file in work.glob("Pulumi.*.yaml"):
        config_file.unlink()
    secrets: list[str] = []
    console = Console(out, secrets)
    console.write("qlik-email-resource demo: two Qlik tenants' email, as code, no account needed")
    console.info(f"working files: {work}")

    console.step(f"Start the Qlik emulator: tenants {', '.join(TENANTS)} and an SMTP server")
    with _emulator(work, keep_running, console) as emu:
        environ = emulator_environ(emu)
        secrets += [v for k, v in environ.items() if k.endswith(("_API_KEY", "_PASSWORD"))]
        for name in TENANTS:
            console.info(f"tenant {name:<5} {emu.tenant(name).url}")
        console.info(f"SMTP server 127.0.0.1 (TLS {emu.info['smtp']['tls_port']}), "
                     f"inbox page {emu.mailbox_url}")

        fleet = load(root / "examples" / "tenants.yaml", environ)
        tenants = [fleet.tenant(name).resolve(environ) for name in TENANTS]
        engine: OfflineEngine | CliEngine
        if shutil.which("pulumi"):
            engine = CliEngine(root, work, fleet.policy_config)
        else:
            engine = OfflineEngine(root, work, fleet.policy_config)

        console.step("Review: preview both stacks with the policy pack (policies/)")
        console.info(f"engine: {engine.label}")
        console.info(f"program: {root / 'Pulumi.yaml'}, settings: examples/tenants.yaml")
        for resolved in tenants:
            outcome = engine.run("preview", resolved)
            _show(console, outcome, verbose)
            _require(outcome, f"preview of {resolved.tenant.name}")
            verdict = ", ".join(outcome.violations) or "no policy violations"
            console.info(f"{resolved.tenant.name}: would {_ops(outcome)}; {verdict}")

        console.step("Deploy: `up` both stacks (the policy pack runs again and would block)")
        for resolved in tenants:
            outcome = engine.run("up", resolved)
            _show(console, outcome, verbose)
            _require(outcome, f"up of {resolved.tenant.name}")
            console.info(f"{resolved.tenant.name}: {_ops(outcome)}")
        for resolved in tenants:
            with _client(resolved) as client:
                config = client.get_config()
            console.info(
                f"{resolved.tenant.name}: the tenant now holds server "
                f"{config.get('serverAddress')}:{config.get('serverPort')} "
                f"({config.get('securityType')}), isValid={config.get('isValid')}"
            )
            if config.get("isValid") is not True:
                raise DemoError(f"tenant {resolved.tenant.name} reports an invalid configuration")

        bad = {"security_type": "none", "server_port": 25}
        console.step("Policy gate: preview a change to plain SMTP (security_type none, port 25)")
        emu.clear_requests()
        outcome = engine.preview_change(tenants[0], bad)
        if verbose or outcome.always_show:
            console.info(outcome.text)
        for detail in outcome.details:
            console.info(f"policy: {detail}")
        writes = [r for r in emu.requests() if r["method"] != "GET"]
        if outcome.ok or "email-tls-required" not in " ".join(outcome.violations) or writes:
            raise DemoError("the policy pack did not block a change to plain SMTP")
        console.info(f"{tenants[0].tenant.name}: blocked by {', '.join(outcome.violations)}; "
                     "nothing was sent to the tenant")

        console.step("Send a test email from each tenant")
        emu.clear_mailbox()
        for resolved in tenants:
            with _client(resolved) as client:
                answer = client.send_test_email(
                    RECIPIENT,
                    f"Test mail from Qlik tenant {resolved.tenant.name}",
                    "Sent by `make demo` through the tenant's email configuration.",
                )
            if not answer.get("success", True):
                raise DemoError(f"tenant {resolved.tenant.name} could not send: {answer}")
            console.info(f"{resolved.tenant.name}: sent to {RECIPIENT}")
        mails = _wait_for_mail(emu, len(tenants))
        for mail in mails:
            console.info(f"inbox: from {mail['from']} to {mail['to']}: {mail['subject']}")
        console.info(f"see them at {emu.mailbox_url}")
        # A copy that outlives the emulator, so the mails can be read after the demo ends.
        inbox_file = work / "inbox.html"
        inbox_file.write_text(inbox_html(emu.mailbox()), encoding="utf-8")
        console.info(f"or, after the demo, in {inbox_file}")

        field_name, qlik_name, value = DRIFT_FIELD
        console.step(f"Drift: change {field_name} of tenant {DRIFT_TENANT} behind Pulumi's back")
        drifted = next(t for t in tenants if t.tenant.name == DRIFT_TENANT)
        with _client(drifted) as client:
            current = dict(client.get_config().get("providerConfig") or {})
        # A console edit changes one field and keeps the stored password; the
        # emulator's set_config replaces the whole config, so send all of it.
        current[qlik_name] = value
        current["emailPassword"] = drifted.email_secrets.get("email_password")
        emu.set_config(DRIFT_TENANT, {"serviceProvider": "BasicAuth", "providerConfig": current})
        console.info(f"set {qlik_name} = {value!r} through the emulator (as in the Qlik console)")
        outcome = engine.run("refresh", drifted)
        _show(console, outcome, verbose)
        _require(outcome, f"refresh of {DRIFT_TENANT}")
        found = _settings(outcome)
        console.info(f"refresh: the stack now records the drift ({', '.join(found) or 'changed'})")
        outcome = engine.run("up", drifted)
        _show(console, outcome, verbose)
        _require(outcome, f"repairing up of {DRIFT_TENANT}")
        console.info(f"up: {_ops(outcome)}")
        if outcome.changed and field_name not in _settings(outcome):
            raise DemoError(f"up did not change {field_name} back")
        with _client(drifted) as client:
            now = _sender_name(client.get_config())
        wanted = drifted.tenant.email.get(field_name)
        if now != wanted:
            raise DemoError(f"{field_name} is {now!r} after up, expected {wanted!r}")
        console.info(f"the tenant holds {field_name} = {now!r} again")

        console.step("Done")
        console.info(f"engine: {engine.label}")
        if keep_running:
            console.info(f"inbox: {emu.mailbox_url}")
        else:
            console.info(f"inbox: {work / 'inbox.html'} (the emulator is stopped; for the live "
                         "page run `.venv/bin/python -m qlik_email_resource.demo --keep-running`)")
    return 0


def _require(outcome: Outcome, what: str) -> None:
    if not outcome.ok:
        raise DemoError(f"{what} failed (details above)")


def _settings(outcome: Outcome) -> list[str]:
    """Changed email settings, without outputs the tenant computes (modification_time...).

    The password is left out: it is write-only, so no read can tell whether it drifted.
    """
    fields = {f for changed in outcome.changed.values() for f in changed}
    return sorted(fields & (set(PROGRAM_KEYS) - {"email_password"}))


def _ops(outcome: Outcome) -> str:
    parts = []
    for op, fields in outcome.changed.items():
        shown = sorted(set(fields) & (set(PROGRAM_KEYS) - {"email_password"}))
        parts.append(op + (f" ({', '.join(shown)})" if shown else ""))
    return ", ".join(parts) or "no changes"


@contextmanager
def _client(resolved: ResolvedTenant) -> Iterator[Any]:
    from qlik_email_resource.client import QlikClient
    from qlik_email_resource.settings import Settings

    client = QlikClient(
        Settings(tenant_url=resolved.tenant.url, api_key=resolved.api_key,
                 ca_bundle=resolved.tenant.ca_bundle)
    )
    try:
        yield client
    finally:
        client.close()


def _sender_name(config: Mapping[str, Any]) -> Any:
    provider = config.get("providerConfig") or {}
    return provider.get("senderName", config.get("senderName"))


def _wait_for_mail(emu: Any, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        mails: list[dict[str, Any]] = emu.mailbox()
        if len(mails) >= count:
            return mails
        if time.monotonic() > deadline:
            raise DemoError(f"expected {count} mails in the emulator's inbox, found {len(mails)}")
        time.sleep(0.1)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qlik_email_resource.demo",
        description="Deploy the example email configuration to two emulated Qlik tenants.",
    )
    parser.add_argument("--workdir", default=".demo", help="working files (default .demo/)")
    parser.add_argument("--keep-running", action="store_true",
                        help="leave the emulator running at the end (Ctrl-C stops it)")
    parser.add_argument("--verbose", action="store_true",
                        help="show the full output of every Pulumi operation")
    args = parser.parse_args(argv)
    stream = out if out is not None else sys.stdout
    try:
        return run_demo(Path(args.workdir).resolve(), keep_running=args.keep_running,
                        verbose=args.verbose, out=stream)
    except (DemoError, TenantsFileError, CredentialError) as exc:
        stream.write(f"\ndemo failed: {exc}\n")
        return 1
    except QlikError as exc:
        stream.write(f"\ndemo failed: the emulated tenant answered with an error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        stream.write("\ndemo interrupted\n")
        return 130

if __name__ == "__main__":
    sys.exit(main())
