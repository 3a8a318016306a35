"""Removing duplicates: exact copies of a row, and repeated keys (event_id, user_id, ...).

The first record in source order wins (files in bundle order, rows in file order). Candidates are found
with a 64-bit hash of the key (of the whole record when the key is missing) computed during validation;
every candidate is then confirmed by comparing the values themselves, so a hash collision can never merge
two different records.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from detector.common.arrow_ops import take_rows
from detector.common.sqlsafe import quote_literal
from detector.ingest.validate import KEY
from detector.tables.bundle import Table

__all__ = ["Dedup", "find_duplicates", "find_duplicates_across"]


@dataclass(frozen=True)
class Dedup:
    duplicate: np.ndarray
    """True for every row to drop (same length as the input)."""
    exact: int
    repeated_key: int

    @property
    def removed(self) -> int:
        return self.exact + self.repeated_key


def _first_occurrence(codes: np.ndarray) -> np.ndarray:
    """Codes numbered in order of first appearance: a row is the first of its code exactly when its
    code exceeds every code before it."""
    if codes.size == 0:
        return np.zeros(0, dtype=bool)
    running = np.maximum.accumulate(codes)
    return codes > np.concatenate([[-1], running[:-1]])


def _equal(table: pa.Table, columns: list[str], left: np.ndarray, right: np.ndarray) -> np.ndarray:
    subset = table.select(columns)
    a, b = take_rows(subset, left), take_rows(subset, right)
    equal = np.ones(len(left), dtype=bool)
    for name in columns:
        x, y = a.column(name), b.column(name)
        same = pc.or_(pc.fill_null(pc.equal(x, y), False), pc.and_(pc.is_null(x), pc.is_null(y)))
        equal &= same.to_numpy(zero_copy_only=False)
    return equal


def _repeated_hashes(con: duckdb.DuckDBPyConnection, hashes: np.ndarray) -> np.ndarray:
    """The hash values that occur more than once (a parallel hash aggregate in DuckDB)."""
    keys = pa.table({"h": hashes})
    con.register("_dedup_keys", keys)
    try:
        return con.sql("SELECT h FROM _dedup_keys GROUP BY h HAVING count(*) > 1").fetchnumpy()["h"]
    finally:
        con.unregister("_dedup_keys")


def find_duplicates(
    spec: Table, table: pa.Table, eligible: np.ndarray, con: duckdb.DuckDBPyConnection
) -> Dedup:
    """Mark duplicates among the ``eligible`` rows (those that passed validation) of ``table``, which
    carries the ``_key`` hash column."""
    duplicate = np.zeros(table.num_rows, dtype=bool)
    rows = np.flatnonzero(eligible)
    if rows.size < 2:
        return Dedup(duplicate, 0, 0)
    hashes = table.column(KEY).to_numpy()[rows]
    repeated = _repeated_hashes(con, hashes)
    if repeated.size == 0:
        return Dedup(duplicate, 0, 0)
    # A hash lookup of each row in the (small) set of repeated values; np.isin would sort all rows.
    involved = pd.Index(np.asarray(repeated, dtype=hashes.dtype)).get_indexer(hashes) >= 0
    rows, hashes = rows[involved], hashes[involved]
    codes, _ = pd.factorize(hashes)
    first = _first_occurrence(codes)
    candidates = np.flatnonzero(~first)
    if candidates.size == 0:
        return Dedup(duplicate, 0, 0)
    first_of_code = np.empty(int(codes.max()) + 1, dtype=np.int64)
    firsts = np.flatnonzero(first)
    first_of_code[codes[firsts]] = firsts
    dup_rows = rows[candidates]
    orig_rows = rows[first_of_code[codes[candidates]]]
    names = list(spec.names)
    whole = _equal(table, names, dup_rows, orig_rows)
    key = spec.key[0] if spec.key else None
    if key is not None:
        key_valid = pc.is_valid(take_rows(table.select([key]), dup_rows).column(0)).to_numpy(
            zero_copy_only=False
        )
        same_key = key_valid & _equal(table, [key], dup_rows, orig_rows)
    else:
        same_key = np.zeros(dup_rows.size, dtype=bool)
    confirmed = whole | same_key
    duplicate[dup_rows[confirmed]] = True
    exact = int((confirmed & whole).sum())
    return Dedup(duplicate, exact, int(confirmed.sum()) - exact)


def find_duplicates_across(
    spec: Table, keys: list[np.ndarray], parts: list[str], con: duckdb.DuckDBPyConnection
) -> tuple[list[np.ndarray], int, int]:
    """Duplicates between the already de-duplicated Parquet ``parts`` of one table (a day delivered as
    several files, each validated on its own so that memory stays bounded by the largest file).

    ``keys[i]`` holds the duplicate-detection hashes of part ``i``'s rows, in order. The first record in
    part order wins; candidates are confirmed value by value, read back from the parts. Returns, per
    part, the row numbers to drop, and the exact and repeated-key counts."""
    drop: list[np.ndarray] = [np.zeros(0, dtype=np.int64) for _ in parts]
    hashes = np.concatenate(keys) if keys else np.zeros(0, dtype=np.uint64)
    if hashes.size < 2:
        return drop, 0, 0
    repeated = _repeated_hashes(con, hashes)
    if repeated.size == 0:
        return drop, 0, 0
    rows = np.flatnonzero(pd.Index(np.asarray(repeated, dtype=hashes.dtype)).get_indexer(hashes) >= 0)
    codes, _ = pd.factorize(hashes[rows])
    first = _first_occurrence(codes)
    candidates = np.flatnonzero(~first)
    if candidates.size == 0:
        return drop, 0, 0
    first_of_code = np.empty(int(codes.max()) + 1, dtype=np.int64)
    firsts = np.flatnonzero(first)
    first_of_code[codes[firsts]] = firsts
    dup_rows, orig_rows = rows[candidates], rows[first_of_code[codes[candidates]]]
    # Read back only the rows involved: (part, row number) for each global row.
    offsets = np.cumsum([0] + [k.size for k in keys])
    wanted = np.unique(np.concatenate([dup_rows, orig_rows]))
    names = list(spec.names)
    pieces = []
    for i, path in enumerate(parts):
        local = wanted[(wanted >= offsets[i]) & (wanted < offsets[i + 1])] - offsets[i]
        if local.size:
            con.register("_wanted", pa.table({"wanted_row": local}))
            pieces.append(
                con.sql(f"""
                    SELECT {", ".join(names)}, file_row_number + {int(offsets[i])} AS _row
                    FROM read_parquet({quote_literal(path)}, file_row_number = true)
                    WHERE file_row_number IN (SELECT wanted_row FROM _wanted) ORDER BY file_row_number
                """).to_arrow_table()
            )
            con.unregister("_wanted")
    fetched = pa.concat_tables(pieces)
    position = pd.Index(fetched.column("_row").to_numpy()).get_indexer
    dup_at, orig_at = position(dup_rows), position(orig_rows)
    whole = _equal(fetched, names, dup_at, orig_at)
    key = spec.key[0] if spec.key else None
    if key is not None:
        valid = pc.is_valid(take_rows(fetched.select([key]), dup_at).column(0)).to_numpy(zero_copy_only=False)
        same_key = valid & _equal(fetched, [key], dup_at, orig_at)
    else:
        same_key = np.zeros(dup_rows.size, dtype=bool)
    confirmed = whole | same_key
    removed = dup_rows[confirmed]
    for i in range(len(parts)):
        drop[i] = removed[(removed >= offsets[i]) & (removed < offsets[i + 1])] - offsets[i]
    exact = int((confirmed & whole).sum())
    return drop, exact, int(confirmed.sum()) - exact
