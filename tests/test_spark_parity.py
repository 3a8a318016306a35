"""Issue 15: the feature stage on Spark (Ibis's pyspark backend, ``local[2]``) gives the features DuckDB
gives on the bundled sample hospital, and the ranked case queue built from Spark's features is DuckDB's.

Equal means: the same lookups (user, patient, day), the same explanation for each, every flag and count
equal, each surprise and score within 1e-9 relative, the user-day features bit-exact, and the same cases
in the same order. Without Java or pyspark the tests skip, unless PHI_REQUIRE_JAVA=1 (CI) makes that a
failure. One Spark session serves the module; the window is shortened (a 7-day baseline, 2 scored days)
to keep the module near a minute on two cores.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from detector.detect.cases import build_cases
from detector.detect.pipeline import Prepared, prepare
from detector.detect.spark_stage import FEATURE_TABLES, spark_features
from features.columns import Col, Tab
from features.engine import from_duckdb, from_spark, spark_session
from features.flags import FLAGS
from features.surprise import flag_rates

BUNDLE = Path(__file__).resolve().parents[1] / "sample_logs" / "hospital_demo"
SINCE, UNTIL, BASELINE_DAYS = "2026-03-16", "2026-03-17", 7
KEYS = [Col.user_id, Col.patient_id, Col.day]


def _require_spark() -> None:
    """pyspark and a Java runtime, or a skip (a failure when PHI_REQUIRE_JAVA=1)."""
    missing = [
        what
        for what, present in (
            ("pyspark", importlib.util.find_spec("pyspark") is not None),
            ("java", shutil.which("java") is not None),
        )
        if not present
    ]
    if missing:
        if os.environ.get("PHI_REQUIRE_JAVA") == "1":
            pytest.fail(f"Spark is required (PHI_REQUIRE_JAVA=1) but {', '.join(missing)} is missing")
        pytest.skip(f"Spark tests need {', '.join(missing)}")


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    _require_spark()
    session = spark_session("local[2]", config={"spark.sql.shuffle.partitions": "2"})
    yield session
    session.stop()


@dataclass
class Runs:
    duck: Prepared
    spark: Prepared
    written: Path


@pytest.fixture(scope="module")
def runs(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """The demo window scored with DuckDB's features and with Spark's (computed from the canonical
    Parquet the DuckDB ingest wrote, loaded back into DuckDB for scoring)."""
    tmp = tmp_path_factory.mktemp("spark")
    duck = prepare(BUNDLE, since=SINCE, until=UNTIL, baseline_days=BASELINE_DAYS)
    canonical = {}
    for name in duck.loaded.rows:
        duck.loaded.write_table(name, tmp / f"{name}.parquet")
        canonical[name] = tmp / f"{name}.parquet"
    window = duck.window
    spark_features(
        spark,
        canonical,
        tmp / "features",
        timezone=duck.loaded.config.zone,
        start=window.baseline_start.isoformat(),
        since=window.since.isoformat(),
        until=window.until.isoformat(),
        system_users=duck.loaded.system_users,
    )
    from_spark_features = prepare(
        BUNDLE, since=SINCE, until=UNTIL, baseline_days=BASELINE_DAYS, features_dir=tmp / "features"
    )
    return Runs(duck, from_spark_features, tmp / "features")


def _table(p: Prepared, name: str) -> pd.DataFrame:
    frame = p.con.execute(f"SELECT * FROM {name}").df()
    return frame.sort_values(KEYS[:1] + [c for c in KEYS[1:] if c in frame.columns]).reset_index(drop=True)


def test_same_lookups_and_the_same_explanation_for_each(runs: Runs) -> None:
    duck, spark = _table(runs.duck, Tab.lookups), _table(runs.spark, Tab.lookups)
    assert len(duck) > 1000
    assert list(spark.columns) == list(duck.columns)
    pd.testing.assert_frame_equal(spark[KEYS], duck[KEYS])
    assert duck[Col.explanation].notna().sum() > 0
    pd.testing.assert_series_equal(spark[Col.explanation], duck[Col.explanation])


def test_every_flag_and_count_is_equal_and_surprise_within_1e_9(runs: Runs) -> None:
    duck, spark = _table(runs.duck, Tab.lookups), _table(runs.spark, Tab.lookups)
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


def test_user_day_features_are_bit_exact(runs: Runs) -> None:
    duck, spark = _table(runs.duck, Tab.user_days), _table(runs.spark, Tab.user_days)
    assert len(duck) > 100
    pd.testing.assert_frame_equal(spark, duck, check_dtype=False, check_exact=True)


def test_the_ranked_case_queue_from_spark_features_is_duckdbs(runs: Runs) -> None:
    def queue(p: Prepared) -> list[dict[str, Any]]:
        w = p.window
        return [c.to_json() for c in build_cases(p.con, since=w.since.isoformat(), until=w.until.isoformat())]

    duck = queue(runs.duck)
    assert len(duck) >= 5
    assert queue(runs.spark) == duck


def test_spark_writes_no_decimal_column(runs: Runs, spark: Any) -> None:
    """A DECIMAL anywhere in what Spark wrote means a literal chose the type (the issue-15 bug)."""
    for name in FEATURE_TABLES:
        schema = spark.read.parquet((runs.written / name).as_posix()).schema
        assert not [f.name for f in schema.fields if "Decimal" in type(f.dataType).__name__], name


def test_a_rate_below_a_millionth_keeps_its_surprise_on_spark(spark: Any) -> None:
    """Issue 15's decimal bug: on Spark ``(k + 0.5) / (n + 1.0)`` was DECIMAL, rounded to 6 places, so a
    flag never seen in 3 million baseline lookups had rate 0 and a NULL surprise (-log10 0)."""
    n = 3_000_000
    counted = pd.DataFrame(
        {Col.peer_group: ["g"], Col.peer_role: ["r"], Col.n: [n], **{f"k_{f}": [0] for f in FLAGS}}
    )
    expected = 0.5 / (n + 1.0)
    assert round(expected, 6) == 0.0  # the case the bug got wrong
    spark.createDataFrame(counted).createOrReplaceTempView("rates_counted")
    import duckdb

    con = duckdb.connect()
    con.register("rates_counted", counted)
    for backend in (from_spark(spark), from_duckdb(con)):
        table = backend.table("rates_counted")
        everyone, _, by_group = flag_rates(backend, table, table, prior=20.0, history=False)
        rates = everyone.execute().iloc[0]
        groups = by_group.execute().iloc[0]
        for flag in FLAGS:
            assert math.isclose(float(rates[f"e_{flag}"]), expected, rel_tol=1e-12), (backend.name, flag)
            assert math.isfinite(-math.log10(float(groups[f"g_{flag}"]))), (backend.name, flag)


def test_the_window_checked_when_features_are_loaded(runs: Runs) -> None:
    from detector.common.errors import UsageError

    other = (dt.date.fromisoformat(SINCE) + dt.timedelta(days=1)).isoformat()
    with pytest.raises(UsageError, match="another window"):
        prepare(BUNDLE, since=other, until=UNTIL, baseline_days=BASELINE_DAYS, features_dir=runs.written)
