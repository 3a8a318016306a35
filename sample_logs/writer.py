"""Writing bundle files: CSV text built column-wise with Arrow, gzip without a timestamp, atomic rename.

Values are quoted only when they must be (a comma, a quote or a line break), as the ``csv`` module's
minimal quoting does. Gzip headers carry no file name and mtime 0, so equal content gives equal bytes.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

FORMATS: tuple[str, ...] = ("csv", "csv.gz")


def text(values: object) -> pa.Array:
    """An Arrow string array of ``values`` (a NumPy array or list of str)."""
    return pa.array(values, type=pa.string())


def quoted(values: pa.Array) -> pa.Array:
    """CSV fields: values with a comma, quote or line break are quoted, quotes doubled."""
    needs = pc.match_substring_regex(values, r'[,"\r\n]')
    if not pc.any(needs).as_py():
        return values
    escaped = pc.binary_join_element_wise('"', pc.replace_substring(values, '"', '""'), '"', "")
    return pc.if_else(needs, escaped, values)


def lines(columns: Sequence[pa.Array]) -> pa.Array:
    """One CSV line per row, each ending in a newline."""
    cols = [quoted(c) for c in columns]
    cols[-1] = pc.binary_join_element_wise(cols[-1], "\n", "")
    return pc.binary_join_element_wise(*cols, ",")


def joined(rows: pa.Array | pa.ChunkedArray) -> bytes:
    """The concatenated bytes of a string array (its data buffer between the first and last offset); a
    chunked one (Arrow chunks text past 2 GiB) chunk by chunk."""
    if isinstance(rows, pa.ChunkedArray):
        return b"".join(joined(chunk) for chunk in rows.chunks)
    if len(rows) == 0:
        return b""
    width = np.dtype(np.int64 if pa.types.is_large_string(rows.type) else np.int32)
    offsets = np.frombuffer(
        rows.buffers()[1], dtype=width, count=len(rows) + 1, offset=rows.offset * width.itemsize
    )
    data = rows.buffers()[2]
    return memoryview(data)[int(offsets[0]) : int(offsets[-1])].tobytes()


def table_bytes(header: Sequence[str], columns: Sequence[pa.Array]) -> bytes:
    return (",".join(header) + "\n").encode() + joined(lines(columns))


def file_name(stem: str, fmt: str) -> str:
    return f"{stem}.{fmt}"


def write(path: Path, body: bytes, fmt: str) -> None:
    """Write ``body`` (CSV text) to ``path``, gzipped for csv.gz, atomically."""
    data = gzip.compress(body, compresslevel=6, mtime=0) if fmt == "csv.gz" else body
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
