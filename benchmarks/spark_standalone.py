"""The feature stage on a Spark standalone cluster, end to end on this machine: a master and a worker
started from the pyspark package (``spark-class``, loopback ports), the README's ``spark-submit``
command (``--master spark://...``, client deploy mode, ``features ... --master none``: the executors are
the worker's JVMs, not the driver's), then ``run --features`` and a plain DuckDB ``run`` on the same
bundle, their alerts compared byte for byte; the cluster is stopped at the end.

    .venv/bin/python benchmarks/spark_standalone.py [BUNDLE] [--since 2026-03-16] [--cores 2]

Needs the ``spark`` extra and a Java 17 runtime. Exit 0 when the alerts are identical, 1 otherwise.
On one machine the "shared file system" the README asks for is the local disk; the executors write
the feature Parquet themselves, as on a cluster.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyspark
from spark_connect import _free_port, accepts, compare_alerts, timed, wait_for

ROOT = Path(__file__).resolve().parent.parent
HOME = Path(pyspark.__file__).parent
ENV = os.environ | {
    "SPARK_HOME": str(HOME),
    "PYSPARK_DRIVER_PYTHON": sys.executable,
    "PYSPARK_PYTHON": sys.executable,
}
"""spark-submit runs a Python driver with ``python3`` from PATH unless told: this interpreter has the
package."""


def _daemon(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(HOME / "bin" / "spark-class"), *args], env=ENV, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def start_cluster(work: Path, cores: int) -> tuple[str, list[subprocess.Popen[bytes]]]:
    """A master and one worker with ``cores`` cores on loopback; returns the master URL once the
    worker has registered."""
    port = _free_port()
    url = f"spark://127.0.0.1:{port}"
    master_log, worker_log = work / "master.log", work / "worker.log"
    master_args = ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port)]
    master = _daemon([*master_args, "--webui-port", str(_free_port())], master_log)
    wait_for("master", lambda: accepts(port), master, master_log)
    worker_args = ["org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1", "--cores", str(cores)]
    worker_args += ["--memory", "3g", "--webui-port", str(_free_port()), "--work-dir", str(work / "worker")]
    worker = _daemon(worker_args, worker_log)
    wait_for(
        "worker",
        lambda: "Registering worker" in master_log.read_text(errors="replace"),
        worker,
        worker_log,
    )
    return url, [worker, master]


def submit(url: str, work: Path, since: list[str]) -> float:
    """The README's spark-submit command against the cluster; its wall time."""
    main = Path(__import__("detector").__file__).parent / "__main__.py"
    command = [str(HOME / "bin" / "spark-submit"), "--master", url, "--deploy-mode", "client"]
    command += ["--conf", "spark.executor.memory=2g", "--conf", "spark.sql.shuffle.partitions=4"]
    command += [str(main), "features", str(work / "canonical"), "--engine", "spark", *since]
    command += ["--out", str(work / "features"), "--master", "none"]
    started = time.perf_counter()
    with (work / "submit.log").open("wb") as log:
        subprocess.run(command, env=ENV, check=True, stdout=log, stderr=subprocess.STDOUT)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", nargs="?", type=Path, default=ROOT / "sample_logs" / "hospital_demo")
    parser.add_argument("--since", default="2026-03-16")
    parser.add_argument("--cores", type=int, default=2, help="the worker's cores")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="spark-standalone-"))
    started = time.perf_counter()
    url, daemons = start_cluster(work, args.cores)
    print(
        f"Spark standalone cluster (pyspark {pyspark.__version__}: a master and a {args.cores}-core worker) "
        f"up at {url} in {time.perf_counter() - started:.1f} s"
    )
    try:
        bundle, since = str(args.bundle), ["--since", args.since]
        seconds = {"ingest": timed(["ingest", bundle, "--out", str(work / "canonical")])}
        seconds["spark-submit features"] = submit(url, work, since)
        seconds["run --features"] = timed(
            ["run", bundle, *since, "--features", str(work / "features"), "--out", str(work / "from-spark")]
        )
        seconds["run (DuckDB)"] = timed(["run", bundle, *since, "--out", str(work / "duckdb")])
    finally:
        for daemon in daemons:
            daemon.terminate()
            daemon.wait(timeout=60)
    for what, took in seconds.items():
        print(f"{what:28s} {took:7.1f} s")
    executors = sorted((work / "worker").glob("app-*/*/stderr"))
    print(f"executor JVMs the worker started for the application: {len(executors)}")
    same = compare_alerts(work, "the cluster's") and len(executors) > 0
    print(f"outputs and the daemons' logs in {work}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
