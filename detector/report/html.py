"""The review report: one self-contained HTML file a privacy officer can open offline or print.

The ranked queue as a table, then one section per case: its reasons, the user's unexplained lookups per
day against the peer median, the user's activity by hour of day with after-hours shaded, and the patients
involved. The data comes from ``detector.report.data`` and the charts are inline SVG
(``detector.report.charts``); the page loads nothing (a Content-Security-Policy forbids it), and every
value from the data is HTML-escaped. It holds no identifiers beyond the queue's own.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import duckdb

from detector.common.outputs import write_text_atomic
from detector.report.charts import daily_chart, hours_chart
from detector.report.data import case_patients, report_data
from detector.tables.cases import Key
from features.columns import Col

__all__ = ["render_report", "write_report"]

SHOWN_PATIENTS = 25
"""Lookup rows shown per case before the rest fold away (a bulk case can list hundreds)."""
CSP = (
    "default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'"
)
"""The page has no script: none may run, even one injected past the escaping; it loads nothing."""


def write_report(
    path: Path,
    con: duckdb.DuckDBPyConnection,
    queue: Sequence[dict[str, Any]],
    *,
    since: str,
    until: str,
    meta: dict[str, Any],
    baseline_days: int = 28,
    max_cases: int = 50,
) -> None:
    """Compute the chart data and write ``render_report`` to ``path`` (a temporary file, then a rename).

    ``meta`` as for ``render_report``; ``generated_at`` defaults to now."""
    data = report_data(con, queue, since=since, until=until, baseline_days=baseline_days, max_cases=max_cases)
    stamp = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    text = render_report(queue, data, {"generated_at": stamp} | meta)
    write_text_atomic(path, text)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _anchor(case_id: str) -> str:
    return "case-" + re.sub(r"[^A-Za-z0-9_-]", "_", case_id)


def _when(value: Any) -> str:
    """An ISO timestamp as 'YYYY-MM-DD HH:MM' in the offset it carries (the site's local time)."""
    try:
        return dt.datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return str(value)


def _score(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "<0.1" if 0 < number < 0.05 else f"{number:.1f}"


def _list(values: Iterable[Any] | None) -> str:
    return ", ".join(str(v) for v in values or [])


def render_report(queue: Sequence[dict[str, Any]], data: dict[str, Any], meta: dict[str, Any]) -> str:
    """The report as one HTML5 document.

    ``data`` from ``report_data``: cases without chart data (past its ``max_cases``) get their reasons and
    patients but no charts. ``meta`` (all optional): ``title``; ``night`` (a nightly run's date) or
    ``window`` (``since``, ``until``, ``baseline_start``); ``lookups_scored``; ``explained_share``
    (0..1); ``timezone`` (and ``timezone_source``); ``generated_at``; ``self_check`` (the run's
    explanation self-check)."""
    charts = data.get("cases", {})
    sections = "\n".join(
        _case_section(
            rank,
            case,
            charts.get(str(case[Key.case_id])),
            since=str(data.get("since", "")),
            charted=len(charts),
        )
        for rank, case in enumerate(queue, start=1)
    )
    title = meta.get("title") or "PHI access review"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<main>
{_header(queue, meta, title)}
{_queue_table(queue)}
{_self_check(meta.get("self_check"))}
{sections}
</main>
</body>
</html>
"""


def _header(queue: Sequence[dict[str, Any]], meta: dict[str, Any], title: str) -> str:
    window = meta.get("window") or {}
    if meta.get("night"):
        scope = f"Night of {_e(meta['night'])}"
    elif window:
        scope = f"Scored window {_e(window.get('since'))} to {_e(window.get('until'))}"
        if window.get("baseline_start"):
            scope += f" &middot; baseline from {_e(window['baseline_start'])}"
    else:
        scope = ""
    if meta.get("timezone"):
        scope += f" &middot; times in {_e(meta['timezone'])}"
        if meta.get("timezone_source") == "inferred":
            scope += " (inferred from the log's UTC offsets)"
    severities = [str(c.get(Key.severity)) for c in queue]
    facts = [("Cases", f"{len(queue)}")]
    facts += [(s.capitalize(), str(severities.count(s))) for s in ("high", "medium", "low")]
    statuses = [str(c[Key.status]) for c in queue if c.get(Key.status)]  # a nightly queue: new or updated
    facts += [(s.capitalize(), str(statuses.count(s))) for s in ("new", "updated") if statuses]
    if meta.get("lookups_scored") is not None:
        facts.append(("Lookups scored", f"{int(meta['lookups_scored']):,}"))
    if meta.get("explained_share") is not None:
        facts.append(("Explained by care", f"{float(meta['explained_share']):.1%}"))
    stats = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in facts)
    stamp = str(meta.get("generated_at") or "").replace("T", " ")
    generated = f"<p class=muted>Generated {_e(stamp)}</p>" if stamp else ""
    return f"""<header id="top">
<h1>{_e(title)}</h1>
<p class=scope>{scope}</p>
<dl class=stats>{stats}</dl>
{generated}
</header>"""


def _self_check(check: dict[str, Any] | None) -> str:
    """How often each explanation explains the real lookups and a fake log of random patients: a kind
    that explains random patients often is too broad to trust."""
    if check and check.get("unavailable"):
        return f"""<section id="self-check">
<h2>Explanation self-check</h2>
<p class=muted>Not run: {_e(check["unavailable"])}.</p>
</section>"""
    if not check or not check.get("kinds"):
        return ""

    def pct(value: Any) -> str:
        return "n/a" if value is None else f"{float(value):.1%}"

    rows = "".join(
        f"<tr><td>{_e(kind)}</td><td class=num>{pct(v.get('real'))}</td>"
        f"<td class=num>{pct(v.get('fake'))}</td></tr>"
        for kind, v in check["kinds"].items()
    )
    total = (
        f"<tr><th>all</th><th class=num>{pct(check.get('real_explained'))}</th>"
        f"<th class=num>{pct(check.get('fake_explained'))}</th></tr>"
    )
    rules = check.get("role_rules") or []
    adopted = (
        "Role rules adopted: "
        + ", ".join(f"{_e(r[Col.peer_group])} ({_e(r['relation'])})" for r in rules)
        + "."
        if rules
        else "No role rule passed the fake-log test."
    )
    return f"""<section id="self-check">
<h2>Explanation self-check</h2>
<p class=muted>Each scored lookup is copied with a random patient active that day and explained again.
Real: share of the real lookups each explanation explains. Fake: share of the fake lookups it explains
(its false-explain rate).</p>
<table><thead><tr><th>explanation</th><th>real</th><th>fake</th></tr></thead>
<tbody>{rows}{total}</tbody></table>
<p class=muted>{adopted}</p>
</section>"""


def _badge(severity: Any) -> str:
    level = str(severity) if severity in ("high", "medium", "low") else "other"
    return f'<span class="sev sev-{level}">{_e(severity)}</span>'


def _queue_table(queue: Sequence[dict[str, Any]]) -> str:
    has_status = any(Key.status in c for c in queue)
    rows = []
    for rank, case in enumerate(queue, start=1):
        case_id = str(case[Key.case_id])
        status = f"<td>{_e(case.get(Key.status, ''))}</td>" if has_status else ""
        rows.append(
            f"<tr><td class=num>{rank}</td>"
            f'<td class=nowrap><a href="#{_anchor(case_id)}">{_e(case_id)}</a></td>'
            f"<td>{_e(case.get(Col.user_id))}</td><td>{_badge(case.get(Key.severity))}</td>{status}"
            f"<td class=num>{_e(_score(case.get(Col.score)))}</td>"
            f"<td>{_e(_list(case.get(Key.scenarios)))}</td>"
            f"<td class=num>{len(case.get(Key.patient_ids) or [])}</td>"
            f"<td class=nowrap>{_e(_when(case.get(Col.first_access)))}</td>"
            f"<td class=nowrap>{_e(_when(case.get(Col.last_access)))}</td></tr>"
        )
    head = "<th>Status</th>" if has_status else ""
    body = "\n".join(rows) if rows else "<tr><td colspan=10 class=muted>No cases.</td></tr>"
    return f"""<section class=queue>
<h2>Review queue</h2>
<table id=queue>
<thead><tr><th class=num>#</th><th>Case</th><th>User</th><th>Severity</th>{head}<th class=num>Score</th>
<th>Scenarios</th><th class=num>Patients</th><th>First access</th><th>Last access</th></tr></thead>
<tbody>
{body}
</tbody>
</table>
</section>"""


def _case_section(
    rank: int, case: dict[str, Any], chart: dict[str, Any] | None, *, since: str, charted: int
) -> str:
    case_id, user = str(case[Key.case_id]), str(case.get(Col.user_id))
    facts = [
        ("Score", _score(case.get(Col.score))),
        ("Scenarios", _list(case.get(Key.scenarios)) or "none"),
        ("First access", _when(case.get(Col.first_access))),
        ("Last access", _when(case.get(Col.last_access))),
    ]
    facts += [(k.capitalize(), str(case[k])) for k in (Key.status, Key.opened) if case.get(k)]
    facts_html = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in facts)
    reasons = "".join(f"<li>{_e(r)}</li>" for r in case.get(Key.reasons) or [])
    if chart is not None:
        label = f"{case_id} ({user})"
        charts = f"""<div class=charts>
<figure class=wide>{daily_chart(chart["daily"], since=since, label=label)}</figure>
<figure>{hours_chart(chart["hours"], label=label)}</figure>
</div>"""
    else:
        charts = f"<p class=muted>Charts are drawn for the first {charted} cases of the queue only.</p>"
    return f"""<section class=case id="{_anchor(case_id)}">
<h2><span class=rank>{rank}.</span> {_e(case_id)} <span class=user>user {_e(user)}</span>
{_badge(case.get(Key.severity))}</h2>
<dl class=facts>{facts_html}</dl>
<h3>Why it was raised</h3>
<ul class=reasons>{reasons}</ul>
{charts}
<h3>Patients involved</h3>
{_patients_table(case)}
<p class=back><a href="#top">Back to the queue</a></p>
</section>"""


def _patients_table(case: dict[str, Any]) -> str:
    """The case's lookups; past the first ``SHOWN_PATIENTS`` rows the rest fold under a summary."""
    rows = []
    for p in case_patients(case):
        explanation = p[Col.explanation]
        why = _e(explanation) if explanation else '<span class="flag">unexplained</span>'
        rows.append(
            f"<tr><td>{_e(p[Col.patient_id])}</td><td class=nowrap>{_e(p[Col.day])}</td>"
            f"<td class=num>{_e(_score(p[Col.score]))}</td><td>{why}</td>"
            f"<td class=num>{_e(p[Col.events])}</td>"
            f"<td>{_e(_list(p['actions']))}</td><td>{_e(_list(p['resource_types']))}</td></tr>"
        )
    head = """<thead><tr><th>Patient</th><th>Day</th><th class=num>Score</th><th>Explanation</th>
<th class=num>Events</th><th>Actions</th><th>Resource types</th></tr></thead>"""
    shown, rest = rows[:SHOWN_PATIENTS], rows[SHOWN_PATIENTS:]
    table = f"<table class=patients>\n{head}\n<tbody>\n{''.join(shown)}\n</tbody>\n</table>"
    if rest:
        table += (
            f"<details><summary>{len(rest)} more lookups</summary>\n"
            f"<table class=patients>\n{head}\n<tbody>\n{''.join(rest)}\n</tbody>\n</table></details>"
        )
    return table


_CSS = """
:root { color-scheme: light; --ink: #1d2330; --muted: #5d6675; --line: #d9dee7; --bg: #f6f7f9;
  --accent: #2f5d8a; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0 0 10px; }
h3 { font-size: 13px; margin: 18px 0 6px; text-transform: uppercase; letter-spacing: .04em;
  color: var(--muted); }
a { color: var(--accent); }
.muted, .scope { color: var(--muted); margin: 0; }
header { padding-bottom: 16px; margin-bottom: 20px; border-bottom: 1px solid var(--line); }
dl { margin: 0; }
dl.stats { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0 10px; }
dl.stats div { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px;
  min-width: 110px; }
dl.stats dt { font-size: 12px; color: var(--muted); }
dl.stats dd { margin: 0; font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; }
dl.facts { display: flex; flex-wrap: wrap; gap: 4px 24px; }
dl.facts dt { font-size: 12px; color: var(--muted); }
dl.facts dd { margin: 0; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 18px 20px;
  margin: 0 0 20px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; border-bottom-width: 2px; }
tbody tr:nth-child(even) { background: #fafbfc; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.nowrap { white-space: nowrap; }
.sev { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600;
  vertical-align: middle; background: #eceff3; color: #41495a; }
.sev-high { background: #fde3e1; color: #a4221a; }
.sev-medium { background: #fdf0d2; color: #8a4b08; }
.rank { color: var(--muted); font-weight: 400; }
.user { color: var(--muted); font-weight: 400; font-size: 14px; margin: 0 6px; }
ul.reasons { margin: 0; padding-left: 20px; }
ul.reasons li { margin: 2px 0; }
.flag { color: #a4221a; }
details { margin-top: 6px; }
summary { cursor: pointer; color: var(--accent); font-size: 13px; padding: 4px 0; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; margin-top: 16px; }
figure { margin: 0; flex: 1 1 300px; min-width: 0; }
figure.wide { flex: 2 1 520px; }
svg { width: 100%; height: auto; display: block; font-family: inherit; }
.back { margin: 12px 0 0; font-size: 12px; }
@media print {
  body { background: #fff; font-size: 11px; }
  main { max-width: none; padding: 0; }
  section { border: none; padding: 0; margin: 0 0 18px; break-inside: avoid; page-break-inside: avoid; }
  section.queue { break-inside: auto; page-break-inside: auto; }
  .back { display: none; }
  a { color: inherit; text-decoration: none; }
  table { font-size: 10px; }
  th, td { padding: 3px 5px; }
  tr { break-inside: avoid; }
  thead { display: table-header-group; }
  dl.stats { gap: 6px; }
  dl.stats div { border-color: #bbb; padding: 3px 8px; min-width: 0; }
  dl.stats dd { font-size: 14px; }
  .charts { flex-wrap: nowrap; gap: 8px; break-inside: avoid; }
  figure { flex: 36 1 0; }
  figure.wide { flex: 64 1 0; }
}
@page { margin: 12mm; }
"""
