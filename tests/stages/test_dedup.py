"""detector.ingest.dedup: among the rows that passed validation, a row is a duplicate when it is an exact
copy of an earlier row (every canonical column equal, NULL equal to NULL) or repeats an earlier row's key
(``event_id`` for the access log); the first record in source order wins. The ``_key`` hash column only
proposes candidates: every candidate is confirmed on the values, so a hash collision never drops a row.
``find_duplicates_across`` does the same between the Parquet parts of one table, the earlier part winning.

The ``_key`` values below are written by hand (as validation would compute them: the key's hash, or the
whole record's when the key is missing), including deliberate collisions.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from detector.ingest.dedup import Dedup, find_duplicates, find_duplicates_across
from detector.ingest.validate import KEY
from detector.tables.bundle import ACCESS_LOG, USERS, Table


def _event(event_id: str | None, user: str = "u1", patient: str = "p1", **other: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "timestamp": dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.UTC),
        "user_id": user,
        "patient_id": patient,
        "action": "view",
        "resource_type": "note",
        "event_id": event_id,
        "workstation_id": None,
        "outcome": "success",
        "break_glass": False,
    }
    return row | other


def _table(rows: list[dict[str, Any]], keys: list[int], spec: Table = ACCESS_LOG) -> pa.Table:
    """The rows as validation leaves them: the canonical typed columns and the ``_key`` hash."""
    table = pa.Table.from_pylist(rows, schema=spec.arrow_schema("UTC"))
    return table.append_column(KEY, pa.array(keys, pa.uint64()))


def _find(rows: list[dict[str, Any]], keys: list[int], eligible: list[bool] | None = None) -> Dedup:
    mask = np.ones(len(rows), dtype=bool) if eligible is None else np.array(eligible)
    return find_duplicates(ACCESS_LOG, _table(rows, keys), mask, duckdb.connect())


def test_exact_copies_and_repeated_keys_are_dropped_the_first_record_wins() -> None:
    rows = [
        _event("e1"),  # 0
        _event("e1"),  # 1: exact copy of 0
        _event("e2", patient="p2"),  # 2
        _event("e2", user="u9", patient="p9"),  # 3: repeats 2's event_id with other values
        _event("e3", patient="p3"),  # 4: its hash collides with 0's; nothing else in common: kept
        _event(None, patient="p5"),  # 5: no event_id: hashed as a whole record
        _event(None, patient="p5"),  # 6: exact copy of 5 (NULLs in the same places)
        _event(None, patient="p7"),  # 7: collides with 5's whole-record hash: kept
    ]
    keys = [11, 11, 22, 22, 11, 55, 55, 55]
    found = _find(rows, keys)
    assert found.duplicate.tolist() == [False, True, False, True, False, False, True, False]
    assert (found.exact, found.repeated_key, found.removed) == (2, 1, 3)


def test_a_row_repeating_a_key_and_its_values_counts_as_exact() -> None:
    found = _find([_event("e1"), _event("e1"), _event("e1", action="print")], [1, 1, 1])
    assert found.duplicate.tolist() == [False, True, True]
    assert (found.exact, found.repeated_key) == (1, 1)


def test_only_eligible_rows_take_part() -> None:
    rows = [_event("e1"), _event("e1"), _event("e1"), _event("e2")]
    # row 0 failed validation: row 1 is the first eligible record and wins; row 3 is alone
    found = _find(rows, [1, 1, 1, 2], eligible=[False, True, True, True])
    assert found.duplicate.tolist() == [False, False, True, False]
    assert found.removed == 1


@pytest.mark.parametrize("eligible", [[False, False], [True, False]])
def test_fewer_than_two_eligible_rows_have_no_duplicates(eligible: list[bool]) -> None:
    found = _find([_event("e1"), _event("e1")], [1, 1], eligible)
    assert found.duplicate.tolist() == [False, False]
    assert found.removed == 0


def test_rows_with_different_hashes_are_never_compared() -> None:
    # Equal values under different hashes are not merged: the hash decides who is a candidate.
    found = _find([_event("e1"), _event("e1")], [1, 2])
    assert found.duplicate.tolist() == [False, False]


def test_a_table_without_a_key_drops_exact_copies_only() -> None:
    users = [
        {name: None for name in USERS.names} | {"user_id": "u1", "role": "nurse"},
        {name: None for name in USERS.names} | {"user_id": "u1", "role": "nurse"},
        {name: None for name in USERS.names} | {"user_id": "u1", "role": "doctor"},
    ]
    keys = [7, 7, 7]
    with_key = find_duplicates(USERS, _table(users, keys, USERS), np.ones(3, dtype=bool), duckdb.connect())
    assert with_key.duplicate.tolist() == [False, True, True]  # users are keyed on user_id
    assert (with_key.exact, with_key.repeated_key) == (1, 1)
    keyless = Table(USERS.name, USERS.columns, key=())
    without = find_duplicates(keyless, _table(users, keys, USERS), np.ones(3, dtype=bool), duckdb.connect())
    assert without.duplicate.tolist() == [False, True, False]
    assert (without.exact, without.repeated_key) == (1, 0)


def test_many_chunks_are_handled_like_one() -> None:
    rows = [_event(f"e{i % 3}", patient=f"p{i}") for i in range(9)]  # e0 e1 e2 e0 e1 e2 ...
    table = _table(rows, [i % 3 for i in range(9)])
    chunked = pa.Table.from_batches(table.to_batches(max_chunksize=2))
    assert chunked.column(0).num_chunks == 5
    found = find_duplicates(ACCESS_LOG, chunked, np.ones(9, dtype=bool), duckdb.connect())
    assert found.duplicate.tolist() == [False] * 3 + [True] * 6
    assert (found.exact, found.repeated_key) == (0, 6)


def _part(path: Path, rows: list[dict[str, Any]]) -> str:
    pq.write_table(pa.Table.from_pylist(rows, schema=ACCESS_LOG.arrow_schema("UTC")), path)
    return str(path)


def test_duplicates_across_parts_are_dropped_from_the_later_part(tmp_path: Path) -> None:
    first = [_event("e1"), _event("e2", patient="p2"), _event(None, patient="p3")]
    second = [
        _event("e4", patient="p4"),  # 0: new
        _event("e1"),  # 1: exact copy of first[0]
        _event("e2", user="u9"),  # 2: repeats first[1]'s key
        _event("e5", patient="p5"),  # 3: collides with first[0]'s hash: kept
        _event(None, patient="p3"),  # 4: exact copy of first[2] (no key)
    ]
    third = [_event("e4", patient="p4"), _event("e6")]  # 0: exact copy of second[0]
    parts = [_part(tmp_path / f"{i}.parquet", rows) for i, rows in enumerate([first, second, third])]
    keys = [
        np.array([1, 2, 3], dtype=np.uint64),
        np.array([4, 1, 2, 1, 3], dtype=np.uint64),
        np.array([4, 6], dtype=np.uint64),
    ]
    drop, exact, repeated = find_duplicates_across(ACCESS_LOG, keys, parts, duckdb.connect())
    assert [d.tolist() for d in drop] == [[], [1, 2, 4], [0]]
    assert (exact, repeated) == (3, 1)


def test_parts_without_repeated_hashes_drop_nothing(tmp_path: Path) -> None:
    parts = [_part(tmp_path / "a.parquet", [_event("e1")]), _part(tmp_path / "b.parquet", [_event("e2")])]
    keys = [np.array([1], dtype=np.uint64), np.array([2], dtype=np.uint64)]
    drop, exact, repeated = find_duplicates_across(ACCESS_LOG, keys, parts, duckdb.connect())
    assert [d.tolist() for d in drop] == [[], []]
    assert (exact, repeated) == (0, 0)
