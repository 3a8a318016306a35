"""The HTML review report (issue 6, item 4): one self-contained file per run, every value escaped, charts
from the run's own tables, and a real headless Chromium that opens it without a single network request.

The browser tests need Debian's chromium (scripts/ci-system-deps.sh installs it); without it they skip,
unless PHI_REQUIRE_CHROMIUM=1 (CI) makes that a failure. Every browser launch goes through a recording
proxy on loopback; a control page with a remote image proves the proxy sees what the browser fetches.
"""

from __future__ import annotations

import copy
import json
import os
import socketserver
import subprocess
import threading
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import duckdb
import pytest

from detector.detect.pipeline import run
from detector.report.data import report_data
from detector.report.html import CSP, render_report, write_report
from sample_logs import generate_bundle

CHROMIUM = Path("/usr/bin/chromium")
NOWHERE = "http://0.0.0.0:9/"
HOSTILE = '<script>alert(1)</script> "quoted" & more'


# --- the report as markup --------------------------------------------------------------------------------


def _case(n: int, user: str, **overrides: Any) -> dict[str, Any]:
    lookup = {
        "patient_id": f"P{n:06d}",
        "day": "2026-03-10",
        "score": 12.5,
        "explanation": None,
        "events": 3,
        "actions": ["print", "view"],
        "resource_types": ["demographics", "note"],
        "first_access": "2026-03-10T22:10:00-04:00",
        "last_access": "2026-03-10T22:15:00-04:00",
    }
    case = {
        "case_id": f"CASE-{n:016x}",
        "user_id": user,
        "score": 20.0 - n,
        "severity": "high",
        "scenarios": ["self"],
        "reasons": ["opened 1 chart(s) with no care relationship"],
        "lookups": [lookup],
        "patient_ids": [lookup["patient_id"]],
        "first_access": lookup["first_access"],
        "last_access": lookup["last_access"],
    }
    return case | overrides


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    """A nightly-shaped connection: tonight's ``user_days``, earlier nights in ``hist_user_days`` and
    tonight's ``access_log``, in New York time."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'America/New_York'")
    columns = "user_id VARCHAR, day DATE, peer_group VARCHAR, "
    columns += "lookups BIGINT, unexplained BIGINT, peer_median DOUBLE"
    con.execute(f"CREATE TABLE user_days ({columns})")
    con.execute(f"CREATE TABLE hist_user_days ({columns})")
    con.execute("""INSERT INTO user_days VALUES
        ('u1', '2026-03-10', 'nurse', 9, 6, 1.0), ('u2', '2026-03-10', 'nurse', 3, 1, 1.0)""")
    con.execute("""INSERT INTO hist_user_days VALUES
        ('u1', '2026-03-08', 'nurse', 5, 0, 0.5),
        ('u3', '2026-03-09', 'nurse', 4, 2, 2.0),
        ('u1', '2026-03-10', 'nurse', 1, 1, 9.0)""")  # a stale copy of tonight: tonight's row wins
    con.execute("CREATE TABLE access_log (timestamp TIMESTAMPTZ, user_id VARCHAR, patient_id VARCHAR)")
    con.execute("""INSERT INTO access_log VALUES
        ('2026-03-10 02:30:00+00', 'u1', 'P1'),  -- 22:30 on the 9th, local: not tonight
        ('2026-03-10 14:00:00+00', 'u1', 'P1'),  -- 10:00 local
        ('2026-03-11 03:15:00+00', 'u1', 'P2'),  -- 23:15 on the 10th, local
        ('2026-03-10 15:00:00+00', 'u2', 'P3')""")
    yield con
    con.close()


def test_report_data_reads_tonight_the_history_and_local_hours(con: duckdb.DuckDBPyConnection) -> None:
    queue = [_case(1, "u1"), _case(2, "u2")]
    data = report_data(con, queue, since="2026-03-10", until="2026-03-10", baseline_days=3, max_cases=1)
    assert list(data["cases"]) == [queue[0]["case_id"]]  # max_cases
    chart = data["cases"][queue[0]["case_id"]]
    assert data["start"] == "2026-03-08"  # the first day with data, not 03-07
    assert chart["daily"] == [
        {"day": "2026-03-08", "lookups": 5, "unexplained": 0, "peer_median": 0.5},
        {"day": "2026-03-09", "lookups": 0, "unexplained": 0, "peer_median": 2.0},  # peers worked, u1 did not
        {"day": "2026-03-10", "lookups": 9, "unexplained": 6, "peer_median": 1.0},
    ]
    assert chart["hours"] == [1 if h in (10, 23) else 0 for h in range(24)]
    assert [p["patient_id"] for p in chart["patients"]] == queue[0]["patient_ids"]


def test_the_batch_connection_needs_no_history(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("DROP TABLE hist_user_days")
    data = report_data(con, [_case(1, "u1")], since="2026-03-10", until="2026-03-10", baseline_days=3)
    assert data["cases"]["CASE-0000000000000001"]["daily"] == [
        {"day": "2026-03-10", "lookups": 9, "unexplained": 6, "peer_median": 1.0}
    ]


def _hostile_queue() -> list[dict[str, Any]]:
    evil = _case(1, f"u{HOSTILE}", reasons=[HOSTILE, "plain reason"], scenarios=[HOSTILE])
    evil["case_id"] = f'CASE-"><img src=x onerror=alert(1)>{HOSTILE}'
    evil["lookups"][0] |= {"patient_id": HOSTILE, "explanation": HOSTILE, "actions": [HOSTILE]}
    evil["lookups"][0]["resource_types"] = [HOSTILE]
    evil["patient_ids"] = [HOSTILE]
    return [evil, _case(2, "u2"), _case(3, "u3")]


def _hostile_report(con: duckdb.DuckDBPyConnection) -> str:
    queue = _hostile_queue()
    data = report_data(con, queue, since="2026-03-10", until="2026-03-10", baseline_days=3, max_cases=2)
    # The hostile user has no rows in the tables; give it chart data so the chart labels carry its id.
    data["cases"][queue[0]["case_id"]] = copy.deepcopy(data["cases"][queue[1]["case_id"]])
    meta = {"title": f"Night {HOSTILE}", "night": HOSTILE, "timezone": HOSTILE, "generated_at": HOSTILE}
    return render_report(queue, data, meta | {"lookups_scored": 1234, "explained_share": 0.9})


def test_every_value_is_escaped_in_text_attributes_and_svg_titles(con: duckdb.DuckDBPyConnection) -> None:
    page = _hostile_report(con)
    assert "<script" not in page and "<img" not in page and "alert(1)>" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt; &quot;quoted&quot; &amp; more") >= 12
    # in an SVG <title> and an aria-label (the chart label names the case and the user)
    assert "<title>Unexplained lookups per day vs peer median, CASE-&quot;&gt;&lt;img" in page
    assert 'aria-label="Activity by hour of day, CASE-&quot;&gt;&lt;img src=x' in page


def test_every_case_has_a_queue_row_an_anchor_and_charts_while_data_lasts(
    con: duckdb.DuckDBPyConnection,
) -> None:
    dom = _Dom.of(_hostile_report(con))
    assert len(dom.queue_rows) == 3
    assert dom.queue_links == [f"#{s['id']}" for s in dom.sections]
    assert len(set(dom.queue_links)) == 3
    assert [len(s["svgs"]) for s in dom.sections] == [2, 2, 0]  # max_cases=2: the third has none
    for section in dom.sections[:2]:
        for svg in section["svgs"]:
            assert svg["role"] == "img" and svg["aria-label"] and svg["title"]
            assert svg["texts"] >= 8  # axis ticks and titles, legend
        daily, hours = section["svgs"]
        assert daily["rects"] >= 3 + 1 and daily["polylines"] == 1  # 3 days' bars, the scored shading
        assert hours["rects"] >= 24 + 2  # a bar an hour, two after-hours bands
    assert dom.text.count("Charts are drawn for the first 2 cases") == 1
    assert "after hours (before 7, from 19)" in dom.text and "peer median" in dom.text
    assert "Explained by care90.0%" in dom.text.replace("\n", "")


def _scripts(page: str) -> list[str]:
    """Script elements and event-handler attributes of a page (as a browser's parser sees them)."""
    found: list[str] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.extend([tag] if tag == "script" else [])
            found.extend(name for name, _ in attrs if name.startswith("on"))

    Parser().feed(page)
    return found


def test_the_page_references_nothing_outside_itself(con: duckdb.DuckDBPyConnection) -> None:
    page = _hostile_report(con)
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP.replace(chr(39), "&#x27;")}">' in page
    assert "script-src 'none'" in CSP.split("; ")  # the page has no script, so none may run (issue 12)
    assert "unsafe-inline" not in CSP.replace("style-src 'unsafe-inline'", "")
    assert not _scripts(page) and _scripts('<p onclick="x"><script></script>') == ["onclick", "script"]
    for forbidden in ("http://", "https://", "//", "<link", "<script src", "@import", "url("):
        assert forbidden not in page, forbidden
    assert "@media print" in page and "break-inside: avoid" in page


def test_a_nightly_queue_shows_the_night_and_each_cases_status(con: duckdb.DuckDBPyConnection) -> None:
    night = {"night": "2026-03-10", "opened": "2026-03-08"}
    queue = [_case(1, "u1", status="updated", **night), _case(2, "u2", status="new", **night)]
    data = report_data(con, queue, since="2026-03-10", until="2026-03-10")
    dom = _Dom.of(render_report(queue, data, {"night": "2026-03-10", "timezone": "America/New_York"}))
    assert "Night of 2026-03-10" in dom.text
    assert "New1" in dom.text and "Updated1" in dom.text
    assert [row[4] for row in dom.queue_rows] == ["updated", "new"]  # the status column
    assert "Opened2026-03-08" in dom.text


def test_write_report_writes_one_file_and_leaves_the_queue_alone(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    queue = [_case(1, "u1"), _case(2, "u2")]
    before = json.dumps(queue, sort_keys=True)
    write_report(
        tmp_path / "report.html", con, queue, since="2026-03-10", until="2026-03-10", meta={"night": "x"}
    )
    assert json.dumps(queue, sort_keys=True) == before
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    assert "Generated 20" in (tmp_path / "report.html").read_text(encoding="utf-8")


# --- a real run in a real browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's chromium, or a skip (a failure when PHI_REQUIRE_CHROMIUM=1)."""
    if not CHROMIUM.exists():
        if os.environ.get("PHI_REQUIRE_CHROMIUM") == "1":
            pytest.fail(f"chromium is required (PHI_REQUIRE_CHROMIUM=1) but {CHROMIUM} is missing")
        pytest.skip("chromium is not installed (scripts/ci-system-deps.sh installs it)")
    return CHROMIUM


@pytest.fixture(scope="module")
def batch(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small hospital (scale 0.1, 10 days, the last 2 scored) run once; returns the output folder."""
    root = tmp_path_factory.mktemp("report")
    generate_bundle(root / "bundle", seed=7, scale=0.1, days=10, scored_days=2)
    truth = json.loads((root / "bundle" / "ground_truth.json").read_text(encoding="utf-8"))
    run(root / "bundle", root / "out", since=truth["score_start"], until=truth["end"])
    return root / "out"


class _Proxy(socketserver.ThreadingTCPServer):
    """An HTTP proxy on loopback that records each connection's request line and answers 502."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.seen: list[str] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _ProxyHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        assert isinstance(self.server, _Proxy)
        self.connection.settimeout(5)
        try:
            line = self.rfile.readline(4096).decode("latin-1").strip()
        except OSError:
            line = ""
        self.server.seen.append(line or "(connection without a request)")
        self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


@pytest.fixture
def proxy() -> Iterator[_Proxy]:
    server = _Proxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


Browser = Callable[..., str]


@pytest.fixture
def browser(chromium: Path, proxy: _Proxy, tmp_path: Path) -> Browser:
    """``browser(page, *flags)``: headless Chromium on ``page`` with a fresh profile, every request routed
    through ``proxy``; returns stdout (the DOM with ``--dump-dom``)."""
    launches = iter(range(1000))

    def open_page(page: Path, *flags: str) -> str:
        profile = tmp_path / f"profile-{next(launches)}"
        command = [
            str(chromium),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            # The browser's own services ignore --disable-background-networking in this build (network
            # time, on-demand components, the Google account check): they are disabled or pointed at an
            # address Chromium refuses to connect to, so whatever reaches the proxy came from the page.
            "--disable-features=NetworkTimeServiceQuerying",
            f"--component-updater=url-source={NOWHERE}",
            f"--gaia-url={NOWHERE}",
            f"--proxy-server=http://127.0.0.1:{proxy.port}",
            "--proxy-bypass-list=<-loopback>",
            "--virtual-time-budget=5000",
            *flags,
            page.absolute().as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    return open_page


CONTROL = '<!DOCTYPE html><html><head>{}</head><body><p>control</p><img src="http://example.invalid/x.png">'
CSP_META = f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'


def test_the_proxy_sees_a_request_the_page_makes(browser: Browser, proxy: _Proxy, tmp_path: Path) -> None:
    control = tmp_path / "control.html"
    control.write_text(CONTROL.format(""), encoding="utf-8")
    assert "control" in browser(control, "--dump-dom")
    assert any("example.invalid/x.png" in line for line in proxy.seen), proxy.seen


def test_the_reports_content_security_policy_blocks_that_request(
    browser: Browser, proxy: _Proxy, tmp_path: Path
) -> None:
    control = tmp_path / "control.html"
    control.write_text(CONTROL.format(CSP_META), encoding="utf-8")
    assert "control" in browser(control, "--dump-dom")
    assert proxy.seen == []


def test_a_real_run_report_opens_offline_with_every_case_and_its_charts(
    browser: Browser, batch: Path, proxy: _Proxy, tmp_path: Path
) -> None:
    queue = [json.loads(line) for line in (batch / "alerts.jsonl").read_text(encoding="utf-8").splitlines()]
    summary = json.loads((batch / "summary.json").read_text(encoding="utf-8"))
    assert len(queue) >= 5
    page = (batch / "report.html").read_text(encoding="utf-8")
    dom = _Dom.of(browser(batch / "report.html", "--dump-dom"))
    assert proxy.seen == []
    # Without its policy too: the markup itself asks for nothing (the policy is only defence in depth).
    assert page.count(CSP_META.replace("'", "&#x27;")) == 1
    bare = tmp_path / "report-without-csp.html"
    bare.write_text(page.replace(CSP_META.replace("'", "&#x27;"), ""), encoding="utf-8")
    assert _Dom.of(browser(bare, "--dump-dom")).queue_rows == dom.queue_rows
    assert proxy.seen == []
    assert [row[1] for row in dom.queue_rows] == [c["case_id"] for c in queue]
    assert [row[2] for row in dom.queue_rows] == [c["user_id"] for c in queue]
    assert dom.queue_links == [f"#{s['id']}" for s in dom.sections]
    for section, case in zip(dom.sections, queue, strict=True):
        assert len(section["svgs"]) == 2, case["case_id"]
        daily, hours = section["svgs"]
        assert daily["title"].startswith(f"Unexplained lookups per day vs peer median, {case['case_id']}")
        assert hours["title"].startswith(f"Activity by hour of day, {case['case_id']}")
        assert daily["polylines"] >= 1  # the peer median
    window = summary["window"]
    assert f"Scored window {window['since']} to {window['until']}" in dom.text
    assert f"{summary['lookups']['scored_window']:,}" in dom.text


def test_a_hostile_report_runs_no_script_in_the_browser(
    con: duckdb.DuckDBPyConnection, browser: Browser, proxy: _Proxy, tmp_path: Path
) -> None:
    page = tmp_path / "hostile.html"
    page.write_text(_hostile_report(con), encoding="utf-8")
    dom = browser(page, "--dump-dom")
    assert "<script" not in dom and "<img" not in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert proxy.seen == []


def test_a_screenshot_of_the_report_is_a_png(
    browser: Browser, batch: Path, proxy: _Proxy, tmp_path: Path
) -> None:
    shot = tmp_path / "report.png"
    browser(batch / "report.html", "--window-size=1280,2000", f"--screenshot={shot}")
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000
    assert int.from_bytes(data[16:20], "big") == 1280  # IHDR width
    assert proxy.seen == []


# --- reading the DOM back ---------------------------------------------------------------------------------


class _Dom(HTMLParser):
    """The parts of a report the tests check: queue rows (cell texts), their links, and per case section
    its id and SVG charts (role, aria-label, <title>, shape counts)."""

    def __init__(self) -> None:
        super().__init__()
        self.queue_rows: list[list[str]] = []
        self.queue_links: list[str] = []
        self.sections: list[dict[str, Any]] = []
        self.text = ""
        self._in_queue = self._in_body = self._in_title = False
        self._cell: list[str] | None = None
        self._section: dict[str, Any] | None = None
        self._svg: dict[str, Any] | None = None

    @classmethod
    def of(cls, page: str) -> _Dom:
        dom = cls()
        dom.feed(page)
        dom.close()
        return dom

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self._in_queue = a.get("id") == "queue"
        elif self._in_queue and tag == "tbody":
            self._in_body = True
        elif self._in_queue and self._in_body and tag == "tr":
            self.queue_rows.append([])
        elif self._in_queue and self._in_body and tag == "td":
            self._cell = []
        elif self._in_queue and tag == "a" and a.get("href"):
            self.queue_links.append(str(a["href"]))
        elif tag == "section" and "case" in (a.get("class") or "").split():
            self._section = {"id": a.get("id"), "svgs": []}
            self.sections.append(self._section)
        elif tag == "svg" and self._section is not None:
            self._svg = {"role": a.get("role"), "aria-label": a.get("aria-label"), "title": None}
            self._svg |= {"rects": 0, "texts": 0, "polylines": 0}
            self._section["svgs"].append(self._svg)
        elif tag == "title" and self._svg is not None and self._svg["title"] is None:
            self._in_title = True
            self._svg["title"] = ""
        elif self._svg is not None and tag in ("rect", "text", "polyline"):
            self._svg[f"{tag}s"] += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_queue = self._in_body = False
        elif tag == "td" and self._in_queue and self._cell is not None:
            self.queue_rows[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "title":
            self._in_title = False
        elif tag == "svg":
            self._svg = None
        elif tag == "section":
            self._section = None

    def handle_data(self, data: str) -> None:
        self.text += data
        if self._cell is not None:
            self._cell.append(data)
        if self._in_title and self._svg is not None:
            self._svg["title"] += data


def test_a_patient_access_report_opens_offline_with_every_access(
    browser: Browser, batch: Path, proxy: _Proxy, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from detector.cli import cli

    patient = json.loads((batch / "alerts.jsonl").read_text(encoding="utf-8").splitlines()[0])["patient_ids"][
        0
    ]
    page = tmp_path / "access.html"
    bundle = str(batch.parent / "bundle")
    args = ["investigate", "patient", patient, "--bundle", bundle]
    made = CliRunner().invoke(cli, [*args, "--format", "html", "--out", str(page)])
    assert made.exit_code == 0, made.output
    report = json.loads(CliRunner().invoke(cli, [*args, "--format", "json"]).output)
    dom = browser(page, "--dump-dom")
    assert proxy.seen == []
    assert f"Access report: patient {patient}" in dom
    assert dom.count("<tr class=") == len(report["accesses"]) > 0
