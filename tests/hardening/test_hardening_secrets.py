"""Secret scans: recognisable canaries through whole runs, searched in every channel.

tests/provider scans single provider calls. Here the canaries (an API key, an
OAuth client secret, SMTP passwords) travel through what users run: the offline
runner (up, no-op up, rotation, refresh, preview, policy block, failures,
destroy) and the fleet command, with every log at DEBUG. Then every output
channel is searched, for each canary in clear, base64 (SMTP AUTH PLAIN/LOGIN)
and URL-encoded form:

provider gRPC answers outside secret wrappers, program outputs and reports,
the state file, provider and analyzer stderr, the emulator's logs and request
log, exception texts and tracebacks, policy messages, the fleet's table and
progress, the serialized provider.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import grpc
import pytest
from pulumi.runtime.proto import provider_pb2 as P

# Everything the runs below import from the package is imported here, at collection:
# pytest rewrites this package's modules on import (it is a pytest11 plugin's
# distribution), and on CPython 3.11 that compile can fail spuriously with "AST
# constructor recursion depth mismatch" when it happens deep inside a later test.
import qlik_email_resource.demo as demo_module
import qlik_email_resource.resource  # noqa: F401
from qlik_email_resource.emulator import Emulator
from qlik_email_resource.offline import OfflineStack, Secret
from qlik_email_resource.offline.grpc_servers import AnalyzerServer, ProviderServer, to_struct
from qlik_email_resource.offline.provider_driver import ProviderDriver
from qlik_email_resource.policy_pack.rules import TENANT_URL
from qlik_email_resource.redaction import redact
from tests.support.echo_tenant import echoed, serve
from tests.support.provider import clear_text

API_KEY = "qlikemu_CANARY-API-KEY-31415"
CLIENT_SECRET = "CANARY-CLIENT-SECRET-27182"
SMTP_USER = "canary-user"
SMTP_PASSWORD = "CANARY-SMTP-PASSWORD-16180"
SMTP_ROTATED = "CANARY-SMTP-ROTATED-14142"
WRONG_KEY = "qlikemu_CANARY-WRONG-KEY-05772"
WRONG_PASSWORD = "CANARY-WRONG-SMTP-PASSWORD-69314"
FLEET_KEY = "qlikemu_CANARY-FLEET-KEY-11235"
CANARIES = [API_KEY, CLIENT_SECRET, SMTP_PASSWORD, SMTP_ROTATED, WRONG_KEY, WRONG_PASSWORD,
            FLEET_KEY]
ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"


def forms(secret: str) -> list[str]:
    """The secret as it could leak: clear, escaped (repr, ascii(), JSON), URL-encoded,
    base64 alone and in SMTP AUTH."""
    b64 = [base64.b64encode(raw.encode()).decode() for raw in (
        secret, f"\0{SMTP_USER}\0{secret}", f"{SMTP_USER}\0{SMTP_USER}\0{secret}")]
    escaped = [repr(secret)[1:-1], ascii(secret)[1:-1], json.dumps(secret)[1:-1],
               json.dumps(secret, ensure_ascii=False)[1:-1], quote_plus(secret)]
    return list(dict.fromkeys([secret, quote(secret, safe=""), *escaped, *b64]))


def leaks(text: str) -> list[str]:
    return [form for secret in CANARIES for form in forms(secret) if form in text]


class Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        if record.exc_info:
            self.lines.append("".join(traceback.format_exception(*record.exc_info)))


def set_credentials(emu: Emulator, tenant: str, **values: str) -> None:
    """Give a tenant recognisable credentials (white-box: the emulator is a test tool)."""
    obj = emu.backend.tenant(tenant)
    assert obj is not None
    for key, value in values.items():
        setattr(obj, key, value)


def api_key_program() -> None:
    import pulumi

    from qlik_email_resource import TenantEmailConfig, TenantEmailConfigArgs

    qlik, email = pulumi.Config("qlik"), pulumi.Config("email")
    mail = TenantEmailConfig("mail", TenantEmailConfigArgs(
        tenant_url=qlik.require("tenantUrl"), api_key=qlik.require_secret("apiKey"),
        server_address="email-smtp.eu-west-2.amazonaws.com", server_port=465,
        security_type=email.get("securityType") or "SSL/TLS",
        email_address="qlik@example.com", username=SMTP_USER,
        email_password=email.require_secret("password"), verify_connection=True,
        test_email_recipient="ops@example.com",
    ))
    # Exports that would leak if the runner unwrapped them.
    pulumi.export("tenant_id", mail.tenant_id)
    pulumi.export("password", mail.email_password)
    pulumi.export("api_key", mail.api_key)
    pulumi.export("is_valid", mail.is_valid)


def oauth_program() -> None:
    import pulumi

    from qlik_email_resource import TenantEmailConfig, TenantEmailConfigArgs

    email = pulumi.Config("email")
    mail = TenantEmailConfig("mail", TenantEmailConfigArgs(
        server_address="email-smtp.eu-west-2.amazonaws.com", server_port=587,
        security_type="StartTLS", email_address="qlik@example.com", username=SMTP_USER,
        email_password=email.require_secret("password"),
    ))
    pulumi.export("tenant_id", mail.tenant_id)


class Channels:
    """Every text a user, a log collector or a state store would see."""

    def __init__(self) -> None:
        self.texts: dict[str, list[str]] = {}

    def add(self, channel: str, *texts: Any) -> None:
        self.texts.setdefault(channel, []).extend(
            t if isinstance(t, str) else repr(t) for t in texts
        )

    def add_error(self, channel: str, exc: BaseException) -> None:
        self.add(channel, str(exc), repr(exc), "".join(traceback.format_exception(exc)))


@pytest.fixture(scope="module")
def channels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Channels]:
    tmp = tmp_path_factory.mktemp("secrets")
    found = Channels()
    collector = Collector()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(collector)
    root.setLevel(logging.DEBUG)
    stdout = io.StringIO()
    debug = {"QLIK_LOG_LEVEL": "DEBUG", "QLIK_MAX_RETRIES": "1", "QLIK_BACKOFF_FACTOR": "0.01"}
    # Servers started by the runner or the fleet write stderr to temp files: keep
    # this run's in one folder to scan them.
    old_tempdir = tempfile.tempdir
    tempfile.tempdir = str(tmp)
    emu = Emulator(tenants=("canary", "oauth", "fleet1", "fleet2"), workdir=tmp / "emu")
    servers: list[ProviderServer | AnalyzerServer] = []
    try:
        emu.start()
        set_credentials(emu, "canary", api_key=API_KEY)
        set_credentials(emu, "oauth", client_secret=CLIENT_SECRET)
        set_credentials(emu, "fleet1", api_key=FLEET_KEY)
        emu.add_smtp_user(SMTP_USER, SMTP_PASSWORD)
        env = {**debug, "QLIK_CA_BUNDLE": emu.ca_file}
        provider = ProviderServer(env=env)
        analyzer = AnalyzerServer(POLICIES, env=env)
        servers += [provider, analyzer]
        analyzer.configure({TENANT_URL: {"allowLocalhost": True}})
        state_file = tmp / "canary.json"

        def snapshot() -> None:
            for path in tmp.glob("*.json"):
                found.add("state files", path.read_text())

        class Snapshotting:
            """An OfflineStack whose state file is kept after every operation."""

            def __init__(self, stack: Any) -> None:
                self.stack = stack

            def __getattr__(self, operation: str) -> Any:
                def run() -> Any:
                    try:
                        return getattr(self.stack, operation)()
                    finally:
                        snapshot()
                return run

        def stack(config_extra: dict[str, Any]) -> Any:
            config = {"qlik:tenantUrl": emu.tenant("canary").url, "qlik:apiKey": Secret(API_KEY),
                      "email:password": Secret(SMTP_PASSWORD), **config_extra}
            return Snapshotting(OfflineStack(
                api_key_program, project="canary", stack="dev", config=config,
                state_file=str(state_file), provider_server=provider, analyzer=analyzer,
                env=env))

        with contextlib.redirect_stdout(stdout):
            results = [stack({}).up(), stack({}).up()]           # create, then no-op
            emu.add_smtp_user(SMTP_USER, SMTP_ROTATED)           # password rotation
            results.append(stack({"email:password": Secret(SMTP_ROTATED)}).up())
            emu.set_config("canary", {"senderName": "changed in the console",
                                      "serverAddress": "smtp.example.com", "serverPort": 465,
                                      "securityType": "SSL/TLS", "emailAddress": "x@example.com",
                                      "username": SMTP_USER, "emailPassword": SMTP_ROTATED})
            rotated = {"email:password": Secret(SMTP_ROTATED)}
            results += [stack(rotated).refresh(), stack(rotated).preview(), stack(rotated).up()]
            for label, extra in (
                ("policy", {**rotated, "email:securityType": "none"}),  # mandatory policy
                ("smtp-auth", {"email:password": Secret(WRONG_PASSWORD)}),
                ("api-key", {**rotated, "qlik:apiKey": Secret(WRONG_KEY)}),
            ):
                try:
                    results.append(stack(extra).up())
                except Exception as exc:
                    found.add_error("exceptions and tracebacks", exc)
                    if label == "policy":
                        found.add("policy messages", *(v.message for v in exc.violations))
                    found.texts.setdefault("failures seen", []).append(label)
            # OAuth: the client secret reaches the provider as stack config only.
            oauth_server = ProviderServer(env=env)
            servers.append(oauth_server)
            oauth = Snapshotting(OfflineStack(
                oauth_program, project="canary", stack="oauth",
                config={"qlik:tenantUrl": emu.tenant("oauth").url,
                        "qlik:clientId": emu.tenant("oauth").client_id,
                        "qlik:clientSecret": Secret(CLIENT_SECRET),
                        "email:password": Secret(SMTP_ROTATED)},
                state_file=str(tmp / "oauth.json"), provider_server=oauth_server,
                analyzer=analyzer, env=env))
            results.append(oauth.up())
            emu.expire_tokens("oauth")
            results += [oauth.refresh(), oauth.destroy(), stack(rotated).destroy()]
        for result in results:
            found.add("program outputs and reports", result.report(), result.outputs,
                      result.steps, result.violations)
        found.add("runner stdout", stdout.getvalue())

        # The same provider through the engine's own calls: keep every gRPC answer.
        driver = ProviderDriver(provider)
        driver.up({"tenant_url": emu.tenant("canary").url, "api_key": API_KEY,
                   "server_address": "smtp.example.com", "server_port": 465,
                   "security_type": "SSL/TLS", "email_address": "qlik@example.com",
                   "username": SMTP_USER, "email_password": SMTP_ROTATED})
        driver.refresh()
        driver.destroy()
        found.add("provider gRPC answers", *(clear_text(r) for r in driver.responses),
                  *driver.errors)
        found.add("serialized provider", driver.provider,
                  base64.b64decode(driver.provider).decode("latin-1"))

        # The fleet command, offline, one tenant failing on purpose.
        found.add("fleet table, progress and state", *run_fleet(emu, tmp))

        found.add("provider and analyzer stderr (DEBUG)", *(s.stderr() for s in servers),
                  *_runner_server_logs(tmp))
        found.add("emulator request log", json.dumps(emu.requests()))
        found.add("emulator and runner logs (DEBUG)", *collector.lines)
        found.add("emulator mailbox", json.dumps(emu.mailbox()))
        yield found
    finally:
        tempfile.tempdir = old_tempdir
        root.removeHandler(collector)
        root.setLevel(old_level)
        for server in servers:
            server.stop()
        emu.stop()


def _runner_server_logs(tmp: Path) -> list[str]:
    # Servers the runner or the fleet started themselves write their stderr to
    # temp files named qlik-grpc-*.log; read the ones from this run.
    return [p.read_text(errors="replace") for p in tmp.glob("qlik-grpc-*.log")]


def run_fleet(emu: Emulator, tmp: Path) -> list[str]:
    tenants = tmp / "tenants.yaml"
    tenants.write_text(json.dumps({
        "project": "canary-fleet",
        "defaults": {"server_address": "email-smtp.eu-west-2.amazonaws.com",
                     "server_port": 465, "security_type": "SSL/TLS",
                     "email_address": "qlik@example.com", "username": SMTP_USER,
                     "email_password_env": "CANARY_SMTP_PASSWORD", "verify_connection": True},
        "tenants": {
            "fleet1": {"url": emu.tenant("fleet1").url, "api_key_env": "CANARY_FLEET_KEY",
                       "ca_bundle": emu.ca_file},
            # A wrong key: this tenant fails, and its error row is scanned too.
            "fleet2": {"url": emu.tenant("fleet2").url, "api_key_env": "CANARY_WRONG_KEY",
                       "ca_bundle": emu.ca_file},
        },
        "policy_config": {TENANT_URL: {"allowLocalhost": True}},
    }))
    env = {**os.environ, "CANARY_SMTP_PASSWORD": SMTP_ROTATED, "CANARY_FLEET_KEY": FLEET_KEY,
           "CANARY_WRONG_KEY": WRONG_KEY, "QLIK_LOG_LEVEL": "DEBUG",
           # the servers the fleet starts log to temp files: keep them in tmp for the scan
           # (they are removed when a server stops unless QLIK_KEEP_SERVER_LOGS is set)
           "TMPDIR": str(tmp), "QLIK_KEEP_SERVER_LOGS": "1"}
    texts = []
    # The CLI in a process of its own, as users run it.
    for _ in range(2):  # first roll-out, then a no-op run
        done = subprocess.run(
            [sys.executable, "-m", "qlik_email_resource.fleet", "up", str(tenants), "--offline",
             "--policy-pack", str(POLICIES), "--state-dir", str(tmp / "fleet-state"),
             "--parallel", "2"],
            capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
        assert done.returncode == 1, done.stderr[-2000:]  # fleet2 fails, fleet1 works
        texts += [done.stdout, done.stderr]
    texts += [p.read_text(errors="replace") for p in (tmp / "fleet-state").rglob("*")
              if p.is_file()]
    return texts


EXPECTED_CHANNELS = [
    "program outputs and reports", "runner stdout", "state files", "provider gRPC answers",
    "serialized provider", "fleet table, progress and state",
    "provider and analyzer stderr (DEBUG)", "emulator request log",
    "emulator and runner logs (DEBUG)", "exceptions and tracebacks", "policy messages",
    "emulator mailbox",
]


@pytest.mark.parametrize("channel", EXPECTED_CHANNELS)
def test_no_canary_in(channels: Channels, channel: str) -> None:
    texts = channels.texts.get(channel)
    assert texts, f"nothing was collected from {channel}: the scan would prove nothing"
    for text in texts:
        found = leaks(text)
        if found:
            at = text.find(found[0])
            pytest.fail(f"{channel} leaks {found[0]!r}: ...{text[max(0, at - 200):at + 80]}...")


def test_the_scans_saw_real_traffic(channels: Channels) -> None:
    """Guard against an empty scan: the runs really did what the channels claim."""
    assert sorted(channels.texts["failures seen"]) == ["api-key", "policy", "smtp-auth"]
    debug = "\n".join(channels.texts["provider and analyzer stderr (DEBUG)"])
    assert "DEBUG" in debug and "PATCH" in debug and "oauth/token" in debug
    log = json.loads(channels.texts["emulator request log"][0])
    assert {r["method"] for r in log} >= {"GET", "PUT", "PATCH", "DELETE", "POST"}
    assert any(r["status"] == 401 for r in log)  # the wrong key really was sent
    state = "\n".join(channels.texts["state files"])
    assert "secure" in state  # secrets are in the file, encrypted
    assert any("ops@example.com" in m for m in channels.texts["emulator mailbox"])
    fleet = "\n".join(channels.texts["fleet table, progress and state"])
    assert "fleet1" in fleet and "fleet2" in fleet


def test_no_secret_in_the_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make demo` end to end: its output and working files hold no credential."""
    import qlik_email_resource.emulator as emulator_package

    seen: list[str] = []

    class CanaryEmulator(emulator_package.Emulator):
        def start(self) -> CanaryEmulator:
            super().start()
            for i, name in enumerate(self.tenant_names):
                set_credentials(self, name, api_key=f"qlikemu_CANARY-DEMO-KEY-{i}-98765",
                                client_secret=f"CANARY-DEMO-CLIENT-SECRET-{i}-4321")
            info = self.info
            seen.extend([info["smtp"]["password"], *(
                value for t in info["tenants"].values()
                for key, value in t.items() if key in ("api_key", "client_secret")
            )])
            return self

    monkeypatch.setattr(emulator_package, "Emulator", CanaryEmulator)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = demo_module.main(["--workdir", str(tmp_path / "demo"), "--verbose"], out=out)
    text = out.getvalue()
    assert code == 0, text[-2000:]
    assert len(seen) >= 5 and "CANARY-DEMO-KEY" in " ".join(seen)
    files = [p for p in (tmp_path / "demo").rglob("*")
             if p.is_file() and "emulator" not in p.relative_to(tmp_path / "demo").parts]
    for where, content in [("demo output", text),
                           *((str(p), p.read_text(errors="replace")) for p in files)]:
        for secret in seen:
            for form in forms(secret):
                assert form not in content, f"{where} leaks a credential ({form[:12]}...)"


# --- a tenant that echoes what it was sent, escaped --------------------------------------

ECHO_PASSWORD = "CANARY-Grüße-\"quoted\"-'pw'-\\-😀"
ECHO_KEY = "qlikemu_CANARY-ECHO-KEY-57721"
ECHO_CLIENT_SECRET = "CANARY-ECHO-CLIENT-SECRET-66743"
ECHO_TOKEN = "CANARY-ECHO-TOKEN-23606"
ECHO_CANARIES = [ECHO_PASSWORD, ECHO_KEY, ECHO_CLIENT_SECRET, ECHO_TOKEN]


def echo_leaks(text: str) -> list[str]:
    return [form for secret in ECHO_CANARIES for form in forms(secret) if form in text]


def test_no_canary_from_an_echoing_tenant() -> None:
    """A tenant that repeats the password and the token (repr, JSON-escaped,
    URL-encoded, plain) in its errors: no form reaches an error, a gRPC answer, the
    provider's DEBUG log, a check failure or the fleet's table."""
    smtp = {"server_address": "smtp.example.com", "server_port": 587,
            "security_type": "StartTLS", "email_address": "qlik@example.com",
            "username": SMTP_USER, "email_password": ECHO_PASSWORD}
    scenarios = [
        ("reject", {"qlik:apiKey": ECHO_KEY}, smtp),  # 400 echoing password and key
        ("accept", {"qlik:apiKey": ECHO_KEY}, {**smtp, "verify_connection": True}),  # SMTP
        ("echo-token", {"qlik:clientId": "cid", "qlik:clientSecret": ECHO_CLIENT_SECRET},
         smtp),  # 401 echoing the OAuth token
    ]
    texts: list[str] = []
    failures = []
    env = {"QLIK_LOG_LEVEL": "DEBUG", "QLIK_MAX_RETRIES": "0"}
    for mode, config, props in scenarios:
        with serve(mode, token=ECHO_TOKEN) as url:
            server = ProviderServer(env=env)
            try:
                server.configure({"qlik:tenantUrl": url, **config})
                driver = ProviderDriver(server)
                with pytest.raises(grpc.RpcError):
                    driver.up(props)
                # a password pasted as the server address, refused by Check
                check = server.stub.Check(P.CheckRequest(
                    urn="urn:pulumi:dev::hardening::x::mail", olds=to_struct({}),
                    news=to_struct({"__provider": driver.provider, **props,
                                    "server_address": ECHO_PASSWORD})))
                failures += [f.reason for f in check.failures]
                texts += [*driver.errors, *(clear_text(r) for r in driver.responses),
                          *failures, server.stderr()]
            finally:
                server.stop()
        texts.append(redact(f"{mode}: {echoed(ECHO_PASSWORD)} {echoed(ECHO_TOKEN)}",
                            ECHO_CANARIES))
    # Guard: three real failures, each carrying the server's words, and check refusals.
    assert len([t for t in texts if "Traceback" in t]) == 3
    joined = "\n".join(texts)
    assert "INPUTCHECK-1" in joined and "535" in joined and "unknown token" in joined
    assert len(failures) == 3 and "[secret]" in joined
    for text in texts:
        found = echo_leaks(text)
        assert not found, f"leaks {found[0]!r}: {text[:400]}"
