"""CSV files meant for people, safe to open in a spreadsheet; the exact content kept beside them.

A cell that starts with ``=``, ``+``, ``-`` or ``@`` (also after leading white space), or with a tab or a
carriage return, is a formula to Excel, LibreOffice and Google Sheets: a reject's raw line or a note can
run a command or leak data when a privacy officer opens the file. As OWASP recommends, such a cell is
written with a single quote in front (plain numbers such as ``-3`` or ``+1.5`` are left alone). The
quote changes the text, so whatever needs the exact content reads the machine form: ``rejects.jsonl``
beside every ``rejects.csv`` (one JSON object per reject, every column, the raw content byte for byte),
and ``--format json`` for the review commands.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

__all__ = ["RISKY", "safe_cell", "safe_table", "write_rejects"]

RISKY = r"^(?:[\t\r]|\s*[=+\-@])"
"""A cell a spreadsheet would read as a formula."""
_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
_RISKY_RE, _NUMBER_RE = re.compile(RISKY), re.compile(_NUMBER)


def safe_cell(text: str) -> str:
    """``text`` with a single quote in front when a spreadsheet would read it as a formula."""
    if _RISKY_RE.match(text) and not _NUMBER_RE.match(text):
        return "'" + text
    return text


def safe_table(table: pa.Table) -> pa.Table:
    """Every text column of ``table`` with its formula-like cells quoted (``safe_cell``)."""
    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            risky = pc.and_(
                pc.match_substring_regex(column, RISKY),
                pc.invert(pc.match_substring_regex(column, _NUMBER)),
            )
            quoted = pc.binary_join_element_wise(pa.scalar("'", column.type), column, "")
            column = pc.if_else(pc.fill_null(risky, False), quoted, column)
        columns.append(column)
    return pa.table(columns, schema=table.schema)


def write_rejects(rejects: pa.Table, path: Path) -> None:
    """``rejects.csv`` at ``path`` for people (spreadsheet-safe) and ``rejects.jsonl`` beside it with the
    exact records (every column; ``raw`` is the original content)."""
    pacsv.write_csv(safe_table(rejects), path)
    with path.with_suffix(".jsonl").open("w", encoding="utf-8") as handle:
        for batch in rejects.to_batches(max_chunksize=65_536):  # ASCII JSON: one record a line anywhere
            rows: list[dict[str, Any]] = batch.to_pylist()
            handle.write("".join(json.dumps(r) + "\n" for r in rows))
