"""The isolation forest and its model files, as specifications.

Synthetic feature rows are seeded Gaussian noise with a few planted anomalies far out in some features.
"""

from __future__ import annotations

import copy
import hashlib
import json
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.base import BaseEstimator
from sklearn.utils.estimator_checks import parametrize_with_checks

from models import AccessIsolationForest, ModelFileError, ModelManifest, load_model, save_model
from models.persistence import MANIFEST_MEMBER, PAYLOAD_MEMBER, ModelVersionWarning

FEATURES = ["lookups", "distinct_patients", "unrelated_share", "after_hours", "prints", "exports"]
N_INLIERS = 2000
PLANTED = np.arange(N_INLIERS, N_INLIERS + 10)  # row positions of the planted anomalies


def feature_frame(seed: int = 0) -> pd.DataFrame:
    """N_INLIERS Gaussian rows, then 10 planted rows shifted 6 standard deviations in two features."""
    rng = np.random.default_rng(seed)
    inliers = rng.normal(size=(N_INLIERS, len(FEATURES)))
    planted = rng.normal(size=(len(PLANTED), len(FEATURES)))
    planted[:, [1, 2]] += 6.0
    return pd.DataFrame(np.vstack([inliers, planted]), columns=FEATURES)


def small_forest(**params: Any) -> AccessIsolationForest:
    return AccessIsolationForest(**{"n_estimators": 64, "random_state": 0, **params})


def top_k(scores: np.ndarray, k: int) -> set[int]:
    return {int(i) for i in np.argsort(-scores, kind="stable")[:k]}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return feature_frame()


@pytest.fixture(scope="module")
def fitted(frame: pd.DataFrame) -> AccessIsolationForest:
    return small_forest(n_seeds=2).fit(frame)


def save(model: AccessIsolationForest, path: Path, n_rows: int = N_INLIERS) -> ModelManifest:
    return save_model(
        model,
        path,
        training_start="2026-03-01",
        training_end="2026-03-08",
        n_rows=n_rows,
        created_at=datetime(2026, 3, 9, 2, 0, tzinfo=UTC),
    )


def rewrite_members(path: Path, edit: Callable[[dict[str, bytes]], None]) -> None:
    """Rewrite a model file's zip members after ``edit`` changed them (the tampering in these tests)."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    edit(members)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


# -- the estimator contract ---------------------------------------------------------------------------------


@parametrize_with_checks([AccessIsolationForest(n_estimators=8, random_state=0, n_jobs=2, chunk_size=16)])
def test_follows_the_scikit_learn_estimator_contract(
    estimator: BaseEstimator, check: Callable[[BaseEstimator], None]
) -> None:
    check(estimator)


def test_anomaly_score_is_the_opposite_of_score_samples_and_decision_is_offset(
    fitted: AccessIsolationForest, frame: pd.DataFrame
) -> None:
    anomaly = fitted.anomaly_score(frame)
    assert np.array_equal(anomaly, -fitted.score_samples(frame))
    assert np.all((anomaly > 0) & (anomaly <= 1))
    assert np.allclose(fitted.decision_function(frame), fitted.score_samples(frame) - fitted.offset_)
    assert np.array_equal(fitted.predict(frame) == -1, fitted.decision_function(frame) < 0)


def test_contamination_sets_the_share_of_training_rows_predicted_outliers(frame: pd.DataFrame) -> None:
    model = small_forest(contamination=0.01).fit(frame)
    assert (model.predict(frame) == -1).sum() == pytest.approx(0.01 * len(frame), abs=1)


# -- scores -----------------------------------------------------------------------------------------------


def test_planted_anomalies_score_highest(fitted: AccessIsolationForest, frame: pd.DataFrame) -> None:
    # Gaussian noise has its own extreme rows (one inlier here is 3 sd out in three features), so the
    # floor is: every planted row in the top 15 of 2010, and above 99.9% of the inliers.
    scores = fitted.anomaly_score(frame)
    assert set(PLANTED.tolist()) <= top_k(scores, 15)
    assert scores[PLANTED].min() > np.quantile(scores[:N_INLIERS], 0.999)


@pytest.mark.parametrize(("n_jobs", "chunk_size"), [(2, 1000), (2, 7), (1, 333), (4, 65536)])
def test_scores_are_identical_for_any_thread_count_and_chunk_size(
    fitted: AccessIsolationForest, frame: pd.DataFrame, n_jobs: int, chunk_size: int
) -> None:
    model = copy.deepcopy(fitted)
    baseline = model.set_params(n_jobs=1, chunk_size=len(frame)).anomaly_score(frame)
    scores = model.set_params(n_jobs=n_jobs, chunk_size=chunk_size).anomaly_score(frame)
    assert np.array_equal(scores, baseline)


def test_same_random_state_gives_identical_scores(frame: pd.DataFrame) -> None:
    first = small_forest(n_seeds=2, n_jobs=1).fit(frame).anomaly_score(frame)
    second = small_forest(n_seeds=2, n_jobs=2).fit(frame).anomaly_score(frame)
    assert np.array_equal(first, second)


def test_seed_averaging_keeps_the_top_of_the_queue_stable_across_random_states() -> None:
    # No planted rows: the top 50 of plain noise is where a small forest's ranking is least stable.
    rows = np.random.default_rng(7).normal(size=(N_INLIERS, len(FEATURES)))

    def mean_top_overlap(**params: Any) -> float:
        tops = [
            top_k(
                AccessIsolationForest(random_state=seed, n_jobs=1, **params).fit(rows).anomaly_score(rows), 50
            )
            for seed in range(4)
        ]
        pairs = [(a, b) for i, a in enumerate(tops) for b in tops[i + 1 :]]
        return float(np.mean([len(a & b) / 50 for a, b in pairs]))

    single = mean_top_overlap(n_estimators=16, n_seeds=1)  # measured ~0.37
    averaged = mean_top_overlap(n_estimators=16, n_seeds=8)  # measured ~0.72
    assert averaged >= 0.6
    assert averaged >= single + 0.2


def test_scoring_with_different_feature_names_raises_a_clear_error(
    fitted: AccessIsolationForest, frame: pd.DataFrame
) -> None:
    renamed = frame.rename(columns={"prints": "printouts"})
    with pytest.raises(ValueError, match=r"(?s)feature names should match.*printouts.*prints"):
        fitted.anomaly_score(renamed)
    with pytest.raises(ValueError, match="same order"):
        fitted.anomaly_score(frame[FEATURES[::-1]])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_seeds": 0}, "n_seeds must be an integer >= 1"),
        ({"chunk_size": 0}, "chunk_size must be an integer >= 1"),
        ({"n_jobs": 0}, "n_jobs must be None or a non-zero integer"),
        ({"contamination": 0.7}, "contamination must be"),
    ],
)
def test_invalid_parameters_are_refused_at_fit(
    frame: pd.DataFrame, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        small_forest(**params).fit(frame)


# -- model files ------------------------------------------------------------------------------------------


def test_saved_model_loads_back_with_identical_scores_and_its_manifest(
    fitted: AccessIsolationForest, frame: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "model.zip"
    written = save(fitted, path)
    model, manifest = load_model(path)
    assert np.array_equal(model.anomaly_score(frame), fitted.anomaly_score(frame))
    assert manifest == written
    assert manifest.feature_names == tuple(FEATURES)
    assert (manifest.training_start, manifest.training_end, manifest.n_rows) == (
        "2026-03-01",
        "2026-03-08",
        N_INLIERS,
    )
    assert manifest.created_at == "2026-03-09T02:00:00+00:00"
    assert [p.name for p in tmp_path.iterdir()] == ["model.zip"]  # no temporary file left behind


def test_a_model_fitted_without_feature_names_is_not_saved(tmp_path: Path) -> None:
    model = small_forest().fit(feature_frame().to_numpy())
    with pytest.raises(ValueError, match="DataFrame"):
        save(model, tmp_path / "model.zip")


def test_tampered_payload_is_refused_naming_the_file(fitted: AccessIsolationForest, tmp_path: Path) -> None:
    path = tmp_path / "model.zip"
    save(fitted, path)

    def flip_one_byte(members: dict[str, bytes]) -> None:
        payload = bytearray(members[PAYLOAD_MEMBER])
        payload[len(payload) // 2] ^= 0xFF
        members[PAYLOAD_MEMBER] = bytes(payload)

    rewrite_members(path, flip_one_byte)
    with pytest.raises(ModelFileError, match=rf"{path}.*checksum.*not loaded"):
        load_model(path)


def test_unknown_format_version_is_refused(fitted: AccessIsolationForest, tmp_path: Path) -> None:
    path = tmp_path / "model.zip"
    save(fitted, path)

    def bump_version(members: dict[str, bytes]) -> None:
        manifest = json.loads(members[MANIFEST_MEMBER])
        manifest["format_version"] = 99
        members[MANIFEST_MEMBER] = json.dumps(manifest).encode()

    rewrite_members(path, bump_version)
    with pytest.raises(ModelFileError, match=rf"{path}.*format version 99"):
        load_model(path)


class Untrusted:
    """A type no model file should contain: skops would rebuild it from its __reduce__ / __dict__."""

    def __init__(self) -> None:
        self.note = "anything"


def test_payload_with_an_untrusted_type_is_refused(fitted: AccessIsolationForest, tmp_path: Path) -> None:
    path = tmp_path / "model.zip"
    save(fitted, path)
    smuggled = skops.io.dumps({"model": fitted, "extra": Untrusted()})

    rewrite_members(path, lambda members: _replace_payload(members, smuggled))
    with pytest.raises(ModelFileError, match=rf"{path}.*not trusted: .*Untrusted"):
        load_model(path)


def test_pickle_payload_is_refused(fitted: AccessIsolationForest, tmp_path: Path) -> None:
    path = tmp_path / "model.zip"
    save(fitted, path)
    pickled = b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94."  # a pickle, never unpickled

    rewrite_members(path, lambda members: _replace_payload(members, pickled))
    with pytest.raises(ModelFileError, match=rf"{path}.*not a readable skops payload"):
        load_model(path)


def test_a_file_that_is_not_a_model_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.zip"
    path.write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match=rf"{path}.*not a readable model file"):
        load_model(path)
    with pytest.raises(ModelFileError, match="no such model file"):
        load_model(tmp_path / "missing.zip")


def test_other_sklearn_version_warns_or_errors(fitted: AccessIsolationForest, tmp_path: Path) -> None:
    path = tmp_path / "model.zip"
    save(fitted, path)

    def older_sklearn(members: dict[str, bytes]) -> None:
        manifest = json.loads(members[MANIFEST_MEMBER])
        manifest["sklearn_version"] = "1.0.0"
        members[MANIFEST_MEMBER] = json.dumps(manifest).encode()

    rewrite_members(path, older_sklearn)
    with pytest.warns(ModelVersionWarning, match=r"saved with scikit-learn 1\.0\.0"):
        load_model(path)
    with pytest.raises(ModelFileError, match=r"saved with scikit-learn 1\.0\.0"):
        load_model(path, on_version_mismatch="error")


def _replace_payload(members: dict[str, bytes], payload: bytes) -> None:
    """Swap the payload and fix up the checksum, as an attacker who can edit the whole file would."""
    manifest = json.loads(members[MANIFEST_MEMBER])
    manifest["payload_sha256"] = hashlib.sha256(payload).hexdigest()
    members[MANIFEST_MEMBER] = json.dumps(manifest).encode()
    members[PAYLOAD_MEMBER] = payload
