"""The feature stage over Spark Connect, end to end on this machine: a Spark Connect server started from
the pyspark package (``spark-submit`` with its ``spark-connect`` jar, ``local[2]``, a free loopback port),
then ``phi-detector features --remote``, ``run --features`` and a plain DuckDB ``run`` on the same bundle,
their alerts compared byte for byte; the server is stopped at the end.

    .venv/bin/python benchmarks/spark_connect.py [BUNDLE] [--since 2026-03-16]

Needs the ``spark-connect`` extra (pyspark's Connect client) and a Java 17 runtime for the server (the
client needs none). Exit 0 when the alerts are identical, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyspark

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "detector"]
SERVER = "org.apache.spark.sql.connect.service.SparkConnectServer"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def accepts(port: int) -> bool:
    """Whether something on loopback ``port`` accepts a connection."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def wait_for(what: str, ready: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    """Return once ``ready()``; exit naming ``what`` and its ``log`` when ``process`` ends first or after
    120 s (stopping it)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the {what} exited ({process.returncode}); see {log}")
        if ready():
            return
        time.sleep(0.5)
    process.terminate()
    sys.exit(f"the {what} did not start within 120 s; see {log}")


def start_server(port: int, log: Path) -> subprocess.Popen[bytes]:
    """A Spark Connect server on ``port``, from the installed pyspark; returns once it accepts."""
    home = Path(pyspark.__file__).parent
    command = [str(home / "bin" / "spark-submit"), "--class", SERVER, "--master", "local[2]"]
    command += ["--conf", f"spark.connect.grpc.binding.port={port}", "spark-internal"]
    env = os.environ | {"SPARK_HOME": str(home)}
    server = subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    wait_for("Spark Connect server", lambda: accepts(port), server, log)
    return server


def timed(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([*CLI, *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def compare_alerts(work: Path, spark: str) -> bool:
    """Print and return whether ``work/from-spark`` and ``work/duckdb`` wrote the same alerts."""
    from_spark, duck = ((work / name / "alerts.jsonl").read_bytes() for name in ("from-spark", "duckdb"))
    same = from_spark == duck
    verdict = "identical" if same else "DIFFERENT"
    cases = (len(duck.splitlines()), len(from_spark.splitlines()))
    print(f"alerts: {cases[0]} cases from DuckDB's features, {cases[1]} from {spark}: {verdict}")
    return same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", nargs="?", type=Path, default=ROOT / "sample_logs" / "hospital_demo")
    parser.add_argument("--since", default="2026-03-16")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="spark-connect-"))
    port = _free_port()
    started = time.perf_counter()
    server = start_server(port, work / "server.log")
    print(
        f"Spark Connect server (pyspark {pyspark.__version__}, local[2]) up on port {port} in "
        f"{time.perf_counter() - started:.1f} s"
    )
    try:
        bundle, since = str(args.bundle), ["--since", args.since]
        seconds = {
            "ingest": timed(["ingest", bundle, "--out", str(work / "canonical")]),
            "features over Spark Connect": timed(
                [
                    "features",
                    str(work / "canonical"),
                    "--engine",
                    "spark",
                    *since,
                    "--out",
                    str(work / "features"),
                    "--remote",
                    f"sc://127.0.0.1:{port}",
                ]
            ),
            "run --features": timed(
                [
                    "run",
                    bundle,
                    *since,
                    "--features",
                    str(work / "features"),
                    "--out",
                    str(work / "from-spark"),
                ]
            ),
            "run (DuckDB)": timed(["run", bundle, *since, "--out", str(work / "duckdb")]),
        }
    finally:
        server.terminate()
        server.wait(timeout=60)
    for what, took in seconds.items():
        print(f"{what:28s} {took:7.1f} s")
    same = compare_alerts(work, "Spark Connect's")
    print(f"outputs and the server's log in {work}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
