"""A generated hospital's access log written as an Epic-style access log extract (issue 14).

``write_epic_extract(bundle, out)`` reads a bundle written by ``generate_bundle`` and writes the same
hospital with its access log as an Epic-style extract (the 17 columns ``EPIC_COLUMNS``, one
``YYYY-MM-DD.csv[.gz]`` per local day, rows in ``ACCESS_INSTANT`` order):

* each clean canonical event once (the bundle's dirty rows, duplicates and malformed ones, are not
  carried over): ``ACCESS_INSTANT`` seconds since 1840-12-31 UTC, ``ACCESS_TIME`` the site's wall clock
  (so the fall-back hour's two passes share an ``ACCESS_TIME`` and differ by instant), ``PROCESS_ID``
  unique per row, a METRIC_NAME that means the event's action, resource type, outcome and break-the-glass
  (``epic_metrics``: the default catalogue's names and made-up ones in a generated site catalogue, to
  about ``metric_names`` distinct names, ``unmapped`` of them in no catalogue);
* break-the-glass events half by a break-the-glass metric name, half by a ``BTG_REASON`` and
  ``BTG_EXPLANATION`` beside an ordinary metric;
* about ``patientless`` of the rows added that concern no patient: log-ins, log-offs, system lists
  (skipped ``not_patient_access``) and searches with no patient selected (skipped ``no_patient``), each
  made from a real event's user and workstation shortly before it.

Users, patients and encounters are copied unchanged; mapping.toml keeps the bundle's ``[site]`` and adds
``[access_log] format = "epic"``, the site catalogue and ``default_action = "view"``; ground_truth.json
keeps the incidents and says what the extract holds (``epic``), so ingesting it accounts exactly:
``rows_read = accepted + skipped``, ``accepted`` the bundle's clean events, ``defaulted_action`` the rows
with an unmapped name. ``out`` may be ``bundle`` itself (the canonical access log is then replaced).
"""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from detector.tables.bundle import ACCESS_LOG, ENCOUNTERS, PATIENTS, USERS

from .epic_metrics import NO_PATIENT_NAMES, UNMAPPED_KIND, Kind, MetricPlan, assign, plan_metrics
from .writer import FORMATS, joined, lines, text, write

__all__ = ["EPIC_COLUMNS", "EpicExtract", "write_epic_extract"]

EPIC_COLUMNS = (
    "ACCESS_INSTANT", "PROCESS_ID", "ACCESS_TIME", "USER_ID", "SYSTEM_LOGIN", "WORKSTATION_ID",
    "DEPARTMENT_NAME", "METRIC_ID", "METRIC_NAME", "METRIC_GROUP", "ACCESS_ACTION", "REPORT_NAME",
    "PAT_ID", "PAT_MRN_ID", "CSN", "BTG_REASON", "BTG_EXPLANATION",
)  # fmt: skip
UNIX_FROM_EPIC = 4_070_908_800
"""Seconds from Epic's day zero (1840-12-31 00:00 UTC) to 1970-01-01."""
SITE_CATALOGUE = "site_metrics.toml"
_ACCESS_ACTION = {
    "view": "Query/View", "create": "Create", "update": "Modify", "delete": "Delete", "print": "Print",
    "export": "Export", "query": "Query/View", "download": "Export",
}  # fmt: skip
_BTG_REASONS = ("Emergency", "Direct patient care", "Consult requested", "Patient transferred")
_FIRST_PROCESS = 100_001


@dataclass(frozen=True)
class EpicExtract:
    """What ``write_epic_extract`` wrote."""

    out_dir: Path
    access_log_files: tuple[Path, ...]
    rows: int
    events: int
    skipped: dict[str, int]
    defaulted_action: int
    metric_names: int
    unmapped_names: int
    break_glass: dict[str, int]
    fall_back_rows: int
    site_catalogue: Path

    def summary(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "events": self.events,
            "skipped": self.skipped,
            "defaulted_action": self.defaulted_action,
            "metric_names": self.metric_names,
            "unmapped_names": self.unmapped_names,
            "break_glass": self.break_glass,
            "fall_back_rows": self.fall_back_rows,
        }


def _clean_events(bundle: Path, events: int) -> pa.Table:
    """The bundle's clean events, each once: ids ``E1..E{events}`` (dirty rows carry later ids or repeat
    an earlier row's), first seen in file order."""
    files = sorted(f for f in (bundle / ACCESS_LOG.name).iterdir() if f.name.endswith((".csv", ".csv.gz")))
    options = pacsv.ConvertOptions(column_types=dict.fromkeys(ACCESS_LOG.names, pa.string()))
    parse = pacsv.ParseOptions(invalid_row_handler=lambda _row: "skip")
    table = pa.concat_tables(pacsv.read_csv(f, parse_options=parse, convert_options=options) for f in files)
    ids = table.column("event_id").to_numpy(zero_copy_only=False).astype(str)
    number = np.char.lstrip(ids, "E")
    numeric = np.char.isdigit(number)
    value = np.where(numeric, np.where(numeric, number, "0"), "0").astype(np.int64)
    _, first = np.unique(ids, return_index=True)
    keep = np.zeros(len(ids), dtype=np.bool_)
    keep[first] = True
    keep &= numeric & (value >= 1) & (value <= events)
    clean = table.filter(pa.array(keep))
    if clean.num_rows != events:
        raise ValueError(f"{bundle}: expected {events:,} clean events, found {clean.num_rows:,}")
    return clean


def _utc(timestamps: pa.ChunkedArray) -> np.ndarray:
    moments = pc.strptime(timestamps, format="%Y-%m-%dT%H:%M:%S%z", unit="s")
    return np.asarray(moments.cast(pa.int64()).to_numpy(), dtype=np.int64)


def _wall(utc: np.ndarray, zone: str) -> pa.Array:
    moments = pa.array(utc, pa.timestamp("s", tz=zone))
    return pc.strftime(pc.local_timestamp(moments), "%Y-%m-%d %H:%M:%S")


def _fall_back(utc: np.ndarray, zone: str) -> int:
    """Rows whose wall-clock time the site's clock shows twice (an hour apart)."""
    here = _wall(utc, zone)
    later, earlier = _wall(utc + 3600, zone), _wall(utc - 3600, zone)
    twice = pc.or_(pc.equal(here, later), pc.equal(here, earlier))
    return int(pc.sum(twice).as_py() or 0)


def _kinds(events: pa.Table, glass_by_reason: np.ndarray) -> tuple[np.ndarray, list[Kind]]:
    """Each event's kind index and the kinds; break-the-glass events told by a reason take the kind of
    the same access without break-the-glass (their metric is an ordinary one)."""
    glass = events.column("break_glass").to_numpy(zero_copy_only=False) == "true"
    glass &= ~glass_by_reason
    keys = np.char.add(
        np.char.add(events.column("action").to_numpy(zero_copy_only=False).astype(str), "|"),
        np.char.add(
            np.char.add(events.column("resource_type").to_numpy(zero_copy_only=False).astype(str), "|"),
            np.char.add(events.column("outcome").to_numpy(zero_copy_only=False).astype(str), "|"),
        ),
    )
    keys = np.char.add(keys, np.where(glass, "1", "0"))
    distinct, index = np.unique(keys, return_inverse=True)
    kinds: list[Kind] = []
    for key in distinct.tolist():
        action, resource, outcome, flag = key.split("|")
        kinds.append((action, resource, outcome, flag == "1"))
    return index, kinds


def _event_metrics(
    rng: np.random.Generator, events: pa.Table, *, total: int, unmapped: int
) -> tuple[np.ndarray, np.ndarray, MetricPlan]:
    """Each event's METRIC_NAME, whether it is break-the-glass by reason, and the plan behind the names."""
    n = events.num_rows
    glass = events.column("break_glass").to_numpy(zero_copy_only=False) == "true"
    by_reason = glass & (rng.random(n) < 0.5)
    index, kinds = _kinds(events, by_reason)
    plain = kinds.index(UNMAPPED_KIND) if UNMAPPED_KIND in kinds else -1
    to_unmapped = (index == plain) & (rng.random(n) < 0.002) if plain >= 0 else np.zeros(n, dtype=np.bool_)
    counts = np.bincount(index[~to_unmapped], minlength=len(kinds))
    plan = plan_metrics(
        {k: int(c) for k, c in zip(kinds, counts, strict=True)},
        total=total,
        unmapped=unmapped,
        unmapped_rows=int(to_unmapped.sum()),
    )
    names = np.empty(n, dtype=object)
    for i, kind in enumerate(kinds):
        rows = np.flatnonzero((index == i) & ~to_unmapped)
        if len(rows):
            pool = plan.pools[kind]
            names[rows] = np.array(pool, dtype=object)[assign(rng, pool, len(rows))]
    rows = np.flatnonzero(to_unmapped)
    if len(rows):
        names[rows] = np.array(plan.unmapped, dtype=object)[assign(rng, plan.unmapped, len(rows))]
    return names, by_reason, plan


def _patientless(
    rng: np.random.Generator, events: pa.Table, utc: np.ndarray, share: float, skip: list[str]
) -> tuple[pa.Table, np.ndarray, np.ndarray, int]:
    """Rows that concern no patient, made from random events' users and workstations a little before
    them: their columns, instants, METRIC_NAMEs, and how many are ``no_patient`` (the rest are skip
    names, ``not_patient_access``)."""
    n = events.num_rows
    m = round(n * share / (1 - share)) if 0 < share < 1 else 0
    source = np.sort(rng.integers(0, n, m)) if n else np.zeros(0, dtype=np.int64)
    rows = events.select(["user_id", "workstation_id"]).take(pa.array(source))
    when = utc[source] - rng.integers(1, 600, m)
    no_patient = rng.random(m) < 0.15
    names = np.array(skip, dtype=object)[assign(rng, skip, m)]
    if no_patient.any():
        picks = assign(rng, list(NO_PATIENT_NAMES), int(no_patient.sum()))
        names[no_patient] = np.array(NO_PATIENT_NAMES, dtype=object)[picks]
    return rows, when, names, int(no_patient.sum())


_GROUP = {
    "note": "Notes", "lab": "Results", "medication": "Medications", "order": "Orders", "vitals": "Flowsheets",
    "demographics": "Demographics", "problem_list": "Problem List", "billing": "Billing", "image": "Imaging",
    "report": "Reports", "schedule": "Scheduling",
}  # fmt: skip


def _column(values: Any) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    return values if isinstance(values, pa.Array) else text(np.asarray(values, dtype=object))


def _mapped(values: pa.Array | pa.ChunkedArray, table: dict[str, str]) -> np.ndarray:
    keys = np.asarray(values.to_numpy(zero_copy_only=False), dtype=object)
    return np.array([table.get(k, "") for k in keys.tolist()], dtype=object)


def _departments(bundle: Path, fmt: str) -> dict[str, str]:
    users = pacsv.read_csv(bundle / f"{USERS.name}.{fmt}").select(["user_id", "department"]).to_pylist()
    return {str(u["user_id"]): str(u["department"] or "").upper() for u in users}


def _access_rows(
    events: pa.Table, names: np.ndarray, by_reason: np.ndarray, rng: np.random.Generator
) -> dict[str, Any]:
    """The Epic columns of the events (without instants, times and process ids)."""
    n = events.num_rows
    patient = events.column("patient_id")
    reasons = np.where(by_reason, np.array(_BTG_REASONS, dtype=object)[rng.integers(0, 4, n)], "")
    return {
        "USER_ID": events.column("user_id"),
        "WORKSTATION_ID": events.column("workstation_id"),
        "METRIC_NAME": names,
        "METRIC_GROUP": _mapped(events.column("resource_type"), _GROUP),
        "ACCESS_ACTION": _mapped(events.column("action"), _ACCESS_ACTION),
        "REPORT_NAME": _mapped(events.column("resource_type"), {"report": "Patient summary"}),
        "PAT_ID": patient,
        "PAT_MRN_ID": pc.binary_join_element_wise("MRN", pc.utf8_slice_codeunits(patient, 1), ""),
        "BTG_REASON": reasons,
        "BTG_EXPLANATION": np.where(by_reason, "Access needed for the patient's care, see note", ""),
    }


def _blank_rows(rows: pa.Table, names: np.ndarray) -> dict[str, Any]:
    m = rows.num_rows
    empty = np.full(m, "", dtype=object)
    group = np.where(np.isin(names, NO_PATIENT_NAMES), "Patient Lookup", "Security")
    return {
        "USER_ID": rows.column("user_id"),
        "WORKSTATION_ID": rows.column("workstation_id"),
        "METRIC_NAME": names,
        "METRIC_GROUP": group,
        "ACCESS_ACTION": np.full(m, "Query/View", dtype=object),
        "REPORT_NAME": empty,
        "PAT_ID": empty,
        "PAT_MRN_ID": empty,
        "BTG_REASON": empty,
        "BTG_EXPLANATION": empty,
    }


def _extract_table(
    parts: list[dict[str, Any]], utc: np.ndarray, zone: str, departments: dict[str, str]
) -> pa.Table:
    """The rows of ``parts`` (same columns) in instant order, with instants, wall times, process ids,
    logins, departments and metric ids."""
    order = np.argsort(utc, kind="stable")
    take = pa.array(order)
    merged = {name: pa.concat_arrays([_column(p[name]) for p in parts]).take(take) for name in parts[0]}
    utc = utc[order]
    user = merged["USER_ID"]
    metric = merged["METRIC_NAME"]
    ids = {name: str(17_001 + i) for i, name in enumerate(sorted(set(metric.to_pylist())))}
    columns = {
        "ACCESS_INSTANT": text((utc + UNIX_FROM_EPIC).astype(str)),
        "PROCESS_ID": text((np.arange(len(utc)) + _FIRST_PROCESS).astype(str)),
        "ACCESS_TIME": _wall(utc, zone),
        "SYSTEM_LOGIN": pc.utf8_lower(user),
        "DEPARTMENT_NAME": text(_mapped(user, departments)),
        "METRIC_ID": text(_mapped(metric, ids)),
        "CSN": text(np.full(len(utc), "", dtype=object)),
        **merged,
    }
    return pa.table([columns[c] for c in EPIC_COLUMNS], names=list(EPIC_COLUMNS))


def _write_days(table: pa.Table, log_dir: Path, fmt: str) -> list[Path]:
    """One file per local day (rows are in instant order, so each day is one run of rows)."""
    for stale in log_dir.iterdir():
        if stale.is_file() and stale.name.endswith((".csv", ".csv.gz")):
            stale.unlink()
    days = pc.utf8_slice_codeunits(table.column("ACCESS_TIME"), 0, 10).to_numpy(zero_copy_only=False)
    distinct, first = np.unique(days.astype(str), return_index=True)
    bounds = [*sorted(first.tolist()), len(days)]
    header = (",".join(EPIC_COLUMNS) + "\n").encode()
    paths = []
    for start, end in itertools.pairwise(bounds):
        day = table.slice(start, end - start)
        body = lines([day.column(c).combine_chunks() for c in EPIC_COLUMNS])
        path = log_dir / f"{days[start]}.{fmt}"
        write(path, header + joined(body), fmt)
        paths.append(path)
    assert len(paths) == len(distinct)
    return paths


def _copy_context(bundle: Path, out: Path, fmt: str) -> None:
    if out.resolve() == bundle.resolve():
        return
    for stem in (USERS.name, PATIENTS.name, ENCOUNTERS.name):
        shutil.copyfile(bundle / f"{stem}.{fmt}", out / f"{stem}.{fmt}")


def _mapping(bundle: Path, out: Path) -> None:
    site = (bundle / "mapping.toml").read_text(encoding="utf-8").rstrip("\n")
    if "[access_log]" in site:
        raise ValueError(f"{bundle}: mapping.toml already has an [access_log] section")
    access = f'[access_log]\nformat = "epic"\nmetric_catalogue = "{SITE_CATALOGUE}"\n'
    access += 'default_action = "view"\n'
    (out / "mapping.toml").write_text(f"{site}\n{access}", encoding="utf-8")


def write_epic_extract(
    bundle: str | Path,
    out: str | Path,
    *,
    seed: int = 0,
    metric_names: int = 400,
    unmapped: int = 3,
    patientless: float = 0.2,
) -> EpicExtract:
    """Write the hospital of the generated ``bundle`` to ``out`` with an Epic-style access log (module
    docstring). ``metric_names`` distinct names are aimed at (fewer when the log is too small to carry
    them); ``patientless`` is the share of rows that concern no patient. Same arguments, same bytes."""
    if not 0 <= patientless < 1:
        raise ValueError("patientless must be at least 0 and below 1")
    src, dst = Path(bundle), Path(out)
    truth = json.loads((src / "ground_truth.json").read_text(encoding="utf-8"))
    zone = truth["timezone"]
    fmt = next(f for f in reversed(FORMATS) if (src / f"{USERS.name}.{f}").is_file())
    rng = np.random.default_rng([seed, 1840])
    events = _clean_events(src, int(truth["counts"]["access_log_rows"]))
    utc = _utc(events.column("timestamp"))
    names, by_reason, plan = _event_metrics(rng, events, total=metric_names, unmapped=unmapped)
    blank, blank_utc, blank_names, no_patient = _patientless(rng, events, utc, patientless, plan.skip)
    dst.mkdir(parents=True, exist_ok=True)
    departments = _departments(src, fmt)
    table = _extract_table(
        [_access_rows(events, names, by_reason, rng), _blank_rows(blank, blank_names)],
        np.concatenate([utc, blank_utc]),
        zone,
        departments,
    )
    log_dir = dst / ACCESS_LOG.name
    log_dir.mkdir(exist_ok=True)
    files = _write_days(table, log_dir, fmt)
    _copy_context(src, dst, fmt)
    catalogue = dst / SITE_CATALOGUE
    catalogue.write_text(plan.site_catalogue(), encoding="utf-8")
    _mapping(src, dst)
    glass = events.column("break_glass").to_numpy(zero_copy_only=False) == "true"
    result = EpicExtract(
        out_dir=dst,
        access_log_files=tuple(files),
        rows=table.num_rows,
        events=events.num_rows,
        skipped={"not_patient_access": blank.num_rows - no_patient, "no_patient": no_patient},
        defaulted_action=int(np.isin(names, plan.unmapped).sum()),
        metric_names=len(set(table.column("METRIC_NAME").to_pylist())),
        unmapped_names=len(plan.unmapped),
        break_glass={"metric": int((glass & ~by_reason).sum()), "reason": int(by_reason.sum())},
        fall_back_rows=_fall_back(np.concatenate([utc, blank_utc]), zone),
        site_catalogue=catalogue,
    )
    truth["access_format"] = "epic"
    truth["noise"] = {"rows_total": result.rows, "duplicates": 0, "rejects_by_reason": {}}
    truth["epic"] = result.summary()
    with tempfile.NamedTemporaryFile("w", dir=dst, delete=False, encoding="utf-8") as tmp:
        tmp.write(json.dumps(truth, indent=2) + "\n")
    Path(tmp.name).replace(dst / "ground_truth.json")
    return result
