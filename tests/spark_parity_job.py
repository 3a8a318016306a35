"""Issue 15's parity computation, run beside the test suite in a background process.

The sample hospital's features on DuckDB and on a local Spark session (``local[2]``), for a batch ``run``
and for a nightly night with stored history, and the flag rates of the decimal regression on both
engines: about two and a half minutes of CPU, nearly all Spark's fixed cost per query, which no setting
tried brings down (tests/test_spark_parity.py's docstring). A test run uses about one of CI's two cores,
so ``tests/conftest.py`` starts this job (``start``) as soon as collection selects a parity test, at low
priority (nice 10: it takes the core the suite leaves idle, and yields when the suite wants both), and
the parity tests wait for it (``finish``) and compare what it wrote. Run alone, the module waits for
the whole job: the same work as computing it in the tests.

``python tests/spark_parity_job.py OUT`` writes into OUT:

- ``runs/{duck,spark}/{lookups,user_days}.parquet``: the feature tables each run scored, and
  ``runs/queues.json``: each run's ranked case queue; ``runs/features``: what the Spark stage wrote;
- ``nights/{duck,spark}``: two copies of a workspace with three stored nights, the fourth night run with
  DuckDB's features and with Spark's, and ``nights/summaries.json``: the two nights' summaries;
- ``rates.json``: per engine, each flag's overall and group rate for a group of 3 million lookups
  that never raised it;
- ``done.json`` last: its presence means every other file is complete.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BUNDLE = Path(__file__).resolve().parents[1] / "sample_logs" / "hospital_demo"
SINCE, UNTIL, BASELINE_DAYS = "2026-03-16", "2026-03-17", 7
FIRST_NIGHT, NIGHT = dt.date(2026, 2, 23), dt.date(2026, 2, 26)
RATE_LOOKUPS = 3_000_000
"""The group size of the decimal regression: a rate of 0.5 / (n + 1) rounds to 0 at 6 decimal places."""
CONF = {
    "spark.sql.shuffle.partitions": "2",
    # The JVM's first (C1) compiler only: these queries run cold, where C2's compile time costs more
    # than its faster code gains (about a tenth of the job). Results do not depend on it.
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=512m",
}
NICE = 10
TIMEOUT_S = 1200
"""How long a parity test waits for the job at most (it takes about 90 s alone on two cores)."""


@dataclass
class Job:
    process: subprocess.Popen[bytes]
    out: Path


JOB = pytest.StashKey[Job]()
"""The job ``conftest.py`` started, in the session's stash."""


def missing_for_spark() -> list[str]:
    """What the Spark tests need and this machine lacks (pyspark, a Java runtime)."""
    return [
        what
        for what, present in (
            ("pyspark", importlib.util.find_spec("pyspark") is not None),
            ("java", shutil.which("java") is not None),
        )
        if not present
    ]


def start(out: Path) -> Job:
    """The job, started in the background at low priority, its output in ``out/job.log``."""
    with (out / "job.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), str(out)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # stopped with its JVM as one process group
        )
    return Job(process, out)


def finish(job: Job) -> Path:
    """The job's folder once it has written everything; an AssertionError with the log's tail
    otherwise."""
    try:
        code: int | None = job.process.wait(TIMEOUT_S)
    except subprocess.TimeoutExpired:
        code = None
    if code != 0 or not (job.out / "done.json").is_file():
        stop(job, remove=False)
        tail = (job.out / "job.log").read_text(encoding="utf-8", errors="replace")[-4000:]
        raise AssertionError(f"the Spark parity job ended with {code}:\n{tail}")
    return job.out


def stop(job: Job, *, remove: bool = True) -> None:
    """Stop the job and its JVM if it still runs; with ``remove``, delete its folder."""
    if job.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(job.process.pid, signal.SIGTERM)
        job.process.wait(30)
    if remove:
        shutil.rmtree(job.out, ignore_errors=True)


def main(out: Path) -> None:
    from features.engine import spark_session

    with ThreadPoolExecutor(1) as pool:
        starting = pool.submit(spark_session, "local[2]", config=CONF)
        try:
            with ThreadPoolExecutor(2) as both:
                runs = both.submit(_runs, starting, out / "runs")
                nights = both.submit(_nights, starting, out / "nights")
                runs.result(), nights.result()
            _rates(starting.result(), out / "rates.json")
        finally:
            starting.result().stop()
    (out / "done.json").write_text(json.dumps({"finished": dt.datetime.now().isoformat()}), "utf-8")


def _runs(starting: Future[Any], out: Path) -> None:
    """The demo window scored with DuckDB's features and with Spark's (computed from the canonical
    Parquet the DuckDB ingest wrote, loaded back into DuckDB for scoring). Spark's run has a session of
    its own (its temporary views apart from the night's, which runs at the same time)."""
    from detector.detect.cases import build_cases
    from detector.detect.pipeline import prepare
    from detector.detect.spark_stage import spark_features
    from features.columns import Tab
    from features.engine import set_relied_on

    duck = prepare(BUNDLE, since=SINCE, until=UNTIL, baseline_days=BASELINE_DAYS)
    canonical = {}
    (out / "canonical").mkdir(parents=True)
    for name in duck.loaded.rows:
        duck.loaded.write_table(name, out / "canonical" / f"{name}.parquet")
        canonical[name] = out / "canonical" / f"{name}.parquet"
    window = duck.window
    session = starting.result().newSession()
    set_relied_on(session)
    spark_features(
        session,
        canonical,
        out / "features",
        timezone=duck.loaded.config.zone,
        start=window.baseline_start.isoformat(),
        since=window.since.isoformat(),
        until=window.until.isoformat(),
        system_users=duck.loaded.system_users,
    )
    spark = prepare(
        BUNDLE, since=SINCE, until=UNTIL, baseline_days=BASELINE_DAYS, features_dir=out / "features"
    )
    queues = {}
    for engine, prepared in (("duck", duck), ("spark", spark)):
        (out / engine).mkdir()
        for table in (Tab.lookups, Tab.user_days):
            prepared.con.execute(f"SELECT * FROM {table}").df().to_parquet(out / engine / f"{table}.parquet")
        w = prepared.window
        cases = build_cases(prepared.con, since=w.since.isoformat(), until=w.until.isoformat())
        queues[engine] = [case.to_json() for case in cases]
    (out / "queues.json").write_text(json.dumps(queues, default=str), encoding="utf-8")


def _nights(starting: Future[Any], out: Path) -> None:
    """Two copies of a workspace with three stored nights; the fourth run with DuckDB's features in one
    and with Spark's (``[nightly] features = "spark"``: the night takes the job's session) in the
    other."""
    from detector.nightly import backfill, init_workspace, load_workspace, nightly

    duck, on_spark = out / "duck", out / "spark"
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
    on_spark_summary = nightly(load_workspace(on_spark), NIGHT)
    summaries = {"duck": on_duckdb, "spark": on_spark_summary}
    (out / "summaries.json").write_text(json.dumps(summaries, default=str), encoding="utf-8")


def _rates(spark: Any, path: Path) -> None:
    """Each flag's overall (``e_``) and group (``g_``) rate, per engine, for one group of
    ``RATE_LOOKUPS`` baseline lookups that never raised a flag (issue 15's decimal bug)."""
    import duckdb
    import pandas as pd

    from features.columns import Col
    from features.engine import from_duckdb, from_spark
    from features.flags import FLAGS
    from features.surprise import flag_rates

    counted = pd.DataFrame(
        {Col.peer_group: ["g"], Col.peer_role: ["r"], Col.n: [RATE_LOOKUPS], **{f"k_{f}": [0] for f in FLAGS}}
    )
    spark.createDataFrame(counted).createOrReplaceTempView("rates_counted")
    con = duckdb.connect()
    con.register("rates_counted", counted)
    rates = {}
    for backend in (from_spark(spark), from_duckdb(con)):
        table = backend.table("rates_counted")
        everyone, _, by_group = flag_rates(backend, table, table, prior=20.0, history=False)
        e, g = everyone.execute().iloc[0], by_group.execute().iloc[0]
        rates[backend.name] = {
            **{f"e_{flag}": _number(e[f"e_{flag}"]) for flag in FLAGS},
            **{f"g_{flag}": _number(g[f"g_{flag}"]) for flag in FLAGS},
        }
    path.write_text(json.dumps(rates), encoding="utf-8")


def _number(value: Any) -> float | None:
    """A rate as JSON keeps it: NULL as None (the bug's surprise came from a zero rate, not a NULL)."""
    return None if value is None or value != value else float(value)


if __name__ == "__main__":
    os.nice(NICE)  # here, not in a preexec_fn (unsafe with threads); the JVM inherits it
    main(Path(sys.argv[1]))
