"""``phi-detector features --engine spark`` and ``run --features`` refuse what they cannot use with one line
and a documented exit code, before any Spark work (issue 15): no pyspark or no Java is exit 78, a folder
that is not canonical tables or not the Spark stage's output is exit 66, a malformed option exit 64; over
Spark Connect, a missing Connect client or a URL of another form is exit 78, a server that does not answer
exit 69.
(Their success path is proven in tests/test_spark_parity.py.)"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from detector.cli import cli

DEMO = Path(__file__).resolve().parents[1] / "sample_logs" / "hospital_demo"


def _features(tmp_path: Path, *extra: str) -> Any:
    canonical = tmp_path / "canonical"
    canonical.mkdir(exist_ok=True)
    args = ["features", str(canonical), "--since", "2026-03-16", "--out", str(tmp_path / "out"), *extra]
    return CliRunner().invoke(cli, args)


def _one_line_error(result: Any) -> str:
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_without_pyspark_features_exits_78_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "pyspark" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    result = _features(tmp_path)
    assert result.exit_code == 78
    assert "pyspark" in _one_line_error(result)
    assert "phi-access-detector[spark]" in result.output


def test_without_java_features_exits_78_unless_over_spark_connect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if importlib.util.find_spec("pyspark") is None:
        pytest.skip("pyspark is not installed: the pyspark check comes first")
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    result = _features(tmp_path)
    assert result.exit_code == 78
    assert "Java 17" in _one_line_error(result)
    # Spark Connect needs no local Java: the next check (the canonical folder) is the one that fails.
    assert _features(tmp_path, "--remote", "sc://localhost:15002").exit_code == 66


def test_a_folder_that_is_not_canonical_tables_exits_66(tmp_path: Path) -> None:
    if importlib.util.find_spec("pyspark") is None or shutil.which("java") is None:
        pytest.skip("the Spark checks come first")
    result = _features(tmp_path)
    assert result.exit_code == 66
    assert "phi-detector ingest" in _one_line_error(result)


def test_a_conf_without_a_value_exits_64(tmp_path: Path) -> None:
    result = _features(tmp_path, "--conf", "spark.sql.shuffle.partitions")
    assert result.exit_code == 64
    assert "KEY=VALUE" in _one_line_error(result)


def test_run_with_a_features_folder_the_spark_stage_did_not_write_exits_66(tmp_path: Path) -> None:
    empty = tmp_path / "features"
    empty.mkdir()
    args = ["run", str(DEMO), "--since", "2026-03-16", "--features", str(empty), "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 66
    assert "features.json" in _one_line_error(result)


def test_the_workspace_takes_features_spark_and_refuses_another_engine(tmp_path: Path) -> None:
    from detector.common.errors import ConfigError
    from detector.nightly import init_workspace, load_workspace

    root = tmp_path / "w"
    init_workspace(root, DEMO, "access_log/{date}.csv.gz", timezone="America/New_York")
    config = root / "workspace.toml"
    written = config.read_text(encoding="utf-8")
    assert load_workspace(root).features == "duckdb"
    spark = '[nightly]\nfeatures = "spark"\n'
    conf = '\n[spark]\nremote = "sc://spark.example:15002"\nconf = { "spark.sql.shuffle.partitions" = "8" }\n'
    config.write_text(written.replace("[nightly]\n", spark) + conf, encoding="utf-8")
    ws = load_workspace(root)
    assert (ws.features, ws.spark) == (
        "spark",
        {
            "master": "local[2]",
            "remote": "sc://spark.example:15002",
            "conf": {"spark.sql.shuffle.partitions": "8"},
        },
    )
    config.write_text(written.replace("[nightly]\n", '[nightly]\nfeatures = "sparc"\n'), encoding="utf-8")
    with pytest.raises(ConfigError, match="features"):
        load_workspace(root)


def _need_connect_client() -> None:
    for name in ("pyspark", "grpc"):
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not installed: an earlier check fails first")


def test_over_spark_connect_without_its_client_exits_78_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if importlib.util.find_spec("pyspark") is None:
        pytest.skip("pyspark is not installed: the pyspark check comes first")
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "grpc" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    result = _features(tmp_path, "--remote", "sc://localhost:15002")
    assert result.exit_code == 78
    assert "Connect client" in _one_line_error(result)
    assert "phi-access-detector[spark-connect]" in result.output


@pytest.mark.parametrize(
    "url", ["http://spark.example:15002", "sc://", "sc://host:notaport", "localhost:15002"]
)
def test_a_spark_connect_url_of_another_form_exits_78_without_echoing_it(tmp_path: Path, url: str) -> None:
    _need_connect_client()
    result = _features(tmp_path, "--remote", url + "/;token=SECRET")
    assert result.exit_code == 78
    line = _one_line_error(result)
    assert "sc://host:port" in line and "SECRET" not in result.output


def test_a_spark_connect_server_that_does_not_answer_exits_69_at_once(tmp_path: Path) -> None:
    """A nightly job must not hang in the client's retries (minutes): the server is tried once, by the
    command itself, which says so."""
    import socket

    _need_connect_client()
    canonical = tmp_path / "canonical"
    ingested = CliRunner().invoke(cli, ["ingest", str(DEMO), "--out", str(canonical)])
    assert ingested.exit_code == 0, ingested.output
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = _features(tmp_path, "--remote", f"sc://127.0.0.1:{port}")
    assert result.exit_code == 69
    assert f"127.0.0.1:{port} does not answer" in _one_line_error(result)
    assert not (tmp_path / "out").exists()


def test_a_night_whose_spark_connect_server_does_not_answer_fails_with_69_and_can_be_retried(
    tmp_path: Path,
) -> None:
    """``[nightly] features = "spark"`` over Spark Connect: an absent server fails the night at once with
    the retryable exit 69 (the scheduler's retry), leaving no completed night behind."""
    import socket

    from detector.nightly import init_workspace

    _need_connect_client()
    root = tmp_path / "w"
    init_workspace(root, DEMO, "access_log/{date}.csv.gz", timezone="America/New_York")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = root / "workspace.toml"
    text = config.read_text(encoding="utf-8").replace("[nightly]\n", '[nightly]\nfeatures = "spark"\n')
    config.write_text(text + f'\n[spark]\nremote = "sc://127.0.0.1:{port}"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["nightly", "--workspace", str(root), "--date", "2026-02-23"])
    assert result.exit_code == 69, result.output
    assert f"127.0.0.1:{port} does not answer" in _one_line_error(result)
    assert not (root / "runs" / "2026-02-23" / "_SUCCESS").exists()
