"""Detection quality on the generator's hospitals: recall, precision and average precision within a daily
review budget, for several archetypes and seeds, next to a naive per-user-day isolation forest on the same
data, with a per-scenario table per archetype and how many hard-negative staff (legitimate work that
looks suspicious) get a case within the budget.

    .venv/bin/python benchmarks/eval_detection.py --seeds 1 2 3 --scale 1.0 --days 35 --per-day 5
    .venv/bin/python benchmarks/eval_detection.py --held-out --seeds 1 2   # only archetypes not tuned on

Rules are tuned on TUNING_ARCHETYPES (community, academic); the others are held out. Bundles are generated
into bench-data/eval-<archetype>-<seed>-<scale>-<days>-<scored days>/ (re-used when present).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
from sklearn.ensemble import IsolationForest

from detector.detect.evaluate import evaluate
from detector.detect.pipeline import run
from detector.ingest.flow import ingest
from sample_logs import ARCHETYPES, HELD_OUT_ARCHETYPES, TUNING_ARCHETYPES, generate_bundle


def naive_alerts(bundle: Path, since: str, out: Path) -> Path:
    """One case per user-day, scored by an isolation forest over that day's volumes (no context)."""
    con = duckdb.connect()
    tz = json.loads((bundle / "ground_truth.json").read_text())["timezone"]
    con.execute("SET TimeZone = ?", [tz])
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


def _table(rows: list[tuple[int, dict[str, Any], dict[str, Any], float]]) -> str:
    """Per scenario, over the seeds: incidents planted and found within the budget (ours, naive)."""
    scenarios = sorted({s for _, ours, _, _ in rows for s in ours["scenarios"]})
    lines = [f"{'scenario':<14}{'incidents':>10}{'found':>7}{'naive':>7}"]
    for s in scenarios:
        n = sum(ours["scenarios"].get(s, {}).get("incidents", 0) for _, ours, _, _ in rows)
        found = sum(ours["scenarios"].get(s, {}).get("found", 0) for _, ours, _, _ in rows)
        naive = sum(nv["scenarios"].get(s, {}).get("found", 0) for _, _, nv, _ in rows)
        lines.append(f"{s:<14}{n:>10}{found:>7}{naive:>7}")
    return "\n".join(f"  {line}" for line in lines)


def _hard(report: dict[str, Any]) -> str:
    if "hard_negatives_in_budget" not in report:
        return "n/a"
    return f"{len(report['hard_negatives_in_budget'])}/{report['hard_negatives']}"


def _evaluate_one(
    args: argparse.Namespace, archetype: str, seed: int
) -> tuple[dict[str, Any], dict[str, Any], float]:
    bundle = args.data / f"eval-{archetype}-{seed}-{args.scale}-{args.days}-{args.scored_days}"
    if not (bundle / "ground_truth.json").exists():
        generate_bundle(
            bundle,
            seed=seed,
            days=args.days,
            scale=args.scale,
            scored_days=args.scored_days,
            archetype=archetype,
        )
    truth = json.loads((bundle / "ground_truth.json").read_text())
    out = args.data / f"eval-out-{archetype}-{seed}"
    started = time.perf_counter()
    run(bundle, out, since=truth["score_start"], until=truth["end"])
    seconds = time.perf_counter() - started
    ours = evaluate(bundle / "ground_truth.json", out / "alerts.jsonl", per_day=args.per_day)
    naive = evaluate(
        bundle / "ground_truth.json",
        naive_alerts(bundle, truth["score_start"], out / "naive.jsonl"),
        per_day=args.per_day,
    )
    return ours, naive, seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--archetype", nargs="+", choices=ARCHETYPES, default=list(ARCHETYPES))
    parser.add_argument(
        "--held-out",
        action="store_true",
        help=f"only the held-out archetypes (not {', '.join(TUNING_ARCHETYPES)}, which rules are tuned on)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--days", type=int, default=35)
    parser.add_argument("--scored-days", type=int, default=7)
    parser.add_argument("--per-day", type=int, default=5)
    parser.add_argument("--data", type=Path, default=Path("bench-data"))
    args = parser.parse_args()
    archetypes = [a for a in args.archetype if not args.held_out or a not in TUNING_ARCHETYPES]
    if not archetypes:
        parser.error("--held-out leaves no archetype: pick one of " + ", ".join(HELD_OUT_ARCHETYPES))
    recall: dict[str, list[float]] = {"tuning": [], "held out": []}
    for archetype in archetypes:
        split = "tuning" if archetype in TUNING_ARCHETYPES else "held out"
        print(f"== {archetype} [{split}]")
        rows = []
        for seed in args.seeds:
            ours, naive, seconds = _evaluate_one(args, archetype, seed)
            rows.append((seed, ours, naive, seconds))
            recall[split].append(ours["recall"])
            print(
                f"seed {seed}: ours recall {ours['recall']:.2f} precision {ours['precision']:.2f} "
                f"AP {ours['average_precision']:.2f} ({ours['incidents_found']}/{ours['incidents']}, "
                f"run {seconds:.1f} s) hard negatives in budget {_hard(ours)} "
                f"{ours.get('hard_negatives_in_budget', [])} | naive recall {naive['recall']:.2f} "
                f"precision {naive['precision']:.2f} AP {naive['average_precision']:.2f} "
                f"hard negatives in budget {_hard(naive)}"
            )
        print(_table(rows))
        print(
            f"  mean recall {np.mean([r[1]['recall'] for r in rows]):.3f} "
            f"mean precision {np.mean([r[1]['precision'] for r in rows]):.3f} | naive mean recall "
            f"{np.mean([r[2]['recall'] for r in rows]):.3f} "
            f"precision {np.mean([r[2]['precision'] for r in rows]):.3f}"
        )
    print(" | ".join(f"{k} mean recall {np.mean(v):.3f}" for k, v in recall.items() if v))


if __name__ == "__main__":
    main()
