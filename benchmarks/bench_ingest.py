"""Ingestion throughput and peak memory on a generated access log.

    .venv/bin/python benchmarks/bench_ingest.py --rows 10000000

Generates (once, cached in bench-data/) a CSV access log of the requested size, then runs
`phi-detector ingest` on it in a child process and prints rows/s and the child's peak RSS. For reference
it also times DuckDB's read_csv alone over the same file (parse every column, no validation, no output).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).parent))
from synth import write_access_log


def _child_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--data", type=Path, default=Path("bench-data"))
    parser.add_argument("--repeat", type=int, default=2, help="ingest runs; the best is reported")
    args = parser.parse_args()

    bundle = args.data / f"access-{args.rows}"
    csv_path = bundle / "access_log.csv"
    if not csv_path.exists():
        bundle.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        rows = write_access_log(csv_path, args.rows, seed=1)
        print(
            f"generated {rows:,} rows ({csv_path.stat().st_size / 1e6:,.0f} MB) "
            f"in {time.perf_counter() - started:.1f} s"
        )
    size_mb = csv_path.stat().st_size / 1e6

    con = duckdb.connect()
    started = time.perf_counter()
    con.sql(
        f"SELECT count(*), sum(length(COLUMNS(*))) FROM read_csv('{csv_path}', all_varchar=true)"
    ).fetchall()
    baseline = time.perf_counter() - started

    out = args.data / "ingest-out"
    best = float("inf")
    summary: dict[str, object] = {}
    for _ in range(args.repeat):
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "detector",
                "ingest",
                str(bundle),
                "--out",
                str(out),
                "--timezone",
                "America/New_York",
                "--json",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        best = min(best, time.perf_counter() - started)
    summary = json.loads((out / "summary.json").read_text())
    table = summary["tables"]["access_log"]  # type: ignore[index]
    read = table["rows_read"]
    print(
        f"file: {size_mb:,.0f} MB CSV, {read:,} rows (accepted {table['accepted']:,}, "
        f"rejected {table['rejected']:,}, duplicates {table['duplicates']:,})"
    )
    print(f"duckdb read_csv alone: {baseline:.2f} s = {read / baseline / 1e6:.2f} M rows/s")
    print(
        f"phi-detector ingest:   {best:.2f} s = {read / best / 1e6:.2f} M rows/s (best of {args.repeat}, "
        f"whole command incl. start-up and Parquet output)"
    )
    print(f"peak RSS (ingest child): {_child_peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
