"""`make bench`: every benchmark against the emulator, one table at the end.

Each figure is a count, or a ratio of two things measured side by side in the
same run on the same machine (machines here are noisy: absolute times are shown
for context only). Goals are stated as met or with the gap.

    python benchmarks/run.py            # 200 tenants, about 5-8 minutes on 2 cores,
                                        # plus 30-40 for the real CLI's fleet (section 7)
    python benchmarks/run.py --quick    # 30 tenants, about 1-2 minutes, plus 5 for the CLI
    CLI_TENANTS=20 python benchmarks/run.py --only-cli   # the real CLI's figures, quickly

The emulator runs in a process of its own (`python -m qlik_email_resource.emulator`),
the fleet through its CLI (`python -m qlik_email_resource.fleet ... --offline`), the
providers in Pulumi's real dynamic provider host: nothing shares an interpreter with
this script except the HTTP client of the naive loop, as in real use.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

# Run as a script, this directory is first on sys.path: minimal_provider imports as a
# top-level module, which is the name it is pickled by (the cold-start host gets this
# directory on its PYTHONPATH to unpickle it).
from minimal_provider import MinimalProvider
from pulumi.runtime.proto import provider_pb2 as P

from qlik_email_resource.offline.grpc_servers import ProviderServer, from_struct
from qlik_email_resource.offline.provider_driver import ProviderDriver, serialized_provider
from qlik_email_resource.policy_pack.rules import TENANT_URL

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

URN = "urn:pulumi:bench::bench::pulumi-python:dynamic/qlik:TenantEmailConfig::mail"
EMAIL_CONFIG = "/api/v1/transports/email-config"
# SMTP verification latency the emulator adds to every handshake (PUT, verify, send).
# A TLS handshake plus AUTH to a hosted SMTP service (SES, Office 365, SendGrid) from a
# cloud region takes roughly 0.2-1 s; 0.3 s is the low end, so the naive loop is not
# flattered, and it keeps `make bench` short.
SMTP_DELAY = 0.3
WRITE_METHODS = ("PUT", "PATCH", "POST", "DELETE")


# --- the emulator, in its own process ------------------------------------------------------


class EmulatorProcess:
    def __init__(self, tenants: Sequence[str], smtp_delay: float = 0.0) -> None:
        argv = [sys.executable, "-m", "qlik_email_resource.emulator", "--quiet",
                "--smtp-delay", str(smtp_delay)]
        for name in tenants:
            argv += ["--tenant", name]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit("the emulator did not start: run `python -m "
                             "qlik_email_resource.emulator` to see why")
        self.info: dict[str, Any] = json.loads(line)
        self.admin = self.info["admin_url"]
        self.ca_file: str = self.info["ca_file"]
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {self.info['admin_token']}"

    def tenant(self, name: str) -> dict[str, str]:
        return dict(self.info["tenants"][name])

    def requests(self) -> list[dict[str, Any]]:
        return list(self.http.get(f"{self.admin}/requests", timeout=60).json())

    def clear_requests(self) -> None:
        self.http.delete(f"{self.admin}/requests", timeout=60)

    def reset(self) -> None:
        self.http.post(f"{self.admin}/reset", json={}, timeout=60)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@contextmanager
def emulator(tenants: Sequence[str], smtp_delay: float = 0.0) -> Iterator[EmulatorProcess]:
    emu = EmulatorProcess(tenants, smtp_delay)
    try:
        yield emu
    finally:
        emu.stop()


# --- results -------------------------------------------------------------------------------


@dataclass
class Row:
    section: str
    metric: str
    value: str
    goal: str = ""
    verdict: str = ""
    note: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def add(self, *args: str, **kwargs: str) -> None:
        row = Row(*args, **kwargs)
        self.rows.append(row)
        print(f"  {row.metric}: {row.value} {row.verdict}".rstrip(), flush=True)

    def table(self) -> str:
        headers = ("section", "metric", "value", "goal", "verdict")
        cells = [headers, *((r.section, r.metric, r.value, r.goal, r.verdict) for r in self.rows)]
        widths = [max(len(c[i]) for c in cells) for i in range(len(headers))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)).rstrip()
                 for cell in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        notes = [f"  [{r.section}] {r.metric}: {r.note}" for r in self.rows if r.note]
        return "\n".join(lines + (["", "notes:", *notes] if notes else []))


def verdict(met: bool, gap: str) -> str:
    return "met" if met else f"NOT MET ({gap})"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


# --- 1. HTTP calls per operation ---------------------------------------------------------------


def calls_per_operation(report: Report) -> None:
    print("1. HTTP calls per operation (real provider host, emulator request log)", flush=True)
    with emulator(["bench"]) as emu:
        tenant = emu.tenant("bench")
        server = ProviderServer(env={"QLIK_CA_BUNDLE": emu.ca_file})
        try:
            server.configure({"qlik:tenantUrl": tenant["url"], "qlik:apiKey": tenant["api_key"]})
            driver = ProviderDriver(server, urn=URN)
            user, password = emu.info["smtp"]["username"], emu.info["smtp"]["password"]
            props = {"server_address": "email-smtp.eu-west-2.amazonaws.com", "server_port": 465,
                     "security_type": "SSL/TLS", "email_address": "qlik@example.com",
                     "username": user, "email_password": password}
            counts: dict[str, list[str]] = {}

            def measure(name: str, action: Callable[[], Any]) -> Any:
                emu.clear_requests()
                result = action()
                counts[name] = [r["method"] for r in emu.requests()]
                return result

            inputs = measure("check", lambda: driver.checked(props))
            created = measure("create", lambda: driver.create(inputs))
            outs = created.properties
            news = driver.checked({**props, "server_port": 2465}, olds=inputs)
            measure("diff", lambda: driver.diff(created.id, outs, news))
            updated = measure("update (one field)",
                              lambda: driver.update(created.id, outs, news))
            outs = updated.properties
            measure("read", lambda: driver.read(created.id, outs, news))

            def noop_up() -> Any:
                again = driver.checked({**props, "server_port": 2465}, olds=news)
                diff = driver.diff(created.id, outs, again)
                assert diff.changes != P.DiffResponse.DIFF_SOME, "a no-op up found changes"

            measure("no-op up (check + diff)", noop_up)
            measure("delete", lambda: driver.delete(created.id, outs))
            assert from_struct(outs)
        finally:
            server.stop()
    expected = {"check": 0, "diff": 0, "create": 3, "update (one field)": 2, "read": 1,
                # delete reads first: it removes only the config this resource wrote
                "no-op up (check + diff)": 0, "delete": 2}
    for name, methods in counts.items():
        shown = f"{len(methods)}" + (f" ({' + '.join(methods)})" if methods else "")
        goal = expected[name]
        report.add("calls", name, shown, f"= {goal}",
                   verdict(len(methods) == goal, f"{len(methods) - goal:+d} calls"))
    report.raw["calls"] = counts


# --- 2. cold start ---------------------------------------------------------------------------


def cold_start(report: Report, runs: int) -> None:
    print(f"2. provider cold start, spawn to first completed Create ({runs} runs each)",
          flush=True)
    ours: list[float] = []
    minimal: list[float] = []
    with emulator(["bench"]) as emu:
        tenant = emu.tenant("bench")
        user, password = emu.info["smtp"]["username"], emu.info["smtp"]["password"]
        props = {"server_address": "email-smtp.eu-west-2.amazonaws.com", "server_port": 465,
                 "security_type": "SSL/TLS", "email_address": "qlik@example.com",
                 "username": user, "email_password": password}
        env = {"QLIK_CA_BUNDLE": emu.ca_file, "BENCH_API_KEY": tenant["api_key"],
               "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
        ours_string = serialized_provider()
        minimal_string = serialized_provider(MinimalProvider())

        def once(provider: str, config: Mapping[str, str], news: Mapping[str, Any]) -> float:
            started = time.perf_counter()
            server = ProviderServer(env=env, cwd=HERE)
            try:
                server.configure(config)
                ProviderDriver(server, provider, urn=URN).check_and_create(news)
                return time.perf_counter() - started
            finally:
                server.stop()

        config = {"qlik:tenantUrl": tenant["url"], "qlik:apiKey": tenant["api_key"]}
        once(ours_string, config, props)  # warm the OS file cache for both
        once(minimal_string, {}, {"url": tenant["url"] + EMAIL_CONFIG})
        for _ in range(runs):  # interleaved, so drift in machine load hits both alike
            ours.append(once(ours_string, config, props))
            minimal.append(once(minimal_string, {}, {"url": tenant["url"] + EMAIL_CONFIG}))
    ratio = median(ours) / median(minimal)
    report.add("cold start", "ours / minimal dynamic provider (median)", f"{ratio:.2f}x",
               "<= 1.3x", verdict(ratio <= 1.3, f"{ratio - 1.3:+.2f}x over"),
               note=f"ours {median(ours) * 1000:.0f} ms, minimal {median(minimal) * 1000:.0f} ms "
               "(median); ours' Create is GET + PUT (the tenant verifies SMTP) + GET, "
               "the minimal one is a single GET")
    report.raw["cold_start"] = {"ours": ours, "minimal": minimal}


# --- 3. import cost ----------------------------------------------------------------------------


def import_time(statement: str) -> float:
    code = ("import time; t = time.perf_counter(); " + statement
            + "; print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=ROOT)
    return float(out.stdout.strip().splitlines()[-1])


def import_cost(report: Report, runs: int) -> None:
    print(f"3. import cost, fresh interpreters ({runs} runs each)", flush=True)
    statements = {
        "pulumi": "import pulumi",
        "package": "import qlik_email_resource",
        "resource": "from qlik_email_resource import TenantEmailConfig",
    }
    times: dict[str, list[float]] = {k: [] for k in statements}
    for _ in range(runs):
        for key, statement in statements.items():
            times[key].append(import_time(statement))
    pulumi_s = median(times["pulumi"])
    package = median(times["package"]) / pulumi_s
    resource = median(times["resource"]) / pulumi_s
    report.add("import", "`import qlik_email_resource` / `import pulumi`", f"{package:.2f}x",
               note=f"pulumi {pulumi_s * 1000:.0f} ms; the package imports lazily")
    report.add("import", "`from qlik_email_resource import TenantEmailConfig` / `import pulumi`",
               f"{resource:.2f}x", note="the resource needs pulumi itself; the rest is ours")
    report.raw["import"] = times


# --- 4 and 5. the fleet ------------------------------------------------------------------------


def tenant_names(count: int) -> list[str]:
    return [f"t{i:03d}" for i in range(count)]


def fleet_files(
    emu: EmulatorProcess, names: Sequence[str], folder: Path
) -> tuple[Path, dict[str, str]]:
    """A tenants file for the fleet command, and the environment holding its secrets."""
    env = {"BENCH_SMTP_PASSWORD": emu.info["smtp"]["password"]}
    tenants = {}
    for name in names:
        var = f"BENCH_KEY_{name.upper()}"
        env[var] = emu.tenant(name)["api_key"]
        tenants[name] = {"url": emu.tenant(name)["url"], "api_key_env": var,
                         "ca_bundle": emu.ca_file}
    document = {
        "project": "bench-fleet",
        "defaults": {
            "server_address": "email-smtp.eu-west-2.amazonaws.com", "server_port": 465,
            "security_type": "SSL/TLS", "email_address": "reports@example.com",
            "username": emu.info["smtp"]["username"],
            "email_password_env": "BENCH_SMTP_PASSWORD", "verify_connection": True,
        },
        "tenants": tenants,
        "policy_config": {TENANT_URL: {"allowLocalhost": True}},
    }
    path = folder / "tenants.yaml"
    path.write_text(yaml.safe_dump(document))
    return path, env


@dataclass
class FleetRun:
    seconds: float
    exit_code: int
    output: str
    requests: list[dict[str, Any]]

    @property
    def writes(self) -> int:
        return sum(r["method"] in WRITE_METHODS for r in self.requests)

    @property
    def throttled(self) -> int:
        return sum(r["status"] == 429 for r in self.requests)

    def failed_tenants(self) -> int:
        return sum(" failed " in f" {line} " for line in self.output.splitlines()
                   if line.startswith("t") and line[1:4].isdigit())


def run_fleet(emu: EmulatorProcess, tenants_file: Path, env: Mapping[str, str],
              state_dir: Path, parallel: int, offline: bool = True) -> FleetRun:
    emu.clear_requests()
    argv = [sys.executable, "-m", "qlik_email_resource.fleet", "up", str(tenants_file),
            *(["--offline"] if offline else []), "--policy-pack", str(ROOT / "policies"),
            "--parallel", str(parallel), "--state-dir", str(state_dir)]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env},
                          cwd=ROOT)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"the fleet command failed to run:\n{done.stderr[-3000:]}")
    return FleetRun(seconds, done.returncode, done.stdout, emu.requests())


def run_audit(emu: EmulatorProcess, tenants_file: Path, env: Mapping[str, str],
              verify: bool) -> FleetRun:
    """`qlik-email-fleet audit` as users run it: its own process, no state, no CLI."""
    emu.clear_requests()
    argv = [sys.executable, "-m", "qlik_email_resource.fleet", "audit", str(tenants_file),
            *(["--verify"] if verify else [])]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env},
                          cwd=ROOT)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 5):
        raise SystemExit(f"the audit failed to run:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return FleetRun(seconds, done.returncode, done.stdout, emu.requests())


def naive_loop(emu: EmulatorProcess, names: Sequence[str]) -> FleetRun:
    """The qlik.dev tutorial as a loop: per tenant, PATCH the full config, GET it, send a
    test email to check it works; every run, whether anything changed or not."""
    user, password = emu.info["smtp"]["username"], emu.info["smtp"]["password"]
    body = [
        {"op": "replace", "path": "/serverAddress", "value": "email-smtp.eu-west-2.amazonaws.com"},
        {"op": "replace", "path": "/serverPort", "value": 465},
        {"op": "replace", "path": "/securityType", "value": "SSL/TLS"},
        {"op": "replace", "path": "/username", "value": user},
        {"op": "replace", "path": "/emailAddress", "value": "reports@example.com"},
        {"op": "replace", "path": "/emailPassword", "value": password},
    ]
    emu.clear_requests()
    failures = 0
    started = time.perf_counter()
    for name in names:
        tenant = emu.tenant(name)
        url = tenant["url"] + EMAIL_CONFIG
        with requests.Session() as http:
            http.headers["Authorization"] = f"Bearer {tenant['api_key']}"
            # verify per request: a session-level one loses to REQUESTS_CA_BUNDLE
            ca = emu.ca_file
            ok = http.patch(url, json=body, verify=ca, timeout=60).status_code == 204
            ok &= http.get(url, verify=ca, timeout=60).ok
            sent = http.post(url + "/actions/send-test-email", verify=ca, timeout=60,
                             json={"recipient": "ops@example.com", "subject": "test",
                                   "body": "tutorial check"})
            ok &= sent.ok and bool(sent.json().get("success"))
            failures += not ok
    seconds = time.perf_counter() - started
    return FleetRun(seconds, 1 if failures else 0, f"{failures} failed", emu.requests())


def fleet(report: Report, count: int) -> None:
    print(f"4-5. fleet of {count} tenants, offline runner, default rate limits, "
          f"SMTP delay {SMTP_DELAY} s", flush=True)
    names = tenant_names(count)
    with emulator(names, smtp_delay=SMTP_DELAY) as emu, \
            tempfile.TemporaryDirectory(prefix="qlik-bench-") as tmp:
        folder = Path(tmp)
        tenants_file, env = fleet_files(emu, names, folder)

        serial = run_fleet(emu, tenants_file, env, folder / "state-p1", parallel=1)
        print(f"  roll-out --parallel 1: {serial.seconds:.1f} s", flush=True)
        emu.reset()
        parallel = run_fleet(emu, tenants_file, env, folder / "state-p16", parallel=16)
        print(f"  roll-out --parallel 16: {parallel.seconds:.1f} s", flush=True)
        noop = run_fleet(emu, tenants_file, env, folder / "state-p16", parallel=16)
        print(f"  no-op reconcile (refresh + up): {noop.seconds:.1f} s", flush=True)
        audit = run_audit(emu, tenants_file, env, verify=False)
        print(f"  audit: {audit.seconds:.1f} s", flush=True)
        audit_verify = run_audit(emu, tenants_file, env, verify=True)
        print(f"  audit --verify: {audit_verify.seconds:.1f} s", flush=True)
        naive = naive_loop(emu, names)
        print(f"  naive tutorial loop: {naive.seconds:.1f} s", flush=True)

    for label, run in (("--parallel 1", serial), ("--parallel 16", parallel)):
        if run.exit_code != 0 or run.failed_tenants():
            raise SystemExit(f"the roll-out with {label} had failures:\n{run.output[-3000:]}")
    speedup = serial.seconds / parallel.seconds
    report.add("fleet", f"first roll-out, {count} tenants: --parallel 1 / --parallel 16",
               f"{speedup:.2f}x",
               note=f"{serial.seconds:.1f} s vs {parallel.seconds:.1f} s; the offline runner "
               "runs one stack at a time per process (a process-wide lock around the Pulumi "
               "SDK's global runtime), so --parallel cannot overlap tenants offline")
    failures = serial.failed_tenants() + parallel.failed_tenants()
    throttled = serial.throttled + parallel.throttled
    report.add("fleet", "roll-out tenants failed by 429", str(failures), "0",
               verdict(failures == 0, f"{failures} failed"),
               note=f"{throttled} answers were 429 and retried within the budget")
    faster = naive.seconds / noop.seconds
    report.add("fleet", f"no-op reconcile, {count} tenants: naive loop / ours", f"{faster:.1f}x",
               ">= 10x", verdict(faster >= 10, f"{10 - faster:.1f}x short"),
               note=f"ours {noop.seconds:.1f} s ({noop.seconds / count * 1000:.0f} ms a tenant, "
               f"process start-up included), naive {naive.seconds:.1f} s "
               f"({naive.seconds / count * 1000:.0f} ms a tenant, {SMTP_DELAY} s of it the "
               "SMTP check); ours makes one GET per tenant (the refresh) and no write")
    reads = sum(r["method"] == "GET" for r in noop.requests)
    report.add("fleet", "no-op reconcile: GETs per tenant (the refresh)",
               f"{reads / count:.2f}", "1", verdict(reads == count, f"{reads} GETs"),
               note="up refreshes each stack first (drift is seen), then finds nothing to do")
    report.add("fleet", "writes in a no-op reconcile: ours", str(noop.writes), "0",
               verdict(noop.writes == 0 and noop.exit_code == 0, f"{noop.writes} writes"),
               note=f"{len(noop.requests)} API calls in all")
    report.add("fleet", "writes in a no-op run: naive loop", str(naive.writes),
               note=f"{len(naive.requests)} API calls, {count} test emails")
    for label, run, per_tenant in (("audit", audit, "1 GET"),
                                   ("audit --verify", audit_verify, "1 GET + 1 POST")):
        report.add("audit", f"{label}, {count} tenants: seconds", f"{run.seconds:.1f}",
                   "< 10 s", verdict(run.seconds < 10, f"{run.seconds - 10:.1f} s over"),
                   note=f"whole command, process start-up and the policy pack included; "
                   f"{run.throttled} answers were 429")
        methods = sorted(r["method"] for r in run.requests)
        calls = len(methods) / count
        report.add("audit", f"{label}: calls per tenant", f"{calls:.2f}", per_tenant,
                   verdict(len(methods) == count * per_tenant.count("1"),
                           f"{len(methods)} calls"),
                   note=f"{methods.count('GET')} GET, {methods.count('POST')} POST, "
                   f"{run.writes - methods.count('POST')} other writes")
    report.raw["fleet"] = {k: {"seconds": v.seconds, "writes": v.writes,
                               "calls": len(v.requests), "throttled": v.throttled}
                           for k, v in (("serial", serial), ("parallel16", parallel),
                                        ("noop", noop), ("naive", naive), ("audit", audit),
                                        ("audit_verify", audit_verify))}


# --- 6. size ---------------------------------------------------------------------------------


def provider_size(report: Report) -> None:
    print("6. serialized provider", flush=True)
    encoded = serialized_provider()
    raw = base64.b64decode(encoded)
    report.add("state", "serialized provider (__provider), bytes", str(len(encoded)), "< 1024",
               verdict(len(encoded) < 1024, f"{len(encoded) - 1024} bytes over"),
               note=f"{len(raw)} bytes of pickle, base64-encoded; pickled by reference")


# --- 7. the real Pulumi CLI ---------------------------------------------------------------------
# Figures of the real engine (`make cli` builds it; docs/cli.md), side by side with the offline
# runner. CLI_TENANTS in the environment sets a smaller fleet for a quick run.


def cli_environ(folder: Path) -> dict[str, str]:
    """The environment the CLI runs in: its own home, a passphrase, nothing fetched."""
    from qlik_email_resource.fleet import pulumi_cli

    (folder / "pulumi-home").mkdir(parents=True, exist_ok=True)
    return {
        "PULUMI_HOME": str(folder / "pulumi-home"),
        "PULUMI_CONFIG_PASSPHRASE": "bench-only",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        **pulumi_cli.plugin_environ(),
    }


def one_stack_noop(emu: EmulatorProcess, folder: Path, runs: int) -> tuple[list[float],
                                                                           list[float]]:
    """No-op `up` of the repo program's stack, with the policy pack: real CLI, offline runner.

    Both start their provider host and policy pack anew for each run; the program runs
    in this process in both (the CLI gets it through the Automation API, `--client`).
    """
    import shutil

    from pulumi import automation as auto

    from qlik_email_resource.fleet import pulumi_cli
    from qlik_email_resource.offline import OfflineStack, Secret

    tenant = emu.tenant("bench")
    smtp = emu.info["smtp"]
    plain = {"qlik:tenantUrl": tenant["url"], "qlik:caBundle": emu.ca_file,
             "email:serverAddress": "email-smtp.eu-west-2.amazonaws.com",
             "email:serverPort": "465", "email:username": smtp["username"],
             "email:emailAddress": "reports@example.com"}
    secret = {"qlik:apiKey": tenant["api_key"], "email:password": smtp["password"]}
    policy = {TENANT_URL: {"allowLocalhost": True}}
    folder.mkdir(parents=True, exist_ok=True)
    policy_file = folder / "policy.json"
    policy_file.write_text(json.dumps(policy))

    project = folder / "project"
    project.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copyfile(ROOT / name, project / name)
    (folder / "backend").mkdir()
    workspace = auto.LocalWorkspace(
        work_dir=str(project), program=pulumi_cli.program_from_file(project / "__main__.py"),
        env_vars={**cli_environ(folder), "PULUMI_BACKEND_URL": (folder / "backend").as_uri()},
    )
    stack = auto.Stack.create("bench", workspace)
    pulumi_cli.set_stack_config(stack, {**{k: (v, False) for k, v in plain.items()},
                                        **{k: (v, True) for k, v in secret.items()}})
    pack = pulumi_cli.policy_pack_for_cli(ROOT / "policies", folder)

    def cli_up() -> Any:
        return stack.up(policy_packs=[pack], policy_pack_configs=[str(policy_file)])

    def offline_up() -> Any:
        config = {**plain, **{k: Secret(v) for k, v in secret.items()}}
        with OfflineStack(str(ROOT), project="email", stack="bench", config=config,
                          state_file=str(folder / "offline.json"), policy_packs=[ROOT / "policies"],
                          policy_config=policy, quiet=True) as offline:
            return offline.up()

    cli_up()
    offline_up()  # the first ups create; the timed ones change nothing
    cli_times: list[float] = []
    offline_times: list[float] = []
    for _ in range(runs):  # interleaved, so drift in machine load hits both alike
        started = time.perf_counter()
        result = cli_up()
        cli_times.append(time.perf_counter() - started)
        assert result.summary.resource_changes == {"same": 2}, result.summary.resource_changes
        started = time.perf_counter()
        offline = offline_up()
        offline_times.append(time.perf_counter() - started)
        assert {s.op for s in offline.steps} == {"same"}, offline.steps
    return cli_times, offline_times


def cli(report: Report, count: int, runs: int) -> None:
    from qlik_email_resource.fleet import pulumi_cli

    pulumi = pulumi_cli.find_pulumi()
    if pulumi is None:
        print("7. the real Pulumi CLI: skipped, no `pulumi` on PATH (`make cli` builds it)",
              flush=True)
        report.add("cli", "real CLI figures", "skipped", note="no pulumi on PATH")
        return
    count = int(os.environ.get("CLI_TENANTS", count))
    version = subprocess.run([pulumi, "version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    print(f"7. the real Pulumi CLI {version}: one stack, then a fleet of {count} tenants "
          "(Automation API backend)", flush=True)
    with tempfile.TemporaryDirectory(prefix="qlik-bench-cli-") as tmp:
        folder = Path(tmp)
        with emulator(["bench"]) as emu:
            cli_times, offline_times = one_stack_noop(emu, folder / "one", runs)
        ratio = median(cli_times) / median(offline_times)
        report.add("cli", "no-op up of one stack: real CLI / offline runner", f"{ratio:.2f}x",
                   note=f"CLI {median(cli_times):.2f} s, offline runner "
                   f"{median(offline_times):.2f} s (median of {runs}); both start the provider "
                   "host and the policy pack, the CLI also its engine and plugin host")

        names = tenant_names(count)
        with emulator(names, smtp_delay=SMTP_DELAY) as emu:
            tenants_file, env = fleet_files(emu, names, folder)
            env = {**env, **cli_environ(folder)}
            serial = run_fleet(emu, tenants_file, env, folder / "cli-p1", 1, offline=False)
            print(f"  CLI roll-out --parallel 1: {serial.seconds:.1f} s", flush=True)
            emu.reset()
            parallel = run_fleet(emu, tenants_file, env, folder / "cli-p16", 16, offline=False)
            print(f"  CLI roll-out --parallel 16: {parallel.seconds:.1f} s", flush=True)
            noop = run_fleet(emu, tenants_file, env, folder / "cli-p16", 16, offline=False)
            print(f"  CLI no-op reconcile (refresh + up): {noop.seconds:.1f} s", flush=True)
            naive = naive_loop(emu, names)
            print(f"  naive tutorial loop: {naive.seconds:.1f} s", flush=True)
    for label, run in (("--parallel 1", serial), ("--parallel 16", parallel), ("no-op", noop)):
        if run.exit_code != 0 or run.failed_tenants():
            raise SystemExit(f"the CLI fleet run {label} had failures:\n{run.output[-3000:]}")
    speedup = serial.seconds / parallel.seconds
    report.add("cli", f"first roll-out, {count} tenants: --parallel 1 / --parallel 16",
               f"{speedup:.2f}x", ">= 3x", verdict(speedup >= 3, f"{3 - speedup:.2f}x short"),
               note=f"{serial.seconds:.1f} s vs {parallel.seconds:.1f} s "
               f"({serial.seconds / count:.2f} s and {parallel.seconds / count:.2f} s a tenant); "
               "each tenant is its own `pulumi` process, provider host and policy pack")
    faster = naive.seconds / noop.seconds
    report.add("cli", f"no-op reconcile, {count} tenants: naive loop / ours (CLI)",
               f"{faster:.2f}x", ">= 10x", verdict(faster >= 10, f"{10 - faster:.1f}x short"),
               note=f"ours {noop.seconds:.1f} s ({noop.seconds / count:.2f} s a tenant, "
               f"--parallel 16), naive {naive.seconds:.1f} s ({naive.seconds / count:.2f} s "
               f"a tenant); ours wrote {noop.writes} times in {len(noop.requests)} calls")
    report.raw["cli"] = {"one_stack": {"cli": cli_times, "offline": offline_times},
                         **{k: {"seconds": v.seconds, "writes": v.writes,
                                "calls": len(v.requests), "throttled": v.throttled}
                            for k, v in (("serial", serial), ("parallel16", parallel),
                                         ("noop", noop), ("naive", naive))}}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 tenants, fewer repetitions")
    parser.add_argument("--tenants", type=int, help="fleet size (default 200, --quick 30)")
    parser.add_argument("--json", metavar="FILE", help="also write the raw figures here")
    parser.add_argument("--only-cli", action="store_true",
                        help="only the real-CLI figures (section 7)")
    args = parser.parse_args(argv)
    count = args.tenants or (30 if args.quick else 200)
    runs = 3 if args.quick else 7
    report = Report()
    started = time.perf_counter()
    if not args.only_cli:
        calls_per_operation(report)
        cold_start(report, runs)
        import_cost(report, runs)
        provider_size(report)
        fleet(report, count)
    cli(report, count, runs)
    elapsed = time.perf_counter() - started
    print(f"\nqlik-email-resource benchmarks ({count} tenants, {elapsed:.0f} s, "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]})\n")
    print(report.table())
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": [r.__dict__ for r in report.rows],
                                               "raw": report.raw}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
