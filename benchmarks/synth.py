"""Fast, vectorised generator of large canonical access logs for benchmarks.

The sample hospital generator (``sample_logs``) models a hospital carefully but is not built for tens of
millions of rows; this module writes realistic-looking volume quickly: skewed user activity, bursts of
events per lookup, ISO timestamps with the site's UTC offset across a DST change, and a small share of
malformed and duplicated rows, so that ingestion does real work.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from detector.tables.bundle import ACCESS_LOG, ACTIONS, RESOURCE_TYPES

__all__ = ["write_access_log"]


def write_access_log(
    path: Path,
    rows: int,
    *,
    seed: int = 0,
    users: int = 20_000,
    patients: int = 2_000_000,
    bad_fraction: float = 0.0005,
    dup_fraction: float = 0.0005,
    chunk: int = 2_000_000,
) -> int:
    """Write about ``rows`` data rows of canonical access_log CSV to ``path`` (plus the duplicated
    sliver); returns the rows written."""
    rng = np.random.default_rng(seed)
    actions = np.array(ACTIONS)
    action_p = np.array([0.80, 0.03, 0.08, 0.002, 0.03, 0.01, 0.045, 0.003])
    resources = np.array(RESOURCE_TYPES)
    written = total = 0
    # 2026-03-08 07:00 UTC is the US Eastern spring-forward instant: the log crosses it.
    t0 = np.datetime64("2026-03-07T05:00:00", "s")
    with path.open("wb") as sink:
        header = True
        while written < rows:
            n = min(chunk, rows - written)
            secs = np.sort(rng.integers(0, 2 * 86_400, n))
            utc = t0 + secs.astype("timedelta64[s]")
            dst = utc >= np.datetime64("2026-03-08T07:00:00", "s")
            local = utc - np.where(dst, 4, 5).astype("timedelta64[h]")
            ts = np.char.add(
                np.datetime_as_string(local, unit="s").astype("U19"),
                np.where(dst, "-04:00", "-05:00"),
            )
            user = rng.zipf(1.3, n) % users
            patient = rng.integers(0, patients, n)
            cols = {
                "timestamp": ts,
                "user_id": np.char.add("U", user.astype("U7")),
                "patient_id": np.char.add("P", patient.astype("U8")),
                "action": actions[rng.choice(len(actions), n, p=action_p)],
                "resource_type": resources[rng.integers(0, len(resources), n)],
                "event_id": np.char.add("E", (np.arange(n) + written).astype("U10")),
                "workstation_id": np.char.add("WS", (user % 5000).astype("U5")),
                "outcome": np.where(rng.random(n) < 0.01, "failure", "success"),
                "break_glass": np.where(rng.random(n) < 0.0005, "true", "false"),
            }
            bad = rng.random(n) < bad_fraction
            cols["action"] = np.where(bad, "frobnicate", cols["action"])
            table = pa.table({name: pa.array(cols[name]) for name in ACCESS_LOG.names})
            # A sliver of exact duplicates, as exports that overlap produce.
            dup = np.flatnonzero(rng.random(n) < dup_fraction)
            if dup.size:
                table = pa.concat_tables([table, table.take(pa.array(dup))])
            pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=header, quoting_style="none"))
            header = False
            written += n
            total += table.num_rows
    return total
