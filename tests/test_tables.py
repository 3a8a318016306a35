"""The declared derived tables (``features.tables``) are what the stages really materialise: the batch
run's session tables and the history a night stores for the nights after it (issue 13)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from detector.cli import cli
from detector.common.sqlsafe import quote_literal
from detector.detect.pipeline import prepare
from detector.nightly.flow import backfill
from detector.nightly.workspace import load_workspace
from features.tables import HISTORY, SESSION, Table
from sample_logs import generate_bundle

FIRST = dt.date(2026, 2, 23)
DAYS = 9


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tables") / "hospital"
    generate_bundle(out, seed=4, days=DAYS, scale=0.12, scored_days=3, archetype="academic")
    return out


def _declared(table: Table) -> list[tuple[str, str]]:
    return [(c.name, c.type) for c in table.columns]


def _described(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    return [(row[0], row[1]) for row in con.sql(f"DESCRIBE {relation}").fetchall()]


def test_the_batch_run_materialises_the_declared_session_tables(hospital: Path) -> None:
    since = (FIRST + dt.timedelta(days=DAYS - 3)).isoformat()
    prepared = prepare(hospital, since=since, baseline_days=6)
    for name, table in SESSION.items():
        assert _described(prepared.con, f'"{name}"') == _declared(table), name


def test_a_night_stores_exactly_the_declared_history(hospital: Path, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    result = CliRunner().invoke(cli, ["init", "--workspace", str(root), "--bundle", str(hospital)])
    assert result.exit_code == 0, result.output
    config = root / "workspace.toml"
    config.write_text(config.read_text(encoding="utf-8").replace("baseline_days = 28", "baseline_days = 4"))
    last = FIRST + dt.timedelta(days=5)
    backfill(load_workspace(root), FIRST, last)
    night = root / "history" / last.isoformat()
    stored = sorted(p.stem for p in night.glob("*.parquet"))
    assert stored == sorted(HISTORY)
    con = duckdb.connect()
    for name, table in HISTORY.items():
        parquet = quote_literal(night / f"{name}.parquet")
        assert _described(con, f"SELECT * FROM read_parquet({parquet})") == _declared(table), name


def test_a_declaration_that_drifts_is_caught() -> None:
    """The comparison is exact: a column renamed, retyped or reordered fails (the check is not vacuous)."""
    table = HISTORY["patient_days"]
    con = duckdb.connect()
    con.execute("CREATE TABLE t (patient_id VARCHAR, day DATE, users INTEGER)")
    assert _described(con, "t") != _declared(table)
    con.execute("CREATE TABLE u (patient_id VARCHAR, day DATE, users BIGINT)")
    assert _described(con, "u") == _declared(table)
