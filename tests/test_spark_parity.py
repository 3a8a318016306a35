"""Issue 15: the feature stage on Spark (Ibis's pyspark backend, ``local[2]``) gives the features DuckDB
gives on the bundled sample hospital, and the ranked case queue built from Spark's features is DuckDB's.

Equal means: the same lookups (user, patient, day), the same explanation for each, every flag and count
equal, each surprise and score within 1e-9 relative, the user-day features bit-exact, and the same cases
in the same order; for a nightly night with stored history, the same alerts.jsonl and the same history
tables (everything a night derives from its features). Without Java or pyspark the tests skip, unless
PHI_REQUIRE_JAVA=1 (CI) makes that a failure.

The computation is ``spark_parity_job``'s, started by ``conftest.py`` in a low-priority background
process as soon as collection selects these tests, so it runs beside the rest of the suite on the core a
test run leaves idle; the tests here wait for it and compare what it wrote. Why not faster: Spark's fixed
cost per query (about 80 queries, 240 jobs per feature stage, mostly one-task stages, code generation and
a cold JIT) dominates at this size. Measured and not kept: adaptive execution off, whole-stage and
expression code generation off, one shuffle partition, broadcast thresholds and hints, Parquet instead of
local checkpoints, a larger heap, other garbage collectors. The windows are shortened (a 7-day baseline
and 2 scored days for ``run``, 3 stored nights before the night).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from spark_parity_job import (
    BASELINE_DAYS,
    BUNDLE,
    JOB,
    NIGHT,
    RATE_LOOKUPS,
    SINCE,
    UNTIL,
    Job,
    finish,
    missing_for_spark,
)

from detector.detect.pipeline import prepare
from detector.detect.spark_stage import FEATURE_TABLES, MANIFEST
from features.columns import Col, Tab
from features.flags import FLAGS

KEYS = [Col.user_id, Col.patient_id, Col.day]


def _require_spark() -> None:
    """pyspark and a Java runtime, or a skip (a failure when PHI_REQUIRE_JAVA=1)."""
    missing = missing_for_spark()
    if missing:
        if os.environ.get("PHI_REQUIRE_JAVA") == "1":
            pytest.fail(f"Spark is required (PHI_REQUIRE_JAVA=1) but {', '.join(missing)} is missing")
        pytest.skip(f"Spark tests need {', '.join(missing)}")


@pytest.fixture(scope="module")
def job(request: pytest.FixtureRequest) -> Path:
    """The folder the background job wrote, once it has finished."""
    _require_spark()
    started = request.config.stash.get(JOB, None)
    assert started is not None, "conftest.py starts the parity job when collection selects these tests"
    return finish(started)


@pytest.fixture(scope="module")
def runs(job: Path) -> Path:
    return job / "runs"


@pytest.fixture(scope="module")
def nights(job: Path) -> Path:
    return job / "nights"


def _table(runs: Path, engine: str, name: str) -> pd.DataFrame:
    frame = pd.read_parquet(runs / engine / f"{name}.parquet")
    return frame.sort_values(KEYS[:1] + [c for c in KEYS[1:] if c in frame.columns]).reset_index(drop=True)


def test_same_lookups_and_the_same_explanation_for_each(runs: Path) -> None:
    duck, spark = _table(runs, "duck", Tab.lookups), _table(runs, "spark", Tab.lookups)
    assert len(duck) > 1000
    assert list(spark.columns) == list(duck.columns)
    pd.testing.assert_frame_equal(spark[KEYS], duck[KEYS])
    assert duck[Col.explanation].notna().sum() > 0
    pd.testing.assert_series_equal(spark[Col.explanation], duck[Col.explanation])


def test_every_flag_and_count_is_equal_and_surprise_within_1e_9(runs: Path) -> None:
    duck, spark = _table(runs, "duck", Tab.lookups), _table(runs, "spark", Tab.lookups)
    floats = [c for c in duck.columns if pd.api.types.is_float_dtype(duck[c])]
    assert {f"s_{name}" for name in FLAGS} | {Col.s_joint, Col.score} <= set(floats)
    for column in duck.columns:
        if column in floats:
            a, b = duck[column].to_numpy(), spark[column].to_numpy(dtype=float)
            assert (np.isnan(a) == np.isnan(b)).all(), column
            assert np.allclose(b[~np.isnan(a)], a[~np.isnan(a)], rtol=1e-9, atol=0), column
        else:
            assert spark[column].astype(object).equals(duck[column].astype(object)), column
    assert duck[Col.score].gt(0).sum() > 10  # the window raises flags: the comparison is not of zeros


def test_user_day_features_are_bit_exact(runs: Path) -> None:
    duck, spark = _table(runs, "duck", Tab.user_days), _table(runs, "spark", Tab.user_days)
    assert len(duck) > 100
    pd.testing.assert_frame_equal(spark, duck, check_dtype=False, check_exact=True)


def test_the_ranked_case_queue_from_spark_features_is_duckdbs(runs: Path) -> None:
    queues = json.loads((runs / "queues.json").read_text(encoding="utf-8"))
    assert len(queues["duck"]) >= 5
    assert queues["spark"] == queues["duck"]


def test_spark_writes_no_decimal_column(runs: Path) -> None:
    """A DECIMAL anywhere in what Spark wrote means a literal chose the type (the issue-15 bug)."""
    for name in FEATURE_TABLES:
        files = sorted((runs / "features" / name).glob("*.parquet"))
        assert files, name
        for file in files:
            assert not [f.name for f in pq.read_schema(file) if pa.types.is_decimal(f.type)], name


def test_a_rate_below_a_millionth_keeps_its_surprise_on_spark(job: Path) -> None:
    """Issue 15's decimal bug: on Spark ``(k + 0.5) / (n + 1.0)`` was DECIMAL, rounded to 6 places, so a
    flag never seen in 3 million baseline lookups had rate 0 and a NULL surprise (-log10 0)."""
    expected = 0.5 / (RATE_LOOKUPS + 1.0)
    assert round(expected, 6) == 0.0  # the case the bug got wrong
    rates = json.loads((job / "rates.json").read_text(encoding="utf-8"))
    assert set(rates) == {"pyspark", "duckdb"}
    for engine, values in rates.items():
        for flag in FLAGS:
            assert math.isclose(values[f"e_{flag}"], expected, rel_tol=1e-12), (engine, flag)
            assert values[f"g_{flag}"] > 0 and math.isfinite(-math.log10(values[f"g_{flag}"])), (engine, flag)


def test_the_window_checked_when_features_are_loaded(runs: Path) -> None:
    from detector.common.errors import UsageError

    other = (dt.date.fromisoformat(SINCE) + dt.timedelta(days=1)).isoformat()
    with pytest.raises(UsageError, match="another window"):
        prepare(BUNDLE, since=other, until=UNTIL, baseline_days=BASELINE_DAYS, features_dir=runs / "features")


def test_a_nightly_night_with_history_on_spark_gives_duckdbs_alerts_and_history(nights: Path) -> None:
    summaries = json.loads((nights / "summaries.json").read_text(encoding="utf-8"))
    duck, spark = summaries["duck"], summaries["spark"]
    assert duck["history"]["days"] == 3
    assert spark["history"] == duck["history"]
    manifest = nights / "spark" / "tmp" / "spark-features" / MANIFEST
    assert manifest.is_file()  # the features were Spark's
    assert not (nights / "duck" / "tmp" / "spark-features").exists()
    for key in ("lookups", "explanation_self_check", "weights", "cases", "model"):
        assert spark[key] == duck[key], key
    night = NIGHT.isoformat()
    alerts = (nights / "duck" / "runs" / night / "alerts.jsonl").read_bytes()
    assert alerts.count(b"\n") >= 3
    assert (nights / "spark" / "runs" / night / "alerts.jsonl").read_bytes() == alerts
    stored = sorted((nights / "duck" / "history" / night).glob("*.parquet"))
    assert {p.stem for p in stored} >= {"groups", "pairs", "patterns", Tab.user_days, "team_days"}
    for path in stored:
        a, b = pd.read_parquet(path), pd.read_parquet(nights / "spark" / "history" / night / path.name)
        assert list(b.columns) == list(a.columns) and len(b) == len(a) > 0, path.name
        for column in a.columns:
            if pd.api.types.is_float_dtype(a[column]):
                x, y = a[column].to_numpy(dtype=float), b[column].to_numpy(dtype=float)
                assert (np.isnan(x) == np.isnan(y)).all(), (path.name, column)
                assert np.allclose(y[~np.isnan(x)], x[~np.isnan(x)], rtol=1e-9, atol=0), (path.name, column)
            else:
                assert b[column].astype(object).equals(a[column].astype(object)), (path.name, column)


def test_a_job_that_failed_fails_the_parity_tests_with_its_log(tmp_path: Path) -> None:
    """The tests never compare a half-written folder: a job that exits non-zero (or wrote no
    ``done.json``) is an AssertionError carrying the end of its log."""
    import subprocess
    import sys

    for code, script in (
        (3, "print('boom in the job'); raise SystemExit(3)"),
        (0, "print('boom in the job')"),
    ):
        out = tmp_path / str(code)
        out.mkdir()
        with (out / "job.log").open("wb") as log:
            process = subprocess.Popen([sys.executable, "-c", script], stdout=log, stderr=subprocess.STDOUT)
        with pytest.raises(AssertionError, match=f"ended with {code}:\\n(.|\\n)*boom in the job"):
            finish(Job(process, out))
