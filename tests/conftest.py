"""Shared fixtures: tiny log bundles written from rows, and an ingest run read back for assertions.

``write_bundle`` turns ``{"access_log.csv": rows, ...}`` into files (CSV, CSV.gz, JSON lines or Parquet by
extension; bytes are written as given); ``ingest_run`` ingests a bundle and returns the summary, the
canonical tables and the rejects, after checking the accounting identity that every run must satisfy.
The session hooks at the end start and stop issue 15's Spark parity job (``spark_parity_job``), which
runs in the background beside the suite.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from detector.common.spreadsheet import safe_cell
from detector.ingest.flow import ingest
from detector.ingest.results import FILE_REASONS
from detector.tables.bundle import ACCESS_LOG

Rows = Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]]
Content = Rows | str | bytes | pa.Table

GOOD_ACCESS: dict[str, str] = {
    "timestamp": "2026-03-09T14:00:00Z",
    "user_id": "u1",
    "patient_id": "MRN000001",
    "action": "view",
    "resource_type": "note",
    "event_id": "e1",
    "workstation_id": "ws1",
    "outcome": "success",
    "break_glass": "false",
}
assert tuple(GOOD_ACCESS) == ACCESS_LOG.names


def make_access_row(**overrides: Any) -> dict[str, Any]:
    """A valid access_log row (all canonical columns, in order) with some values replaced."""
    unknown = set(overrides) - set(GOOD_ACCESS)
    assert not unknown, f"not access_log columns: {unknown}"
    return {**GOOD_ACCESS, **overrides}


def csv_text(rows: Rows, header: Sequence[str] | None = None, delimiter: str = ",") -> str:
    """Rows as CSV text with "\\n" line ends; dict rows give the header (the first row's keys)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    if rows and isinstance(rows[0], Mapping):
        header = list(header or rows[0].keys())
        writer.writerow(header)
        writer.writerows([[row.get(h, "") for h in header] for row in rows])  # type: ignore[union-attr]
    else:
        if header is not None:
            writer.writerow(header)
        writer.writerows(rows)  # type: ignore[arg-type]
    return buffer.getvalue()


def _write(path: Path, content: Content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name
    if isinstance(content, pa.Table):
        pq.write_table(content, path)
        return
    if name.endswith(".parquet"):
        assert isinstance(content, Sequence) and not isinstance(content, str | bytes)
        pq.write_table(pa.Table.from_pylist([dict(r) for r in content]), path)  # type: ignore[call-overload]
        return
    if isinstance(content, bytes):  # written as given, even to a .gz name
        path.write_bytes(content)
        return
    if isinstance(content, str):
        data = content.encode("utf-8")
    elif ".jsonl" in name:
        data = "".join(json.dumps(dict(r)) + "\n" for r in content).encode("utf-8")  # type: ignore[call-overload]
    else:
        data = csv_text(content).encode("utf-8")
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)


@dataclass
class Run:
    """What one ingest wrote: the summary, the canonical tables and the rejects (text, as in the file)."""

    out: Path
    summary: dict[str, Any]
    tables: dict[str, pa.Table]
    rejects: list[dict[str, str]]

    def table(self, name: str) -> pa.Table:
        return self.tables[name]

    def rows(self, name: str = "access_log") -> list[dict[str, Any]]:
        return self.tables[name].to_pylist()

    def counts(self, name: str = "access_log") -> dict[str, Any]:
        return self.summary["tables"][name]


def read_outputs(out: Path) -> Run:
    """Read back whatever an ingest wrote to ``out`` and check the accounting it reports."""
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    with (out / "rejects.csv").open(newline="", encoding="utf-8") as handle:
        rejects = list(csv.DictReader(handle))
    # rejects.csv is for spreadsheets (formula-like cells quoted); rejects.jsonl holds the exact records.
    exact = [json.loads(line) for line in (out / "rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(exact) == len(rejects)
    for shown, record in zip(rejects, exact, strict=True):
        assert shown == {k: safe_cell("" if v is None else str(v)) for k, v in record.items()}
        shown["raw"] = record["raw"] or ""
    tables = {p.stem: pq.read_table(p) for p in sorted(out.glob("*.parquet"))}
    for name, counts in summary["tables"].items():
        skipped = counts.get("skipped", 0)  # events a source adapter found not to be record access
        assert counts["rows_read"] == counts["accepted"] + counts["rejected"] + counts["duplicates"] + skipped
        assert skipped == sum(counts.get("skipped_by_reason", {}).values()), name
        assert skipped == sum(f.get("skipped", 0) for f in counts["files"]), name
        assert counts["duplicates"] == sum(counts["duplicates_by_kind"].values()), name
        assert counts["rejected"] == sum(counts["rejects_by_reason"].values()), name
        assert counts["rows_read"] == sum(f["rows_read"] for f in counts["files"]), name
        assert counts["rejected"] == sum(f["rejected"] for f in counts["files"]), name
        # Rows of rejects.csv are rejected rows, plus one row without a line per file that could not be
        # read at all (its rows are in no count; files_failed names it with its size).
        row_level = [r for r in rejects if r["table"] == name and r["reason"] not in FILE_REASONS]
        file_level = [r for r in rejects if r["table"] == name and r["reason"] in FILE_REASONS]
        assert counts["rejected"] == len(row_level), name
        assert all(r["line"] for r in row_level) and not any(r["line"] for r in file_level), name
        failed = counts.get("files_failed", [])
        assert sorted(f["file"] for f in failed) == sorted(r["file"] for r in file_level), name
        assert [f"{f['bytes']} bytes" for f in failed] == [r["raw"] for r in file_level], name
        if name in tables:
            assert tables[name].num_rows == counts["accepted"], name
    return Run(out, summary, tables, rejects)


@pytest.fixture
def access_row() -> Callable[..., dict[str, Any]]:
    return make_access_row


@pytest.fixture
def write_bundle(tmp_path: Path) -> Callable[..., Path]:
    """``write_bundle({"access_log.csv": rows, "users.csv": rows}, mapping=toml_text, name="bundle")``."""

    def write(files: Mapping[str, Content], *, mapping: str | None = None, name: str = "bundle") -> Path:
        bundle = tmp_path / name
        bundle.mkdir(parents=True, exist_ok=True)
        for relative, content in files.items():
            _write(bundle / relative, content)
        if mapping is not None:
            (bundle / "mapping.toml").write_text(mapping, encoding="utf-8")
        return bundle

    return write


@pytest.fixture
def ingest_run(tmp_path: Path) -> Callable[..., Run]:
    """Ingest a bundle into a fresh output folder (or ``out``) and read the results back.

    Keyword arguments go to ``detector.ingest.flow.ingest``; ``max_reject_fraction`` defaults to 1 so that
    tests about individual bad rows are not failed by the tolerance."""
    counter = iter(range(1_000_000))

    def run(bundle: Path, *, out: Path | None = None, **kwargs: Any) -> Run:
        out = out or tmp_path / f"out{next(counter)}"
        kwargs.setdefault("max_reject_fraction", 1.0)
        ingest(bundle, out, **kwargs)
        return read_outputs(out)

    return run


@pytest.fixture
def read_run() -> Callable[[Path], Run]:
    return read_outputs


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start issue 15's Spark parity computation in the background (``spark_parity_job``) when the
    collected tests include its tests and Spark can run here: it runs beside the rest of the suite."""
    if session.config.option.collectonly:
        return
    if not any("job" in getattr(item, "fixturenames", ()) for item in session.items if is_parity(item)):
        return
    from spark_parity_job import JOB, missing_for_spark, start

    if not missing_for_spark():  # without Spark the tests skip, or fail under PHI_REQUIRE_JAVA=1
        session.config.stash[JOB] = start(Path(tempfile.mkdtemp(prefix="phi-spark-parity-")))


def is_parity(item: pytest.Item) -> bool:
    return item.path.name == "test_spark_parity.py"


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the parity job if it still runs (the session ended before its tests waited for it), and
    remove what it wrote."""
    from spark_parity_job import JOB, stop

    started = session.config.stash.get(JOB, None)
    if started is not None:
        stop(started)
