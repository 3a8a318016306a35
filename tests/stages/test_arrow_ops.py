"""detector.common.arrow_ops: ``take_rows`` returns the rows of a (many-chunk) table at the given indices,
in the order of the indices (repeats allowed), without concatenating every chunk first; ``write_parquet``
writes the rows where ``keep`` is true (all rows without it), in order, cast to ``schema``, to one Parquet
file in row groups of ``rows_per_group`` rows, and returns how many rows it wrote.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from detector.common.arrow_ops import take_rows, write_parquet


def _chunked(n: int, chunk: int) -> pa.Table:
    """Rows 0..n-1 (``i`` and ``name`` = "r<i>") in chunks of ``chunk`` rows."""
    table = pa.table({"i": pa.array(range(n), pa.int64()), "name": [f"r{i}" for i in range(n)]})
    return pa.Table.from_batches(table.to_batches(max_chunksize=chunk))


@pytest.mark.parametrize("chunk", [3, 100])
def test_take_rows_returns_rows_in_the_order_of_the_indices(chunk: int) -> None:
    table = _chunked(10, chunk)
    taken = take_rows(table, np.array([9, 0, 4, 4, 3, 7]))
    assert taken.column("i").to_pylist() == [9, 0, 4, 4, 3, 7]
    assert taken.column("name").to_pylist() == ["r9", "r0", "r4", "r4", "r3", "r7"]
    assert taken.schema == table.schema


def test_take_rows_of_nothing_is_an_empty_table_with_the_schema() -> None:
    table = _chunked(10, 3)
    taken = take_rows(table, np.array([], dtype=np.int64))
    assert taken.num_rows == 0
    assert taken.schema == table.schema


def test_take_rows_of_an_empty_table_with_no_chunks() -> None:
    table = pa.table({"i": pa.array([], pa.int64())})
    assert take_rows(table, np.array([], dtype=np.int64)).num_rows == 0


def test_write_parquet_writes_the_kept_rows_in_order(tmp_path: Path) -> None:
    table = _chunked(10, 3)
    keep = np.array([i % 3 != 0 for i in range(10)])  # drops 0, 3, 6, 9
    path = tmp_path / "out.parquet"
    assert write_parquet(table, path, keep=keep, rows_per_group=4) == 6
    written = pq.read_table(path)
    assert written.column("i").to_pylist() == [1, 2, 4, 5, 7, 8]
    # groups are gathered from whole chunks until they hold rows_per_group rows: chunks 0-1 (rows 0-5),
    # chunks 2-3 (rows 6-9); each keeps its kept rows
    assert [g.num_rows for g in (pq.ParquetFile(path).metadata.row_group(j) for j in range(2))] == [4, 2]


def test_write_parquet_without_keep_writes_every_row_cast_to_the_schema(tmp_path: Path) -> None:
    table = _chunked(5, 2)
    schema = pa.schema([("i", pa.int32()), ("name", pa.large_string())])
    path = tmp_path / "out.parquet"
    assert write_parquet(table, path, schema=schema) == 5
    written = pq.read_table(path)
    assert written.schema.field("i").type == pa.int32()
    assert written.column("name").to_pylist() == ["r0", "r1", "r2", "r3", "r4"]


def test_write_parquet_of_nothing_kept_writes_an_empty_file(tmp_path: Path) -> None:
    table = _chunked(4, 2)
    path = tmp_path / "out.parquet"
    assert write_parquet(table, path, keep=np.zeros(4, dtype=bool)) == 0
    assert pq.read_table(path).num_rows == 0
    assert pq.read_schema(path).names == ["i", "name"]
