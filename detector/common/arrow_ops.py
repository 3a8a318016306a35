"""Arrow helpers that keep large tables cheap to touch."""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["take_rows", "write_parquet"]


def take_rows(table: pa.Table, indices: np.ndarray) -> pa.Table:
    """``table.take(indices)`` for a few rows of a large, many-chunk table, without concatenating every
    chunk first (which pyarrow's take does); rows come back in the order of ``indices``."""
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size == 0:
        return table.schema.empty_table()
    batches = table.to_batches()
    if len(batches) <= 1:
        return table.take(pa.array(indices))
    offsets = np.cumsum([0] + [b.num_rows for b in batches])
    order = np.argsort(indices, kind="stable")
    ordered = indices[order]
    chunk_of = np.searchsorted(offsets, ordered, side="right") - 1
    pieces = []
    for chunk in np.unique(chunk_of):
        local = ordered[chunk_of == chunk] - offsets[chunk]
        pieces.append(batches[chunk].take(pa.array(local)))
    gathered = pa.Table.from_batches(pieces, schema=table.schema).combine_chunks()
    restore = np.empty_like(order)
    restore[order] = np.arange(order.size)
    return gathered.take(pa.array(restore))


def _groups(table: pa.Table, rows_per_group: int) -> list[tuple[int, list[pa.RecordBatch]]]:
    groups: list[tuple[int, list[pa.RecordBatch]]] = []
    start = 0
    current: list[pa.RecordBatch] = []
    size = 0
    for batch in table.to_batches():
        current.append(batch)
        size += batch.num_rows
        if size >= rows_per_group:
            groups.append((start, current))
            start, current, size = start + size, [], 0
    if current:
        groups.append((start, current))
    return groups


def write_parquet(
    table: pa.Table,
    path: Path,
    *,
    keep: np.ndarray | None = None,
    schema: pa.Schema | None = None,
    rows_per_group: int = 1_000_000,
) -> int:
    """Write the rows of ``table`` where ``keep`` is true (all rows if None) to one Parquet file.

    Filtering a row group runs on a worker thread while the previous group is encoded, so the copy and
    the encoding (each single-threaded in pyarrow) overlap on two cores. Returns the rows written."""
    schema = schema or table.schema
    written = 0

    def prepare(start: int, batches: list[pa.RecordBatch]) -> pa.Table:
        part = pa.Table.from_batches(batches, schema=table.schema)
        if keep is not None:
            mask = keep[start : start + part.num_rows]
            if not mask.all():
                part = part.filter(pa.array(mask))
        return part.cast(schema)

    with (
        ThreadPoolExecutor(max_workers=2) as pool,
        pq.ParquetWriter(path, schema, compression="snappy") as writer,
    ):
        pending: deque[Future[pa.Table]] = deque()
        for start, batches in _groups(table, rows_per_group):
            pending.append(pool.submit(prepare, start, batches))
            if len(pending) > 2:
                part = pending.popleft().result()
                writer.write_table(part, row_group_size=rows_per_group)
                written += part.num_rows
        while pending:
            part = pending.popleft().result()
            writer.write_table(part, row_group_size=rows_per_group)
            written += part.num_rows
    return written
