"""`qlik-email-fleet audit`: what every tenant really holds, judged by the policy pack.

Read-only, and needs no Pulumi state and no Pulumi CLI: per tenant one GET of the
email configuration (and with ``--verify`` one POST of the tenant's own
verify-connection), then the pack's rules on that configuration. The rules run in
the pack's real analyzer (the same process the offline runner uses), so the audit
judges with the very functions ``pulumi preview`` does, configured from the tenants
file's ``policy_config`` like the engine configures them.

Tenants are read concurrently. Qlik's rate limits are per tenant and per user
(1000 reads and 100 other calls a minute); the audit makes at most two calls per
tenant, and the client honours ``Retry-After`` on a 429 (client.py).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TextIO

from qlik_email_resource.fleet.hints import in_tenants_file_terms
from qlik_email_resource.fleet.packs import PolicySetup
from qlik_email_resource.fleet.program import RESOURCE_NAME, RESOURCE_TYPE
from qlik_email_resource.fleet.report import write_atomic
from qlik_email_resource.fleet.tenants import CredentialError, Tenant, TenantsFile
from qlik_email_resource.redaction import redact

PASS, NOT_APPLICABLE, DISABLED = "pass", "n/a", "disabled"
# The fields the report shows, by the resource's output names (mapping.flatten).
SHOWN_OUTPUTS = (
    "server_address", "server_port", "security_type", "email_address", "sender_name",
    "is_valid", "error_code", "auth_failures", "modification_time",
)
# The GET never returns a password (write-only); passwordExists says whether one is
# stored, and the credentials rule only needs to know that one is there [I].
STORED = "(stored in the tenant)"


@dataclass
class RuleVerdict:
    verdict: str  # pass | advisory | mandatory | remediate | disabled | n/a
    message: str = ""

    @property
    def violated(self) -> bool:
        return self.verdict not in (PASS, NOT_APPLICABLE, DISABLED)


@dataclass
class AuditRow:
    tenant: str
    url: str
    live: dict[str, Any] = field(default_factory=dict)  # flatten() of the GET answer
    configured: bool = False
    verify: dict[str, Any] | None = None  # the tenant's verify-connection answer
    rules: dict[str, RuleVerdict] = field(default_factory=dict)
    error: str = ""
    seconds: float = 0.0
    calls: int = 0

    @property
    def mandatory_violations(self) -> list[str]:
        return [name for name, v in self.rules.items() if v.verdict == "mandatory"]

    @property
    def violations(self) -> list[str]:
        return [name for name, v in self.rules.items() if v.violated]

    @property
    def status(self) -> str:
        if self.error:
            return "error"
        if not self.configured:
            return "not configured"
        if self.mandatory_violations:
            return "non-compliant"
        return "compliant"

    def verify_text(self) -> str:
        if self.verify is None:
            return "-"
        if self.verify.get("success"):
            return "ok"
        return f"failed ({self.verify.get('message') or 'no message'})"

    def as_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "url": self.url,
            "status": self.status,
            "configured": self.configured,
            **{name: self.live.get(name) for name in SHOWN_OUTPUTS},
            "password_exists": self.live.get("password_exists"),
            "service_provider": self.live.get("service_provider"),
            "verify": self.verify,
            "rules": {
                name: {"verdict": v.verdict, "message": v.message or None}
                for name, v in self.rules.items()
            },
            "error": self.error or None,
            "calls": self.calls,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class Audit:
    rows: list[AuditRow]
    rules: list[str]  # every policy of the pack(s), in pack order
    levels: dict[str, str]  # policy -> enforcement level in force
    verified: bool
    seconds: float

    def compliant_by_rule(self) -> dict[str, tuple[int, int]]:
        """policy -> (tenants passing, tenants judged)."""
        result = {}
        for rule in self.rules:
            judged = [r for r in self.rows if rule in r.rules and r.rules[rule].verdict
                      not in (NOT_APPLICABLE, DISABLED)]
            result[rule] = (sum(not r.rules[rule].violated for r in judged), len(judged))
        return result

    def ordered(self) -> list[AuditRow]:
        """Failing tenants first (errors, then mandatory, then advisory), then by name."""
        def rank(row: AuditRow) -> tuple[int, str]:
            if row.error:
                return 0, row.tenant
            if row.mandatory_violations:
                return 1, row.tenant
            if row.violations:
                return 2, row.tenant
            return 3, row.tenant
        return sorted(self.rows, key=rank)


def audit_tenant(
    tenant: Tenant,
    analyzers: Sequence[Any],
    levels: Mapping[str, str],
    *,
    verify: bool,
) -> AuditRow:
    """One tenant, never raising: a failure becomes the row's error."""
    from qlik_email_resource.fleet.live import client_for
    from qlik_email_resource.mapping import flatten, is_configured

    started = time.monotonic()
    row = AuditRow(tenant=tenant.name, url=tenant.url)
    secrets: list[str] = []
    try:
        resolved = tenant.resolve()
        secrets = resolved.secret_values()
        client = client_for(resolved)
        try:
            answer = client.get_config()
            row.calls += 1
            row.live = flatten(answer)
            row.configured = is_configured(answer)
            if verify and row.configured:
                row.verify = _verify_answer(client.verify_connection())
                row.calls += 1
        finally:
            client.close()
        row.rules = _judge(row, analyzers, levels)
    except CredentialError as exc:
        row.error = str(exc)
    except Exception as exc:
        row.error = in_tenants_file_terms(f"{type(exc).__name__}: {exc}", tenant)
    row.error = redact(row.error, secrets)
    if row.verify is not None:
        row.verify = {k: redact(v, secrets) if isinstance(v, str) else v
                      for k, v in row.verify.items()}
    for verdict in row.rules.values():
        verdict.message = redact(verdict.message, secrets)
    row.seconds = time.monotonic() - started
    return row


def _verify_answer(answer: Mapping[str, Any]) -> dict[str, Any]:
    # smtpResult: success, connectionFailed, message, smtpResponseCode; others ignored.
    return {
        "success": bool(answer.get("success")),
        "connection_failed": bool(answer.get("connectionFailed")),
        "message": str(answer.get("message") or "")[:300],
        "smtp_response_code": answer.get("smtpResponseCode"),
    }


def _properties(row: AuditRow) -> dict[str, Any]:
    """The resource's inputs as the tenant holds them, for the pack's rules."""
    props = {k: v for k, v in row.live.items() if v is not None}
    props["tenant_url"] = row.url
    if row.live.get("password_exists"):
        secret = "client_secret" if row.live.get("service_provider") == "Microsoft365" \
            else "email_password"
        props[secret] = STORED
    # A live configuration has no verify_connection input; the rule asks whether the
    # configuration is proven to work, so it gets the tenant's own proof: this run's
    # verify-connection with --verify, else the tenant's isValid.
    props["verify_connection"] = (
        bool(row.verify["success"]) if row.verify is not None else bool(row.live.get("is_valid"))
    )
    return props


def _judge(
    row: AuditRow, analyzers: Sequence[Any], levels: Mapping[str, str]
) -> dict[str, RuleVerdict]:
    verdicts = {
        name: RuleVerdict(DISABLED if level == DISABLED else PASS)
        for name, level in levels.items()
    }
    if not row.configured:
        # Nothing to judge: a tenant without email configuration sends no mail.
        return {name: RuleVerdict(NOT_APPLICABLE) for name in levels}
    props = _properties(row)
    urn = f"urn:pulumi:audit::audit::{RESOURCE_TYPE}::{RESOURCE_NAME}"
    for analyzer in analyzers:
        diagnostics = list(
            analyzer.analyze(type_=RESOURCE_TYPE, urn=urn, name=RESOURCE_NAME, properties=props)
        )
        diagnostics += analyzer.analyze_stack(
            [{"type": RESOURCE_TYPE, "urn": urn, "name": RESOURCE_NAME, "properties": props}]
        )
        for diagnostic in diagnostics:
            level = _level_name(diagnostic.enforcementLevel)
            current = verdicts.get(diagnostic.policyName)
            if current is not None and current.violated:
                continue  # one message per rule is enough for a report
            verdicts[diagnostic.policyName] = RuleVerdict(level, diagnostic.message.strip())
    return verdicts


def _level_name(level: int) -> str:
    from pulumi.runtime.proto import analyzer_pb2

    names: dict[int, str] = {
        analyzer_pb2.ADVISORY: "advisory",
        analyzer_pb2.MANDATORY: "mandatory",
        analyzer_pb2.REMEDIATE: "remediate",
        analyzer_pb2.DISABLED: DISABLED,
    }
    return names.get(int(level), "advisory")


def run_audit(
    tenants: Sequence[Tenant],
    setup: PolicySetup,
    *,
    verify: bool,
    parallel: int,
) -> Audit:
    started = time.monotonic()
    for analyzer in setup.analyzers:
        analyzer.configure(setup.config)  # schema defaults + the file's policy_config
    levels = {
        p.name: str(setup.config.get(p.name, {}).get("enforcementLevel", p.level))
        for p in setup.policies
    }
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        rows = list(pool.map(
            lambda t: audit_tenant(t, setup.analyzers, levels, verify=verify), tenants
        ))
    return Audit(rows=rows, rules=list(levels), levels=levels, verified=verify,
                 seconds=time.monotonic() - started)


def exit_code(audit: Audit) -> int:
    from qlik_email_resource.fleet.cli import EXIT_OK, EXIT_POLICY, EXIT_TENANT_FAILED

    if any(r.error for r in audit.rows):
        return EXIT_TENANT_FAILED
    if any(r.mandatory_violations for r in audit.rows):
        return EXIT_POLICY
    return EXIT_OK


def render_table(audit: Audit) -> str:
    headers = ("TENANT", "STATUS", "SERVER", "PORT", "SECURITY", "SENDER", "VALID",
               "ERROR CODE", "AUTH FAIL", "MODIFIED", "VERIFY", "VIOLATIONS")
    rows = []
    for r in audit.ordered():
        live = r.live
        rows.append((
            r.tenant, r.status, _text(live.get("server_address")), _text(live.get("server_port")),
            _text(live.get("security_type")), _sender(live), _text(live.get("is_valid")),
            _text(live.get("error_code")), _text(live.get("auth_failures")),
            _text(live.get("modification_time")), r.verify_text()[:40],
            ", ".join(f"{n} ({r.rules[n].verdict})" for n in r.violations) or "-",
        ))
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
              for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [line(headers), line(["-" * w for w in widths]), *(line(row) for row in rows)]
    out += ["", "Rules (tenants compliant / judged):"]
    for rule, (passing, judged) in audit.compliant_by_rule().items():
        out.append(f"  {rule} ({audit.levels[rule]}): {passing}/{judged}")
    compliant = sum(r.status == "compliant" for r in audit.rows)
    out += ["", f"audit: {len(audit.rows)} tenants: {compliant} compliant, "
            f"{sum(r.status == 'non-compliant' for r in audit.rows)} non-compliant, "
            f"{sum(r.status == 'not configured' for r in audit.rows)} not configured, "
            f"{sum(bool(r.error) for r in audit.rows)} unreadable, in {audit.seconds:.1f}s"]
    errors = [r for r in audit.ordered() if r.error]
    if errors:
        out += ["", "Errors:", *(f"  {r.tenant}: {r.error}" for r in errors)]
    failing = [r for r in audit.ordered() if r.violations]
    if failing:
        out += ["", "Violations:"]
        for r in failing:
            for name in r.violations:
                message = r.rules[name].message.splitlines()[-1] if r.rules[name].message else ""
                out.append(f"  {r.tenant}: {name} ({r.rules[name].verdict}): {message}")
    return "\n".join(out)


def _text(value: Any) -> str:
    if value is None or value == "":
        return "-"
    return str(value)


def _sender(live: Mapping[str, Any]) -> str:
    address = live.get("email_address")
    name = live.get("sender_name")
    if address and name:
        return f"{name} <{address}>"
    return _text(address)


def as_json(audit: Audit, project: str) -> dict[str, Any]:
    return {
        "operation": "audit",
        "project": project,
        "verified": audit.verified,
        "seconds": round(audit.seconds, 3),
        "exit_code": exit_code(audit),
        "rules": {
            rule: {"level": audit.levels[rule], "compliant": passing, "judged": judged}
            for rule, (passing, judged) in audit.compliant_by_rule().items()
        },
        "summary": {
            status: sum(r.status == status for r in audit.rows)
            for status in ("compliant", "non-compliant", "not configured", "error")
        },
        "tenants": [r.as_json() for r in audit.ordered()],
    }


def run_audit_command(
    args: argparse.Namespace,
    fleet: TenantsFile,
    tenants: Sequence[Tenant],
    setup: PolicySetup,
    *,
    out: TextIO,
    err: TextIO,
) -> int:
    try:
        err.write(
            f"audit: {len(tenants)} tenants of {fleet.path}, {args.parallel} at a time, "
            f"{'GET + verify-connection' if args.verify else 'one GET'} per tenant, "
            f"policy pack {', '.join(setup.packs) or '(none)'}\n"
        )
        audit = run_audit(tenants, setup, verify=args.verify, parallel=args.parallel)
    finally:
        setup.stop()
    out.write(render_table(audit) + "\n")
    out.flush()
    if args.json_file:
        write_atomic(args.json_file, json.dumps(as_json(audit, fleet.project), indent=2,
                                               ensure_ascii=False) + "\n")
    if args.html:
        from qlik_email_resource.fleet.audit_html import render_html

        write_atomic(args.html, render_html(audit, project=fleet.project))
    return exit_code(audit)
