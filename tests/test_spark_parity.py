"""Issue 15: the feature stage on Spark (Ibis's pyspark backend, ``local[2]``) gives the features DuckDB
gives on the bundled sample hospital, and the ranked case queue built from Spark's features is DuckDB's.

Equal means: the same lookups (user, patient, day), the same explanation for each, every flag and count
equal, each surprise and score within 1e-9 relative, the user-day features bit-exact, and the same cases
in the same order; for a nightly night with stored history, the same alerts.jsonl and the same history
tables (everything a night derives from its features). Without Java or pyspark the tests skip, unless
PHI_REQUIRE_JAVA=1 (CI) makes that a failure. One Spark JVM serves the module (started while DuckDB
prepares); the batch run and the night run side by side in two threads, each with a Spark session of its
own; the windows are shortened (a 7-day baseline and 2 scored days for ``run``, 3 stored nights before
the night): Spark's fixed cost per query dominates at this size.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import math
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from detector.detect.cases import build_cases
from detector.detect.pipeline import Prepared, prepare
from detector.detect.spark_stage import FEATURE_TABLES, MANIFEST, spark_features
from detector.nightly import backfill, init_workspace, load_workspace, nightly
from features.columns import Col, Tab
from features.engine import from_duckdb, from_spark, set_relied_on, spark_session
from features.flags import FLAGS
from features.surprise import flag_rates

BUNDLE = Path(__file__).resolve().parents[1] / "sample_logs" / "hospital_demo"
SINCE, UNTIL, BASELINE_DAYS = "2026-03-16", "2026-03-17", 7
FIRST_NIGHT, NIGHT = dt.date(2026, 2, 23), dt.date(2026, 2, 26)
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


CONF = {
    "spark.sql.shuffle.partitions": "2",
    # The JVM's first (C1) compiler only: this module's queries run cold, where C2's compile time
    # costs more than its faster code gains (about a tenth of the module). Results do not depend on it.
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=512m",
}


@pytest.fixture(scope="module")
def starting() -> Iterator[Future[Any]]:
    """The Spark session, started in a thread while the DuckDB side is prepared."""
    _require_spark()
    with ThreadPoolExecutor(1) as pool:
        session = pool.submit(spark_session, "local[2]", config=CONF)
        yield session
        session.result().stop()


@pytest.fixture(scope="module")
def spark(starting: Future[Any]) -> Any:
    return starting.result()


@dataclass
class Runs:
    duck: Prepared
    spark: Prepared
    written: Path


def _runs(starting: Future[Any], tmp: Path) -> Runs:
    """The demo window scored with DuckDB's features and with Spark's (computed from the canonical
    Parquet the DuckDB ingest wrote, loaded back into DuckDB for scoring). Spark's run has a session of
    its own (its temporary views apart from the night's, which runs at the same time)."""
    duck = prepare(BUNDLE, since=SINCE, until=UNTIL, baseline_days=BASELINE_DAYS)
    canonical = {}
    for name in duck.loaded.rows:
        duck.loaded.write_table(name, tmp / f"{name}.parquet")
        canonical[name] = tmp / f"{name}.parquet"
    window = duck.window
    session = starting.result().newSession()
    set_relied_on(session)
    spark_features(
        session,
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


@dataclass
class Nights:
    duck: Path
    spark: Path
    summaries: tuple[dict[str, Any], dict[str, Any]]


def _nights(starting: Future[Any], tmp: Path) -> Nights:
    """Two copies of a workspace with three stored nights; the fourth run with DuckDB's features in one
    and with Spark's (``[nightly] features = "spark"``: the night takes the module's session) in the
    other."""
    duck, on_spark = tmp / "duck", tmp / "spark"
    init_workspace(duck, BUNDLE, "access_log/{date}.csv.gz")
    backfill(load_workspace(duck), FIRST_NIGHT, NIGHT - dt.timedelta(days=1))
    shutil.copytree(duck, on_spark)
    config = on_spark / "workspace.toml"
    text = config.read_text(encoding="utf-8")
    assert "[nightly]\n" in text
    text = text.replace("[nightly]\n", '[nightly]\nfeatures = "spark"\n')
    config.write_text(text + '\n[spark]\nconf = { "spark.sql.shuffle.partitions" = "2" }\n', encoding="utf-8")
    on_duckdb = nightly(load_workspace(duck), NIGHT)
    starting.result()
    return Nights(duck, on_spark, (on_duckdb, nightly(load_workspace(on_spark), NIGHT)))


@dataclass
class Both:
    runs: Runs
    nights: Nights


@pytest.fixture(scope="module")
def both(starting: Future[Any], tmp_path_factory: pytest.TempPathFactory) -> Both:
    """The batch run and the night, each on DuckDB then Spark, side by side in two threads (Spark's
    fixed cost per query dominates at this size, and its jobs mostly keep one core busy)."""
    with ThreadPoolExecutor(2) as pool:
        runs = pool.submit(_runs, starting, tmp_path_factory.mktemp("spark"))
        nights = pool.submit(_nights, starting, tmp_path_factory.mktemp("nights"))
        return Both(runs.result(), nights.result())


@pytest.fixture(scope="module")
def runs(both: Both) -> Runs:
    return both.runs


@pytest.fixture(scope="module")
def nights(both: Both) -> Nights:
    return both.nights


def test_a_nightly_night_with_history_on_spark_gives_duckdbs_alerts_and_history(nights: Nights) -> None:
    duck, spark = nights.summaries
    assert duck["history"]["days"] == 3
    assert spark["history"] == duck["history"]
    manifest = nights.spark / "tmp" / "spark-features" / MANIFEST
    assert manifest.is_file()  # the features were Spark's
    assert not (nights.duck / "tmp" / "spark-features").exists()
    for key in ("lookups", "explanation_self_check", "weights", "cases", "model"):
        assert spark[key] == duck[key], key
    night = NIGHT.isoformat()
    alerts = (nights.duck / "runs" / night / "alerts.jsonl").read_bytes()
    assert alerts.count(b"\n") >= 3
    assert (nights.spark / "runs" / night / "alerts.jsonl").read_bytes() == alerts
    stored = sorted((nights.duck / "history" / night).glob("*.parquet"))
    assert {p.stem for p in stored} >= {"groups", "pairs", "patterns", Tab.user_days, "team_days"}
    for path in stored:
        a, b = pd.read_parquet(path), pd.read_parquet(nights.spark / "history" / night / path.name)
        assert list(b.columns) == list(a.columns) and len(b) == len(a) > 0, path.name
        for column in a.columns:
            if pd.api.types.is_float_dtype(a[column]):
                x, y = a[column].to_numpy(dtype=float), b[column].to_numpy(dtype=float)
                assert (np.isnan(x) == np.isnan(y)).all(), (path.name, column)
                assert np.allclose(y[~np.isnan(x)], x[~np.isnan(x)], rtol=1e-9, atol=0), (path.name, column)
            else:
                assert b[column].astype(object).equals(a[column].astype(object)), (path.name, column)
