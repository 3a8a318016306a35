"""The nightly job at hospital volume: per-night wall time, stage timings and peak memory over a month.

    .venv/bin/python benchmarks/bench_nightly.py                  # 25k users, 3M patients, 10M rows a day
    .venv/bin/python benchmarks/bench_nightly.py --naive          # ... then the same day in plain pandas
    .venv/bin/python benchmarks/bench_nightly.py --rows 200000 --days 3 --users 2000 --patients 200000

Generates a hospital (benchmarks/hospital_day.py: users, patients, encounters, and one access log per
local day, each day a pure function of the seed and the date) into ``--data``/bundle, creates a workspace
(``phi-detector init``) and runs ``--days`` nights of history then the measured night, in order, one
``phi-detector nightly`` child process per night, so each night's wall time and the peak RSS of its
process are its own. It prints per night: wall seconds, the stage timings from the night's summary.json,
rows/s, lookups, explained share and peak RSS; then night 2 against the measured night (flat cost: the
history grows, the cost must not: target <= 1.3x) and the measured night against its targets (<= 60 s,
<= 4 GB at 10M rows a day).

A day's CSV (about 1 GB at 10M rows) is generated just before its night; the history days' CSVs are
deleted after their night unless ``--keep-csv`` (they are regenerated identically when needed). The
context files and the measured day are kept. ``--keep`` reuses the workspace: nights already done keep
their recorded measurements and only the measured night is run again.

``--naive`` then runs benchmarks/naive_pandas.py on the measured day, in child processes one after the
other: with ``--history-days`` = the workspace's baseline (min(baseline_days, nights of history
available)), so that it computes the same features as our night by rebuilding the baseline from the raw
logs of those days, and without history (the day-local subset of the features). The history days' CSVs
deleted after their nights are regenerated first (not timed; about 1 GB a day at 10M rows, so 28 GB of
disk for a full baseline) and deleted again afterwards unless ``--keep-csv``. It prints the naive
lookups, explained share, flags raised and user-day features against the measured night's summary and
stored summaries, then naive-with-history / ours (the like-for-like ratio, target >= 3x) and the
day-local-subset-only ratio. ``--naive-only`` does only that, against the recorded measured night.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
import hospital_day

HERE = Path(__file__).resolve().parent
TARGET_FLAT = 1.3
TARGET_SECONDS = 60.0
TARGET_RSS_MB = 4096.0
TARGET_NAIVE = 3.0
TARGET_ROWS = 10_000_000
STAGES = ("ingest", "context", "features", "model", "cases", "write")


def run_child(cmd: list[str]) -> tuple[float, float, int, str, str]:
    """Run ``cmd``; returns wall seconds, the child's own peak RSS (MB), exit code, stdout and stderr."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        # Reap the child ourselves: wait4 gives its own rusage (RUSAGE_CHILDREN would be the maximum
        # over every child so far).
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return wall, usage.ru_maxrss / 1024, code, out.read().decode(), err.read().decode()


def fail(what: str, code: int, stderr: str) -> None:
    print(f"\n{what} failed (exit {code}):\n{stderr[-3000:]}", file=sys.stderr)
    sys.exit(1)


# -- data -----------------------------------------------------------------------------------------------


class Data:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root: Path = args.data or Path("bench-data") / f"nightly-{args.rows}"
        self.bundle = self.root / "bundle"
        self.workspace = self.root / "workspace"
        self.results_path = self.root / "results.json"
        self.first = dt.date.fromisoformat(args.start)
        self.dates = [self.first + dt.timedelta(days=k) for k in range(args.days + 1)]
        self.measured = self.dates[-1]
        self.params = {
            "seed": args.seed,
            "users": args.users,
            "patients": args.patients,
            "rows": args.rows,
            "start": args.start,
            "days": args.days,
            "generator": 2,
        }
        if args.files_per_day > 1:  # kept out of the key otherwise, so earlier single-file data stays valid
            self.params["files_per_day"] = args.files_per_day
        self._world: hospital_day.World | None = None

    @property
    def world(self) -> hospital_day.World:
        if self._world is None:
            self._world = hospital_day.build_world(self.args.seed, self.args.users, self.args.patients)
        return self._world

    def day_csv(self, day: dt.date) -> Path:
        """The day's CSV, or its folder of CSV parts with --files-per-day."""
        name = day.isoformat() if self.args.files_per_day > 1 else f"{day.isoformat()}.csv"
        return self.bundle / "access_log" / name

    def drop_day(self, day: dt.date) -> None:
        path = self.day_csv(day)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)

    def ensure_context(self) -> bool:
        """Generate the context files when missing or made with other parameters; True when (re)made."""
        marker = self.root / "params.json"
        if marker.is_file() and json.loads(marker.read_text()) == self.params:
            return False
        for stale in (self.bundle, self.workspace, self.results_path, marker):
            if stale.is_dir():
                shutil.rmtree(stale)
            elif stale.exists():
                stale.unlink()
        started = time.perf_counter()
        counts = hospital_day.write_context(self.world, self.bundle, self.first, self.measured)
        print(
            f"generated context: {counts['users']:,} users, {counts['patients']:,} patients, "
            f"{counts['encounters']:,} encounters in {time.perf_counter() - started:.1f} s"
        )
        marker.write_text(json.dumps(self.params, indent=1))
        return True

    def ensure_day(self, day: dt.date) -> float:
        """Generate the day's CSV when missing; returns the seconds it took (0 when cached)."""
        path = self.day_csv(day)
        if path.exists():
            return 0.0
        started = time.perf_counter()
        hospital_day.write_day(self.world, day, self.args.rows, path, parts=self.args.files_per_day)
        return time.perf_counter() - started

    def results(self) -> dict[str, Any]:
        if self.results_path.is_file():
            stored: dict[str, Any] = json.loads(self.results_path.read_text())
            if stored.get("params") == self.params:
                return stored
        return {"params": self.params, "nights": {}}

    def save(self, results: dict[str, Any]) -> None:
        tmp = self.results_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1))
        tmp.replace(self.results_path)


# -- the product's nights -------------------------------------------------------------------------------


def init_workspace(data: Data, keep: bool, memory_limit: str) -> None:
    pattern = "access_log/{date}/*.csv" if data.args.files_per_day > 1 else "access_log/{date}.csv"
    config = data.workspace / "workspace.toml"
    if not (keep and config.is_file()):
        if data.workspace.exists():
            shutil.rmtree(data.workspace)
        cmd = [sys.executable, "-m", "detector", "init", "--workspace", str(data.workspace)]
        cmd += ["--bundle", str(data.bundle), "--access-log", pattern]
        _, _, code, _, err = run_child(cmd)
        if code:
            fail("phi-detector init", code, err)
    text = config.read_text(encoding="utf-8")
    config.write_text(
        re.sub(r'(?m)^memory_limit = ".*"$', f'memory_limit = "{memory_limit}"', text), encoding="utf-8"
    )


def run_night(data: Data, day: dt.date) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "detector", "nightly", "--workspace", str(data.workspace)]
    cmd += ["--date", day.isoformat(), "--quiet"]
    wall, rss, code, _, err = run_child(cmd)
    if code:
        fail(f"nightly {day}", code, err)
    summary = json.loads((data.workspace / "runs" / day.isoformat() / "summary.json").read_text())
    lookups = summary.get("lookups", {})
    return {
        "date": day.isoformat(),
        "wall": round(wall, 3),
        "rss_mb": round(rss, 1),
        "seconds": summary.get("seconds"),
        "timings": summary.get("timings", {}),
        "rows": summary["tables"]["access_log"]["rows_read"],
        "lookups": lookups.get("total"),
        "explained_share": lookups.get("explained_share"),
        "history_days": summary.get("history", {}).get("days"),
        "model": summary.get("model", {}).get("action"),
        "cases": summary.get("cases", {}).get("raised"),
        "learning": summary.get("learning"),
    }


def review_night(data: Data, day: dt.date, n: int) -> None:
    """A reviewer closes the night's ``n`` highest cases as false positives (not timed)."""
    from detector.review.log import ReviewLog

    log = ReviewLog(data.workspace)
    alerts = (data.workspace / "runs" / day.isoformat() / "alerts.jsonl").read_text().splitlines()
    for line in alerts[:n]:
        case_id = json.loads(line)["case_id"]
        log.append("verdict", "bench", case_id=case_id, verdict="false-positive", note="benchmark")


HEADER = (
    f"{'night':>5} {'date':>10} {'wall s':>7} "
    + " ".join(f"{s:>8}" for s in STAGES)
    + f" {'rows':>11} {'Mrows/s':>7} {'lookups':>10} {'explained':>9} {'model':>7} {'cases':>5} {'RSS MB':>7}"
)


def row(night: int, r: dict[str, Any], note: str = "") -> str:
    timings = r.get("timings", {})
    share = r.get("explained_share")
    return (
        f"{night:>5} {r['date']:>10} {r['wall']:>7.1f} "
        + " ".join(f"{timings.get(s, float('nan')):>8.2f}" for s in STAGES)
        + f" {r['rows']:>11,} {r['rows'] / r['wall'] / 1e6:>7.2f} {r.get('lookups') or 0:>10,}"
        + f" {share if share is not None else float('nan'):>9.3f} {r.get('model') or '':>7}"
        + f" {r.get('cases') or 0:>5} {r['rss_mb']:>7,.0f}{note}"
    )


def nights(data: Data, args: argparse.Namespace) -> dict[str, Any]:
    remade = data.ensure_context()
    keep = args.keep and not remade
    init_workspace(data, keep, args.memory_limit)
    results = data.results() if keep else {"params": data.params, "nights": {}}
    stored: dict[str, Any] = results["nights"]
    print(
        f"{args.days} nights of history then the measured night {data.measured}; {args.rows:,} rows a day, "
        f"{args.users:,} users, {args.patients:,} patients; memory_limit {args.memory_limit}; "
        f"workspace {data.workspace}"
    )
    print(HEADER)
    for night, day in enumerate(data.dates, start=1):
        done = (data.workspace / "runs" / day.isoformat() / "_SUCCESS").is_file()
        if keep and done and day != data.measured and day.isoformat() in stored:
            print(row(night, stored[day.isoformat()], "  (kept)"))
            continue
        generated = data.ensure_day(day)
        result = run_night(data, day)
        if args.review_fp and day != data.measured:
            review_night(data, day, args.review_fp)
        stored[day.isoformat()] = result
        data.save(results)
        print(row(night, result, f"  (generated in {generated:.1f} s)" if generated else ""), flush=True)
        if day != data.measured and not args.keep_csv:
            data.drop_day(day)
    report_nights(data, stored)
    return results


def report_nights(data: Data, stored: dict[str, Any]) -> None:
    measured = stored[data.measured.isoformat()]
    print()
    learned = measured.get("learning") or {}
    if learned.get("verdicts"):
        print(
            f"learning from {learned['verdicts']} verdicts on the measured night: {learned['seconds']:.2f} s "
            f"(evidence lookups {learned['evidence_lookups_before']:,} -> "
            f"{learned['evidence_lookups_after']:,}; "
            f"{learned['damped_users']} users, {learned['damped_roles']} roles damped)"
        )
    if len(data.dates) >= 3:
        second = stored[data.dates[1].isoformat()]
        ratio = measured["wall"] / second["wall"]
        verdict = "ok" if ratio <= TARGET_FLAT else "OVER"
        print(
            f"flat cost: night {len(data.dates)} {measured['wall']:.1f} s / night 2 {second['wall']:.1f} s = "
            f"{ratio:.2f}x (target <= {TARGET_FLAT}x: {verdict}); in-process seconds "
            f"{measured['seconds']:.1f} / {second['seconds']:.1f} = "
            f"{measured['seconds'] / second['seconds']:.2f}x"
        )
    scale = "" if data.args.rows >= TARGET_ROWS else f" (targets are for {TARGET_ROWS:,} rows a day)"
    print(
        f"measured night {data.measured}: {measured['wall']:.1f} s wall (target <= {TARGET_SECONDS:.0f} s: "
        f"{'ok' if measured['wall'] <= TARGET_SECONDS else 'OVER'}), peak RSS {measured['rss_mb']:,.0f} MB "
        f"(target <= {TARGET_RSS_MB:,.0f} MB: {'ok' if measured['rss_mb'] <= TARGET_RSS_MB else 'OVER'}), "
        f"{measured['rows'] / measured['wall'] / 1e6:.2f} M rows/s{scale}"
    )


# -- the naive pipeline ---------------------------------------------------------------------------------


def baseline_days(data: Data) -> int:
    """The days a night of the workspace learns its baseline from ([nightly] baseline_days)."""
    config = tomllib.loads((data.workspace / "workspace.toml").read_text(encoding="utf-8"))
    return int(config.get("nightly", {}).get("baseline_days", 28))


def naive_history(data: Data) -> list[dt.date]:
    """The days the naive pipeline reads as the measured night's baseline: from the oldest stored history
    day in the workspace's baseline window to the day before (min(baseline_days, nights available))."""
    window = [data.measured - dt.timedelta(days=k) for k in range(baseline_days(data), 0, -1)]
    stored = [
        d for d in window if (data.workspace / "history" / d.isoformat() / "user_days.parquet").is_file()
    ]
    if not stored:
        return []
    return [stored[0] + dt.timedelta(days=k) for k in range((data.measured - stored[0]).days)]


def run_naive(data: Data, args: argparse.Namespace, history_days: int) -> dict[str, Any]:
    cmd = [sys.executable, str(HERE / "naive_pandas.py"), "--bundle", str(data.bundle)]
    cmd += ["--date", data.measured.isoformat(), "--timezone", hospital_day.TIMEZONE]
    cmd += ["--out", str(data.root / "naive-out"), "--engine", args.naive_engine]
    cmd += ["--history-days", str(history_days)]
    wall, rss, code, out, err = run_child(cmd)
    if code:
        fail("naive pandas pipeline", code, err)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return {"wall": round(wall, 3), "rss_mb": round(rss, 1), **result}


def compare_features(data: Data, result: dict[str, Any]) -> list[str]:
    """The naive day's features against the summaries the measured night stored (W/history/D): lookups
    raising each flag per peer group, and the user-days' volumes and comparisons."""
    stored = data.workspace / "history" / data.measured.isoformat()
    if not (stored / "groups.parquet").is_file():
        return ["  (the measured night stored no summaries to compare with)"]
    groups = pd.read_parquet(stored / "groups.parquet")
    ours = {name: int(groups[f"k_{name}"].sum()) for name in result["flags"]}
    differ = {name: (n, ours[name]) for name, n in result["flags"].items() if n != ours[name]}
    total = sum(result["flags"].values())
    lines = [
        f"  flags raised: {total:,} over {len(ours)} flags (ours {sum(ours.values()):,}); "
        + (
            "every flag the same"
            if not differ
            else "differ: " + ", ".join(f"{k} {a:,} (ours {b:,})" for k, (a, b) in differ.items())
        )
    ]
    columns = ["lookups", "unexplained", "new_patients", "own_median", "peer_median", "unexplained_vs_own"]
    naive_days = pd.read_parquet(data.root / "naive-out" / "user_days.parquet")
    if not set(columns) <= set(naive_days.columns):
        return lines
    both = naive_days.merge(pd.read_parquet(stored / "user_days.parquet"), on="user_id", suffixes=("", "_o"))
    diffs = {c: float((both[c] - both[f"{c}_o"]).abs().max()) if len(both) else 0.0 for c in columns}
    lines.append(
        f"  user-days: {len(both):,} matched of {len(naive_days):,} (ours "
        f"{pd.read_parquet(stored / 'user_days.parquet').shape[0]:,}); max |naive - ours|: "
        + ", ".join(f"{c} {v:g}" for c, v in diffs.items())
    )
    return lines


def naive(data: Data, args: argparse.Namespace, results: dict[str, Any]) -> None:
    ours = results["nights"].get(data.measured.isoformat())
    if ours is None:
        print("no recorded measured night: run without --naive-only first", file=sys.stderr)
        sys.exit(1)
    generated = data.ensure_day(data.measured)
    if generated:
        print(f"generated {data.measured} in {generated:.1f} s")
    history = naive_history(data)
    regenerated: list[dt.date] = []
    seconds = 0.0
    try:
        for day in history:
            took = data.ensure_day(day)
            if took:
                regenerated.append(day)
                seconds += took
        if regenerated:
            print(
                f"regenerated {len(regenerated)} history day CSVs for the naive pipeline in {seconds:.1f} s "
                "(not timed)"
            )
        day_only = run_naive(data, args, 0)
        full = run_naive(data, args, len(history))
    finally:
        if not args.keep_csv:
            for day in regenerated:
                data.drop_day(day)
    print()
    engine = f"read_csv engine={args.naive_engine}"
    print(
        f"naive pandas, same features ({engine}, baseline rebuilt from the raw logs of the {len(history)} "
        f"days before): {full['wall']:.1f} s wall ({full['seconds']:.1f} s in process), peak RSS "
        f"{full['rss_mb']:,.0f} MB; {full['history_rows']:,} history rows read"
    )
    print("  stages (s): " + " ".join(f"{k} {v:.1f}" for k, v in full["timings"].items()))
    print(
        f"  lookups {full['lookups']:,} (ours {ours['lookups']:,}), explained share "
        f"{full['explained_share']} (ours {ours['explained_share']})"
    )
    for line in compare_features(data, full):
        print(line)
    print(
        f"naive pandas, day-local subset only ({engine}; no history: roles learned from the day itself, "
        f"no continuing care, own median, new patients or role surprise): {day_only['wall']:.1f} s wall, "
        f"peak RSS {day_only['rss_mb']:,.0f} MB"
    )
    print("  stages (s): " + " ".join(f"{k} {v:.1f}" for k, v in day_only["timings"].items()))
    print(
        f"  lookups {day_only['lookups']:,} (ours {ours['lookups']:,}), explained share "
        f"{day_only['explained_share']} (ours {ours['explained_share']})"
    )
    print()
    ratio = full["wall"] / ours["wall"]
    print(
        f"naive with history / ours (same features): {full['wall']:.1f} s / {ours['wall']:.1f} s = "
        f"{ratio:.2f}x (target >= {TARGET_NAIVE:.0f}x: {'ok' if ratio >= TARGET_NAIVE else 'UNDER'}); "
        f"peak RSS {full['rss_mb']:,.0f} MB / {ours['rss_mb']:,.0f} MB"
    )
    ratio = day_only["wall"] / ours["wall"]
    print(
        f"naive / ours, day-local subset only (not like for like): {day_only['wall']:.1f} s / "
        f"{ours['wall']:.1f} s = {ratio:.2f}x; peak RSS {day_only['rss_mb']:,.0f} MB / "
        f"{ours['rss_mb']:,.0f} MB"
    )
    results["naive"] = full
    results["naive_day_only"] = day_only
    data.save(results)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000, help="access-log rows per day")
    parser.add_argument("--days", type=int, default=29, help="nights of history before the measured night")
    parser.add_argument("--users", type=int, default=25_000)
    parser.add_argument("--patients", type=int, default=3_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", default="2026-04-06", help="the first night (a Monday; no DST change)")
    parser.add_argument(
        "--files-per-day",
        type=int,
        default=1,
        help="deliver each day as this many consecutive CSV files (hourly-style extracts; a day larger "
        "than memory must come in parts)",
    )
    parser.add_argument("--memory-limit", default="3GB", help="the workspace's memory_limit (DuckDB)")
    parser.add_argument(
        "--review-fp",
        type=int,
        default=0,
        help="after each history night, close its N highest cases as false positives (learning cost)",
    )
    parser.add_argument("--data", type=Path, help="default: bench-data/nightly-<rows>")
    parser.add_argument(
        "--keep", action="store_true", help="reuse the workspace: re-run the measured night only"
    )
    parser.add_argument(
        "--keep-csv", action="store_true", help="keep every day's CSV (about 100 bytes a row)"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--naive", action="store_true", help="then the naive pandas pipeline (with and without history)"
    )
    mode.add_argument(
        "--naive-only", action="store_true", help="only the naive pipeline, vs the recorded night"
    )
    parser.add_argument(
        "--naive-engine", default="c", choices=["c", "pyarrow"], help="its pd.read_csv engine"
    )
    args = parser.parse_args()
    if args.days < 1:
        parser.error("--days must be at least 1")

    data = Data(args)
    data.root.mkdir(parents=True, exist_ok=True)
    if args.naive_only:
        if data.ensure_context():
            print("the data was regenerated: run the nights first (without --naive-only)", file=sys.stderr)
            sys.exit(1)
        naive(data, args, data.results())
        return
    results = nights(data, args)
    if args.naive:
        naive(data, args, results)


if __name__ == "__main__":
    main()
