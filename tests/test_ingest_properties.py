"""Nothing is lost: for any mix of valid rows and garbage (random text with commas, quotes, line breaks,
empty fields, unicode, wrong field counts), every row read is accepted, rejected or a duplicate; the
accepted rows are exactly the valid rows that do not repeat an earlier one; and every garbage row is in
rejects.csv, with its original content, at the line on which it starts in the file."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.tables.bundle import ACCESS_LOG

NAMES = ACCESS_LOG.names
SITE_ZONE = "America/New_York"
UTC = dt.UTC

# Written timestamps and their instants in the site zone; two spellings share an instant, so exact
# duplicates are found on canonical values, not on text.
TIMESTAMPS = {
    "2026-03-09T14:00:00Z": dt.datetime(2026, 3, 9, 14, 0, tzinfo=UTC),
    "2026-03-09T09:00:00-05:00": dt.datetime(2026, 3, 9, 14, 0, tzinfo=UTC),
    "2026-11-01T01:30:00": dt.datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
    "2026-03-08T03:00:00": dt.datetime(2026, 3, 8, 7, 0, tzinfo=UTC),
    "2026-03-10 23:59:59": dt.datetime(2026, 3, 11, 3, 59, 59, tzinfo=UTC),
}
BOOLEANS = {"": None, "true": True, "N": False}

valid_rows = st.fixed_dictionaries(
    {
        "timestamp": st.sampled_from(sorted(TIMESTAMPS)),
        "user_id": st.sampled_from(["u1", "u2"]),
        "patient_id": st.sampled_from(["MRN1", "MRN2", "MRN3"]),
        "action": st.sampled_from(["view", "Print", "export"]),
        "resource_type": st.sampled_from(["", "note", "Lab"]),
        "event_id": st.sampled_from(["", "", "e1", "e2", "e3", "e4"]),
        "workstation_id": st.sampled_from(["", "ws1"]),
        "outcome": st.sampled_from(["", "success", "FAILURE"]),
        "break_glass": st.sampled_from(sorted(BOOLEANS)),
    }
).map(lambda row: [row[name] for name in NAMES])

# Random text built from CSV-hostile pieces and any printable character; no lone carriage returns or other
# control characters (a lone CR is a line break to some readers and not to others).
garbage_text = st.lists(
    st.one_of(
        st.sampled_from(
            [",", '"', "\n", "\r\n", " ", "", "view", "2026-03-09", "T10:00", "Z", "é", "😀", "\u2028"]
        ),
        st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
    ),
    max_size=6,
).map("".join)


def _unknown_action(row: list[str]) -> list[str]:
    """A garbage row long enough to hold an action gets one outside the vocabulary, so it is never valid
    (the reader drops trailing empty fields, so a longer row may still be read as a full one)."""
    if len(row) >= len(NAMES):
        row = [*row]
        row[NAMES.index("action")] = "?" + row[NAMES.index("action")]
    return row


garbage_rows = st.one_of(
    st.lists(garbage_text, min_size=len(NAMES), max_size=len(NAMES)),
    st.lists(garbage_text, min_size=1, max_size=2 * len(NAMES)),
).map(_unknown_action)

mixes = st.lists(
    st.one_of(
        valid_rows.map(lambda row: ("valid", row)),
        garbage_rows.map(lambda row: ("garbage", row)),
        st.just(("blank", [])),  # a blank line holds no record
    ),
    min_size=1,
    max_size=30,
)


def _canonical(row: list[str]) -> tuple[Any, ...]:
    value = dict(zip(NAMES, row, strict=True))
    text = {name: (value[name].strip().lower() or None) for name in ("action", "resource_type", "outcome")}
    return (
        TIMESTAMPS[value["timestamp"]],
        value["user_id"],
        value["patient_id"],
        text["action"],
        text["resource_type"],
        value["event_id"] or None,
        value["workstation_id"] or None,
        text["outcome"],
        BOOLEANS[value["break_glass"]],
    )


def _expected_accepted(valid: list[list[str]]) -> list[tuple[Any, ...]]:
    """The first row of each event_id, and the first copy of each row without one, in source order."""
    kept: list[tuple[Any, ...]] = []
    keys: set[str] = set()
    for row in map(_canonical, valid):
        event_id = row[NAMES.index("event_id")]
        if (event_id in keys) if event_id else (row in kept):
            continue
        if event_id:
            keys.add(event_id)
        kept.append(row)
    return kept


def _write_csv(path: Path, rows: list[list[str]]) -> list[int]:
    """Write the file and return the physical line on which each row starts (header = line 1); an empty
    row is written as a blank line."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(NAMES)
    starts = []
    for row in rows:
        starts.append(buffer.getvalue().count("\n") + 1)
        if row:
            writer.writerow(row)
        else:
            buffer.write("\n")
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return starts


def _raw_holds(reject: dict[str, str], row: list[str]) -> bool:
    """Whether a reject's raw content is the row: its original line, or its fields as JSON (a row with
    trailing empty fields beyond the header is read without them)."""
    if reject["reason"] in ("wrong_field_count", "malformed_row"):
        return next(csv.reader(io.StringIO(reject["raw"], newline=""))) == row
    raw = json.loads(reject["raw"])
    head, tail = row[: len(NAMES)], row[len(NAMES) :]
    return [raw[name] or "" for name in NAMES] == head and not any(tail)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mix=mixes)
def test_garbage_is_rejected_and_nothing_is_lost(tmp_path_factory, ingest_run, mix):
    rows = [row for _, row in mix]
    bundle = tmp_path_factory.mktemp("bundle")
    starts = _write_csv(bundle / "access_log.csv", rows)

    # ingest_run also checks rows_read == accepted + rejected + duplicates against rejects.csv.
    run = ingest_run(bundle, out=tmp_path_factory.mktemp("run") / "out", timezone=SITE_ZONE)

    assert run.counts()["rows_read"] == sum(1 for kind, _ in mix if kind != "blank")
    accepted = [
        tuple(r[name].astimezone(UTC) if name == "timestamp" else r[name] for name in NAMES)
        for r in run.rows()
    ]
    assert accepted == _expected_accepted([row for kind, row in mix if kind == "valid"])
    garbage_at = {line: row for line, (kind, row) in zip(starts, mix, strict=True) if kind == "garbage"}
    assert sorted(int(r["line"]) for r in run.rejects) == sorted(garbage_at)
    for reject in run.rejects:
        assert _raw_holds(reject, garbage_at[int(reject["line"])])
