"""models.iforest.AccessIsolationForest: an isolation forest (``n_seeds`` forests, scores averaged) whose
``anomaly_score`` is higher for more anomalous rows, in (0, 1], and the exact opposite of scikit-learn's
``score_samples``. With a seed, fitting and scoring are reproducible bit for bit, whatever the thread
count and chunk size; a model saved with ``models.save_model`` loads back with the same scores, and a
file whose payload was changed is refused before anything in it is rebuilt.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models import AccessIsolationForest, ModelFileError, load_model, save_model

FEATURES = ["lookups", "after_hours_share"]


def _frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """``n`` ordinary user-days (around 20 lookups, a small after-hours share) from a seeded generator."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"lookups": rng.normal(20, 3, n), "after_hours_share": rng.normal(0.1, 0.02, n)})


def _model(**params: object) -> AccessIsolationForest:
    settings: dict[str, object] = {"n_estimators": 50, "random_state": 7, "n_jobs": 1} | params
    return AccessIsolationForest(**settings)  # type: ignore[arg-type]


def test_identical_rows_cannot_be_isolated_and_score_exactly_one_half() -> None:
    # Every tree is a single leaf, so a row's path length is the average one, c(n), and its score
    # 2 ** (-c(n) / c(n)) = 0.5 (up to rounding); with contamination "auto" the offset is -0.5.
    constant = pd.DataFrame({"lookups": [20.0] * 64, "after_hours_share": [0.1] * 64})
    model = _model().fit(constant)
    probe = pd.DataFrame({"lookups": [20.0, 500.0], "after_hours_share": [0.1, 0.9]})
    assert model.anomaly_score(probe).tolist() == pytest.approx([0.5, 0.5], abs=1e-12)
    assert model.decision_function(probe).tolist() == pytest.approx([0.0, 0.0], abs=1e-12)


def test_a_planted_outlier_scores_highest() -> None:
    frame = _frame()
    odd = pd.DataFrame({"lookups": [90.0], "after_hours_share": [0.8]})
    data = pd.concat([frame, odd], ignore_index=True)
    scores = _model().fit(data).anomaly_score(data)
    assert int(np.argmax(scores)) == len(frame)
    assert ((scores > 0) & (scores <= 1)).all()


def test_anomaly_score_is_the_opposite_of_score_samples_and_the_mean_over_the_forests() -> None:
    frame = _frame()
    model = _model(n_seeds=3).fit(frame)
    assert len(model.forests_) == 3
    assert np.array_equal(model.anomaly_score(frame), -model.score_samples(frame))
    x = frame.to_numpy(dtype=np.float32)
    forests = model.forests_
    mean = (forests[0].score_samples(x) + forests[1].score_samples(x) + forests[2].score_samples(x)) / 3
    assert np.array_equal(model.score_samples(frame), mean)


def test_the_same_seed_gives_the_same_scores_bit_for_bit() -> None:
    frame = _frame()
    first = _model(n_seeds=2).fit(frame).anomaly_score(frame)
    second = _model(n_seeds=2).fit(frame).anomaly_score(frame)
    other = _model(n_seeds=2, random_state=8).fit(frame).anomaly_score(frame)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


def test_scores_do_not_depend_on_threads_or_chunks() -> None:
    frame = _frame()
    serial = _model(n_jobs=1, chunk_size=65536).fit(frame).anomaly_score(frame)
    threaded = _model(n_jobs=2, chunk_size=7).fit(frame).anomaly_score(frame)
    assert np.array_equal(serial, threaded)


def test_contamination_makes_that_share_of_the_training_rows_outliers() -> None:
    frame = _frame(100)
    model = _model(contamination=0.1).fit(frame)
    assert int((model.predict(frame) == -1).sum()) == 10  # below the 10th percentile of 100 distinct scores


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_seeds": 0}, "n_seeds"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"n_jobs": 0}, "n_jobs"),
        ({"contamination": 0.6}, "contamination"),
        ({"n_seeds": True}, "n_seeds"),
    ],
)
def test_invalid_parameters_are_refused_at_fit(params: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _model(**params).fit(_frame(20))


def test_a_saved_model_loads_back_with_the_same_scores_and_its_manifest(tmp_path: Path) -> None:
    frame = _frame()
    model = _model(n_seeds=2).fit(frame)
    path = tmp_path / "models" / "user_days.zip"
    created = dt.datetime(2026, 3, 10, 6, 0, tzinfo=dt.UTC)
    save_model(
        model, path, training_start="2026-02-01", training_end="2026-03-09", n_rows=200, created_at=created
    )
    loaded, manifest = load_model(path)
    assert np.array_equal(loaded.anomaly_score(frame), model.anomaly_score(frame))
    assert manifest.feature_names == tuple(FEATURES)
    assert (manifest.training_start, manifest.training_end, manifest.n_rows) == (
        "2026-02-01",
        "2026-03-09",
        200,
    )
    assert manifest.created_at == "2026-03-10T06:00:00+00:00"
    with pytest.raises(ValueError, match="same order"):
        loaded.anomaly_score(frame[["after_hours_share", "lookups"]])  # columns in another order


def test_a_changed_payload_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.zip"
    save_model(_model().fit(_frame()), path, training_start="a", training_end="b", n_rows=200)
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    payload = next(name for name in members if name != "manifest.json")
    members[payload] = members[payload].replace(b"AccessIsolationForest", b"AccessIsolationForesT", 1)
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(tampered, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ModelFileError, match=r"tampered\.zip: .* checksum"):
        load_model(tampered)


def test_a_model_fitted_without_feature_names_is_not_saved(tmp_path: Path) -> None:
    model = _model().fit(_frame().to_numpy())
    with pytest.raises(ValueError, match="DataFrame"):
        save_model(model, tmp_path / "m.zip", training_start="a", training_end="b", n_rows=200)
    assert not (tmp_path / "m.zip").exists()
