"""An isolation forest for access-log feature rows, following the scikit-learn estimator contract.

One score convention: ``anomaly_score`` means higher = more anomalous, everywhere in the project.
``score_samples`` keeps scikit-learn's meaning (higher = more normal) so the estimator stays a drop-in
scikit-learn outlier detector; the sign is flipped in ``anomaly_score`` and nowhere else.

Two things scikit-learn's ``IsolationForest`` does not do, and this wrapper adds:

- **Seed averaging.** ``n_seeds`` independent forests, each seeded from ``random_state``, scores averaged:
  the nightly top of the queue moves less when only the seed changes.
- **Threaded scoring.** ``IsolationForest.score_samples`` ignores ``n_jobs``. Here rows are scored in chunks
  of ``chunk_size`` on a thread pool (the tree code releases the GIL). Each row's score is computed by the
  same operations in the same order whatever the chunking, so scores are bit-for-bit identical for any
  ``n_jobs`` and ``chunk_size``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral, Real
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.ensemble import IsolationForest
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

_MAX_SEED = int(np.iinfo(np.int32).max)


class AccessIsolationForest(OutlierMixin, BaseEstimator):
    """Isolation forest(s) with seed averaging and chunked, threaded scoring.

    Parameters
    ----------
    n_estimators : trees per forest.
    max_samples : rows drawn to build each tree ("auto" = min(256, n_rows)), as in ``IsolationForest``.
    max_features : features drawn to build each tree, as in ``IsolationForest``.
    contamination : "auto" (offset -0.5, as in the original paper) or the expected outlier fraction in
        (0, 0.5], which sets ``offset_`` so that fraction of the training rows is predicted -1.
    n_seeds : independent forests whose scores are averaged; their seeds are drawn from ``random_state``.
    random_state : int for reproducible forests, a ``RandomState``, or None.
    n_jobs : threads for fitting and scoring; None = ``os.cpu_count()``, negative counts back from it
        (-1 = all cores, -2 = all but one).
    chunk_size : rows per scoring task.

    Attributes
    ----------
    forests_ : the fitted ``IsolationForest`` objects, one per seed.
    offset_ : ``decision_function(X) = score_samples(X) - offset_``; negative = outlier.
    n_features_in_, feature_names_in_ : as everywhere in scikit-learn (names only when fitted on a DataFrame).
    """

    def __init__(
        self,
        *,
        n_estimators: int = 256,
        max_samples: int | float | str = "auto",
        max_features: int | float = 1.0,
        contamination: float | str = "auto",
        n_seeds: int = 1,
        random_state: int | np.random.RandomState | None = None,
        n_jobs: int | None = None,
        chunk_size: int = 65536,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features
        self.contamination = contamination
        self.n_seeds = n_seeds
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.chunk_size = chunk_size

    def fit(self, X: ArrayLike, y: object = None) -> AccessIsolationForest:
        """Fit ``n_seeds`` forests on X (rows = lookups or user-days, columns = features). y is ignored."""
        self._check_params()
        X_checked = validate_data(self, X, dtype=np.float32)
        seeds = check_random_state(self.random_state).randint(_MAX_SEED, size=self.n_seeds)
        self.forests_ = [
            IsolationForest(
                n_estimators=self.n_estimators,
                max_samples=self.max_samples,
                max_features=self.max_features,
                random_state=int(seed),
                n_jobs=self._n_threads(),
            ).fit(X_checked)
            for seed in seeds
        ]
        if self.contamination == "auto":
            self.offset_ = -0.5
        else:
            training_scores = self._score_samples(X_checked)
            self.offset_ = float(np.percentile(training_scores, 100.0 * float(self.contamination)))
        return self

    def anomaly_score(self, X: ArrayLike) -> NDArray[np.float64]:
        """Anomaly score of each row, in (0, 1]: higher = more anomalous. The project's score convention."""
        return -self.score_samples(X)

    def score_samples(self, X: ArrayLike) -> NDArray[np.float64]:
        """scikit-learn's convention: the opposite of the anomaly score, higher = more normal."""
        return self._score_samples(self._validate_for_scoring(X))

    def decision_function(self, X: ArrayLike) -> NDArray[np.float64]:
        """``score_samples(X) - offset_``: negative for outliers, positive for inliers."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: ArrayLike) -> NDArray[np.int_]:
        """-1 for outliers, 1 for inliers (``decision_function(X) < 0`` is an outlier)."""
        decision = self.decision_function(X)
        return np.where(decision < 0, -1, 1)

    # -- internals ---------------------------------------------------------------------------------------

    def _validate_for_scoring(self, X: ArrayLike) -> NDArray[np.float32]:
        check_is_fitted(self)
        # reset=False checks the column count and, for DataFrames, that the feature names and their order
        # match fit; a mismatch raises ValueError naming the unseen and missing features.
        checked: NDArray[np.float32] = validate_data(self, X, dtype=np.float32, reset=False)
        return checked

    def _score_samples(self, X: NDArray[np.float32]) -> NDArray[np.float64]:
        """Mean ``score_samples`` over the forests, computed chunk by chunk on a thread pool."""
        forests: list[IsolationForest] = self.forests_
        n_rows = X.shape[0]
        scores = np.empty(n_rows, dtype=np.float64)

        def score_chunk(start: int) -> None:
            rows = slice(start, min(start + self.chunk_size, n_rows))
            total = np.asarray(forests[0].score_samples(X[rows]), dtype=np.float64)
            for forest in forests[1:]:
                total = total + forest.score_samples(X[rows])
            scores[rows] = total / len(forests)

        starts = range(0, n_rows, self.chunk_size)
        n_workers = min(self._n_threads(), len(starts))
        if n_workers <= 1:
            for start in starts:
                score_chunk(start)
        else:
            with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="iforest-score") as pool:
                # list() re-raises the first exception from a worker.
                list(pool.map(score_chunk, starts))
        return scores

    def _n_threads(self) -> int:
        cores = os.cpu_count() or 1
        if self.n_jobs is None:
            return cores
        if self.n_jobs < 0:
            return max(cores + 1 + self.n_jobs, 1)
        return int(self.n_jobs)

    def _check_params(self) -> None:
        checks: list[tuple[str, Any, bool, str]] = [
            ("n_seeds", self.n_seeds, _is_int(self.n_seeds) and self.n_seeds >= 1, "an integer >= 1"),
            (
                "chunk_size",
                self.chunk_size,
                _is_int(self.chunk_size) and self.chunk_size >= 1,
                "an integer >= 1",
            ),
            (
                "n_jobs",
                self.n_jobs,
                self.n_jobs is None or (_is_int(self.n_jobs) and self.n_jobs != 0),
                "None or a non-zero integer",
            ),
            (
                "contamination",
                self.contamination,
                self.contamination == "auto"
                or (isinstance(self.contamination, Real) and 0.0 < float(self.contamination) <= 0.5),
                '"auto" or a float in (0, 0.5]',
            ),
        ]
        for name, value, ok, expected in checks:
            if not ok:
                raise ValueError(f"{name} must be {expected}, got {value!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)
