"""The feature stage on DuckDB and on Spark (local mode), side by side, on the same hospital (issue 15).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_spark_features.py --scale 1.0              # ~1.2M rows
    PYTHONPATH=. .venv/bin/python benchmarks/bench_spark_features.py --scale 8.5 --master 'local[2]'

Generates a community hospital (``sample_logs.generate_bundle``, seed 1, 35 days, the last 7 scored) into
``bench-data/spark-<scale>/bundle`` and its canonical Parquet (``phi-detector ingest``) once, then times
in this process: DuckDB's feature stage (``prepare``'s ``features`` lap: the stages and the lookup
scores), the Spark session's start, and Spark's feature stage from the canonical Parquet to the feature
Parquet (``features_on_spark``, session reused); then loads Spark's features (``prepare(features_dir=)``)
and checks that the case queue equals DuckDB's. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from detector.detect.cases import build_cases
from detector.detect.pipeline import Prepared, prepare
from detector.detect.spark_stage import features_on_spark
from detector.ingest.flow import ingest
from features.engine import spark_session
from sample_logs import generate_bundle

SINCE = "2026-03-23"  # 2026-02-23 + 35 days - 7 scored days


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--partitions", default="4", help="spark.sql.shuffle.partitions")
    parser.add_argument("--data", type=Path, default=Path("bench-data"))
    args = parser.parse_args()
    root = args.data / f"spark-{args.scale}"
    bundle, canonical = root / "bundle", root / "canonical"
    if not (bundle / "ground_truth.json").is_file():
        generate_bundle(bundle, seed=1, days=35, scale=args.scale)
    if not (canonical / "summary.json").is_file():
        ingest(bundle, canonical)
    rows = json.loads((canonical / "summary.json").read_text())["tables"]["access_log"]["accepted"]

    duck = prepare(bundle, since=SINCE)
    queue = _queue(duck)
    started = time.perf_counter()
    conf = {"spark.sql.shuffle.partitions": args.partitions}
    spark_session(args.master, config=conf)
    session_s = time.perf_counter() - started
    started = time.perf_counter()
    manifest = features_on_spark(canonical, root / "features", since=SINCE, master=args.master, config=conf)
    spark_s = time.perf_counter() - started
    from_spark = prepare(bundle, since=SINCE, features_dir=root / "features")
    result = {
        "rows": rows,
        "lookups": manifest["n_lookups"],
        "duckdb_features_s": duck.clock.timings["features"],
        "spark_session_start_s": round(session_s, 1),
        "spark_features_s": round(spark_s, 1),
        "spark_master": args.master,
        "shuffle_partitions": args.partitions,
        "cores": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 1),
        "cases": len(queue),
        "same_case_queue": _queue(from_spark) == queue,
    }
    print(json.dumps(result))


def _queue(p: Prepared) -> list[dict[str, object]]:
    w = p.window
    return [c.to_json() for c in build_cases(p.con, since=w.since.isoformat(), until=w.until.isoformat())]


if __name__ == "__main__":
    main()
