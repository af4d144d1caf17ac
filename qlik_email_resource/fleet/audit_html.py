"""The audit as one self-contained HTML page: opens from disk, loads nothing.

A summary (tenants compliant, and per rule), then one table, failing tenants
first, sortable by any column (a click on its header, or ``#sort=<column>`` in
the address). Styles and the sort script are inline; every value from a tenant
is escaped, since a tenant's sender name is text anyone with console access wrote.
"""

from __future__ import annotations

import html
from typing import Any

from qlik_email_resource.fleet.audit import Audit, AuditRow

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d2433; }
h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
.meta { color: #5b6477; margin-bottom: 1rem; }
.cards { display: flex; gap: .75rem; flex-wrap: wrap; margin: 1rem 0; }
.card { border: 1px solid #d5dae3; border-radius: 6px; padding: .5rem .9rem; min-width: 8rem; }
.card b { display: block; font-size: 1.5rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1.5rem; }
th, td { border-bottom: 1px solid #e3e7ee; padding: .3rem .5rem; text-align: left;
         vertical-align: top; }
th { background: #f3f5f9; cursor: pointer; user-select: none; white-space: nowrap; }
th.sorted-asc::after { content: " \\25B2"; } th.sorted-desc::after { content: " \\25BC"; }
tr.error td:first-child, tr.non-compliant td:first-child { border-left: 4px solid #c62828; }
tr.advisory td:first-child { border-left: 4px solid #f9a825; }
tr.compliant td:first-child { border-left: 4px solid #2e7d32; }
.v-pass { color: #2e7d32; } .v-mandatory { color: #c62828; font-weight: 600; }
.v-advisory, .v-remediate { color: #a66b00; } .v-n\\/a, .v-disabled { color: #8a93a6; }
.bar { background: #e3e7ee; border-radius: 3px; height: .6rem; width: 10rem; }
.bar span { display: block; background: #2e7d32; height: 100%; border-radius: 3px; }
td.msg { color: #5b6477; font-size: 12px; min-width: 32rem; max-width: 48rem; }
"""

# Sorts the tenants table by a header click or by #sort=<column>[-desc] in the URL.
SCRIPT = """
(function () {
  var table = document.getElementById("tenants");
  var heads = table.tHead.rows[0].cells;
  function key(cell) {
    var v = cell.getAttribute("data-sort");
    if (v === null) v = cell.textContent.trim();
    var n = Number(v);
    return v !== "" && !isNaN(n) ? n : v.toLowerCase();
  }
  function sortBy(index, desc) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[index]), y = key(b.cells[index]);
      var c = x < y ? -1 : x > y ? 1 : 0;
      return desc ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    for (var i = 0; i < heads.length; i++) heads[i].className = "";
    heads[index].className = desc ? "sorted-desc" : "sorted-asc";
    table.setAttribute("data-sorted-by", heads[index].getAttribute("data-col") +
                       (desc ? "-desc" : ""));
  }
  for (var i = 0; i < heads.length; i++) {
    (function (index) {
      heads[index].addEventListener("click", function () {
        sortBy(index, heads[index].className === "sorted-asc");
      });
    })(i);
  }
  var m = /sort=([\\w-]+?)(-desc)?$/.exec(window.location.hash);
  if (m) {
    for (var j = 0; j < heads.length; j++) {
      if (heads[j].getAttribute("data-col") === m[1]) sortBy(j, !!m[2]);
    }
  }
})();
"""


def _e(value: Any) -> str:
    return html.escape("-" if value is None or value == "" else str(value), quote=True)


def _row_class(row: AuditRow) -> str:
    if row.error:
        return "error"
    if row.mandatory_violations:
        return "non-compliant"
    if row.violations:
        return "advisory"
    return "compliant" if row.configured else "not-configured"


def _rank(row: AuditRow) -> int:
    return {"error": 0, "non-compliant": 1, "advisory": 2}.get(_row_class(row), 3)


def render_html(audit: Audit, *, project: str) -> str:
    rows = audit.ordered()
    compliant = sum(r.status == "compliant" for r in rows)
    cards = [
        ("tenants", len(rows)),
        ("compliant", compliant),
        ("non-compliant", sum(r.status == "non-compliant" for r in rows)),
        ("not configured", sum(r.status == "not configured" for r in rows)),
        ("unreadable", sum(bool(r.error) for r in rows)),
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # No network, ever: the page must open from a file on a locked-down machine.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">",
        f"<title>Email configuration audit: {_e(project)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Email configuration audit: {_e(project)}</h1>",
        f'<div class="meta">{len(rows)} tenants read in {audit.seconds:.1f} s; '
        f"{'SMTP connection verified by each tenant' if audit.verified else 'no SMTP check'}"
        "; rules of the policy pack run on what each tenant holds.</div>",
        '<h2>Summary</h2><div class="cards" id="summary">',
        *(f'<div class="card" data-card="{_e(label)}"><b>{n}</b>{_e(label)}</div>'
          for label, n in cards),
        "</div>",
        '<table id="rules"><thead><tr><th>rule</th><th>level</th><th>compliant</th>'
        "<th></th></tr></thead><tbody>",
    ]
    for rule, (passing, judged) in audit.compliant_by_rule().items():
        share = 100 * passing / judged if judged else 100
        parts.append(
            f'<tr data-rule="{_e(rule)}"><td>{_e(rule)}</td><td>{_e(audit.levels[rule])}</td>'
            f"<td>{passing} of {judged}</td>"
            f'<td><div class="bar"><span style="width:{share:.0f}%"></span></div></td></tr>'
        )
    parts.append("</tbody></table>")
    columns = [
        ("rank", "order"), ("tenant", "tenant"), ("status", "status"),
        ("server", "server"), ("port", "port"), ("security", "security"),
        ("sender", "sender"), ("valid", "isValid"), ("error-code", "errorCode"),
        ("auth-failures", "authFailures"), ("modified", "last modified"),
        ("verify", "verify"), *((f"rule-{r}", r) for r in audit.rules), ("details", "details"),
    ]
    parts.append('<h2>Tenants</h2><table id="tenants"><thead><tr>')
    parts += [f'<th data-col="{_e(col)}">{_e(label)}</th>' for col, label in columns]
    parts.append("</tr></thead><tbody>")
    for index, row in enumerate(rows):
        parts.append(_tenant_row(row, index, audit.rules))
    parts += ["</tbody></table>", f"<script>{SCRIPT}</script>", "</body></html>"]
    return "\n".join(parts) + "\n"


def _tenant_row(row: AuditRow, index: int, rules: list[str]) -> str:
    live = row.live
    sender = live.get("email_address")
    if sender and live.get("sender_name"):
        sender = f"{live['sender_name']} <{sender}>"
    cells = [
        f'<td data-sort="{_rank(row)}{index:05d}">{index + 1}</td>',
        f"<td>{_e(row.tenant)}</td>",
        f"<td>{_e(row.status)}</td>",
        f"<td>{_e(live.get('server_address'))}</td>",
        f"<td>{_e(live.get('server_port'))}</td>",
        f"<td>{_e(live.get('security_type'))}</td>",
        f"<td>{_e(sender)}</td>",
        f"<td>{_e(live.get('is_valid'))}</td>",
        f"<td>{_e(live.get('error_code'))}</td>",
        f"<td>{_e(live.get('auth_failures'))}</td>",
        f"<td>{_e(live.get('modification_time'))}</td>",
        f"<td>{_e(row.verify_text())}</td>",
    ]
    for rule in rules:
        verdict = row.rules.get(rule)
        word = verdict.verdict if verdict else "-"
        cells.append(f'<td class="v-{_e(word)}">{_e(word)}</td>')
    details = [row.error] if row.error else [
        f"{name}: {row.rules[name].message.splitlines()[-1]}"
        for name in row.violations if row.rules[name].message
    ]
    cells.append(f'<td class="msg">{"<br>".join(_e(d) for d in details) or "-"}</td>')
    return (f'<tr class="{_row_class(row)}" data-tenant="{_e(row.tenant)}">'
            + "".join(cells) + "</tr>")
