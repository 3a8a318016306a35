"""Detection quality on the generator's hospital: recall, precision and average precision within a daily
review budget, for several seeds, next to a naive per-user-day isolation forest on the same data.

    .venv/bin/python benchmarks/eval_detection.py --seeds 1 2 3 --scale 1.0 --days 35 --per-day 5

Bundles are generated into bench-data/eval-<seed>/ (re-used when present).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import duckdb
import numpy as np
from sklearn.ensemble import IsolationForest

from detector.evaluate import evaluate
from detector.ingest import ingest
from detector.pipeline import run
from sample_logs import generate_bundle


def naive_alerts(bundle: Path, since: str, out: Path) -> Path:
    """One case per user-day, scored by an isolation forest over that day's volumes (no context)."""
    con = duckdb.connect()
    tz = json.loads((bundle / "ground_truth.json").read_text())["timezone"]
    con.execute(f"SET TimeZone = '{tz}'")
    canonical = out.parent / "canonical"
    ingest(bundle, canonical)
    frame = con.execute(f"""
        SELECT user_id, CAST(CAST("timestamp" AS TIMESTAMP) AS DATE) AS day, count(*) AS events,
               count(DISTINCT patient_id) AS patients,
               count(*) FILTER (WHERE action = 'print') AS prints,
               count(*) FILTER (WHERE action IN ('export', 'download')) AS exports,
               count(*) FILTER (WHERE hour(CAST("timestamp" AS TIMESTAMP)) NOT BETWEEN 7 AND 18)
                   AS after_hours,
               list(DISTINCT patient_id ORDER BY patient_id) AS patient_ids
        FROM read_parquet('{canonical}/access_log.parquet') GROUP BY ALL ORDER BY user_id, day
    """).df()
    cols = ["events", "patients", "prints", "exports", "after_hours"]
    base = frame["day"] < np.datetime64(since)
    model = IsolationForest(n_estimators=256, random_state=0).fit(frame.loc[base, cols])
    frame["score"] = -model.score_samples(frame[cols])
    window = frame[~base]
    with out.open("w") as handle:
        for i, row in enumerate(window.itertuples()):
            handle.write(
                json.dumps(
                    {
                        "case_id": f"N{i:06d}",
                        "user_id": row.user_id,
                        "patient_ids": list(row.patient_ids),
                        "score": float(row.score),
                    }
                )
                + "\n"
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--days", type=int, default=35)
    parser.add_argument("--scored-days", type=int, default=7)
    parser.add_argument("--per-day", type=int, default=5)
    parser.add_argument("--data", type=Path, default=Path("bench-data"))
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        bundle = args.data / f"eval-{seed}-{args.scale}-{args.days}"
        if not (bundle / "ground_truth.json").exists():
            generate_bundle(bundle, seed=seed, days=args.days, scale=args.scale, scored_days=args.scored_days)
        truth = json.loads((bundle / "ground_truth.json").read_text())
        out = args.data / f"eval-out-{seed}"
        started = time.perf_counter()
        run(bundle, out, since=truth["score_start"], until=truth["end"])
        seconds = time.perf_counter() - started
        ours = evaluate(bundle / "ground_truth.json", out / "alerts.jsonl", per_day=args.per_day)
        naive = evaluate(
            bundle / "ground_truth.json",
            naive_alerts(bundle, truth["score_start"], out / "naive.jsonl"),
            per_day=args.per_day,
        )
        rows.append((seed, ours, naive, seconds))
        missed = {s: v for s, v in ours["scenarios"].items() if v["found"] < v["incidents"]}
        print(
            f"seed {seed}: ours recall {ours['recall']:.2f} precision {ours['precision']:.2f} "
            f"AP {ours['average_precision']:.2f} ({ours['incidents_found']}/{ours['incidents']}, "
            f"run {seconds:.1f} s) | naive recall {naive['recall']:.2f} precision {naive['precision']:.2f} "
            f"AP {naive['average_precision']:.2f} | not all found: {missed}"
        )
    scenarios = sorted({s for _, ours, _, _ in rows for s in ours["scenarios"]})
    found_in = {
        s: sum(1 for _, ours, _, _ in rows if ours["scenarios"].get(s, {}).get("found", 0) > 0)
        for s in scenarios
    }
    print("scenario found in seeds:", found_in)
    print(
        f"mean recall {np.mean([r[1]['recall'] for r in rows]):.3f} "
        f"mean precision {np.mean([r[1]['precision'] for r in rows]):.3f} | naive mean recall "
        f"{np.mean([r[2]['recall'] for r in rows]):.3f} "
        f"precision {np.mean([r[2]['precision'] for r in rows]):.3f}"
    )


if __name__ == "__main__":
    main()
