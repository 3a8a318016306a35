"""Isolation-forest scoring throughput: AccessIsolationForest against scikit-learn's own scoring.

    .venv/bin/python benchmarks/bench_scoring.py --rows 1000000 --threads 2

Fits a 256-tree forest on a 100k-row sample of random features, then times over the full rows:

- scikit-learn ``IsolationForest.score_samples`` as shipped (one call; it ignores n_jobs);
- the reference: the same call split by hand into one contiguous block per thread on a thread pool;
- ``AccessIsolationForest.anomaly_score`` with ``n_jobs=threads`` (chunked, threaded).

All three use the same trees (the wrapper's single forest), and the scores are checked to be identical.
Each timing is the best of ``--repeat`` runs. Acceptance: ours / reference <= ~1.2.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from models import AccessIsolationForest


def best_time(run: Callable[[], NDArray[np.float64]], repeat: int) -> tuple[float, NDArray[np.float64]]:
    best = float("inf")
    result = np.empty(0)
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--trees", type=int, default=256)
    parser.add_argument("--fit-rows", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per variant; the best is reported")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.rows, args.features))
    sample = X[rng.choice(args.rows, size=min(args.fit_rows, args.rows), replace=False)]

    started = time.perf_counter()
    model = AccessIsolationForest(n_estimators=args.trees, random_state=0, n_jobs=args.threads).fit(sample)
    print(
        f"fit {args.trees} trees on {len(sample):,} rows x {args.features}: "
        f"{time.perf_counter() - started:.2f} s"
    )
    forest = model.forests_[0]

    def threaded_by_hand() -> NDArray[np.float64]:
        blocks = np.array_split(X, args.threads)
        with ThreadPoolExecutor(max_workers=args.threads) as pool:
            return np.concatenate(list(pool.map(forest.score_samples, blocks)))

    single, sk_scores = best_time(lambda: forest.score_samples(X), args.repeat)
    reference, ref_scores = best_time(threaded_by_hand, args.repeat)
    ours, our_scores = best_time(lambda: model.anomaly_score(X), args.repeat)
    assert np.array_equal(sk_scores, ref_scores) and np.array_equal(-sk_scores, our_scores)

    print(
        f"scoring {args.rows:,} rows x {args.features} features, {args.trees} trees (best of {args.repeat}):"
    )
    print(f"  sklearn score_samples, one call:           {single:6.2f} s")
    print(f"  sklearn score_samples, {args.threads} threads by hand:  {reference:6.2f} s  (reference)")
    print(f"  AccessIsolationForest.anomaly_score, n_jobs={args.threads}: {ours:6.2f} s")
    print(f"  ours / reference: {ours / reference:.2f}  (acceptance: <= ~1.2)")


if __name__ == "__main__":
    main()
