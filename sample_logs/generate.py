"""The entry point: generate a synthetic hospital's canonical log bundle with planted, labelled incidents.

    hospital -> roster -> incident plan -> encounters -> legitimate work -> planted incidents
             -> audit events -> files (users, patients, encounters, access_log/ per day with dirty rows)
             -> mapping.toml, ground_truth.json

Every stage draws from its own random stream derived from the seed and the stage's name, so the same
arguments give the same bytes. An archetype (``archetypes``) chooses the staffing, the encounter volumes,
HR-style staff identity, and adds its own work once the encounters exist; the community hospital adds
nothing and draws nothing more, so its bundle is what it always was.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pyarrow as pa

from detector.tables.bundle import (
    ACCESS_LOG,
    ACTIONS,
    ENCOUNTER_TYPES,
    ENCOUNTERS,
    PATIENTS,
    RESOURCE_TYPES,
    USERS,
)

from .archetypes import archetype as archetype_spec
from .bursts import Events, Lookups, expand, workstation_names
from .clock import Clock, iso_arrow
from .encounters import Encounters, build_encounters
from .hospital import DEPARTMENTS, ROLES, Hospital, build_hospital
from .identity import hr_style
from .incidents import plan_incidents, plant_incidents
from .noise import DUPLICATE, REASONS, VARIANT, plan_noise, render
from .roster import Roster
from .scenarios import Incident
from .workload import build_workload
from .writer import FORMATS, joined, lines, table_bytes, text, write

GENERATOR_VERSION = 1
_DAY_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}\.csv(\.gz)?$")


@dataclass(frozen=True)
class GenerationResult:
    out_dir: Path
    access_log: Path  # the folder of per-day access log files
    access_log_files: tuple[Path, ...]
    users: Path
    patients: Path
    encounters: Path
    mapping: Path
    ground_truth: Path
    n_users: int
    n_patients: int
    n_encounters: int
    access_log_rows: int  # clean, unique events (what ingestion should accept)
    rows_total: int  # data rows written to access_log files: clean + duplicates + malformed
    incidents: int


def _rng(seed: int, stage: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(stage.encode())])


def _check(seed: int, days: int, scale: float, scored_days: int, start: str, timezone: str, dirty: float,
           fmt: str) -> dt.date:  # fmt: skip
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if days < 2:
        raise ValueError(f"days must be at least 2, got {days}")
    if not 1 <= scored_days < days:
        raise ValueError(f"scored_days must be between 1 and days - 1 ({days - 1}), got {scored_days}")
    if not 0.01 <= scale <= 20:
        raise ValueError(f"scale must be between 0.01 and 20, got {scale}")
    if not 0 <= dirty <= 0.2:
        raise ValueError(f"dirty must be a fraction between 0 and 0.2, got {dirty}")
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {timezone!r}: use an IANA name such as America/New_York"
        ) from exc
    try:
        return dt.date.fromisoformat(start)
    except ValueError as exc:
        raise ValueError(f"start must be a date YYYY-MM-DD, got {start!r}") from exc


def _table(header: tuple[str, ...], columns: dict[str, Any]) -> bytes:
    assert tuple(columns) == header, (tuple(columns), header)
    return table_bytes(header, [text(v) for v in columns.values()])


def _users(h: Hospital, clock: Clock) -> bytes:
    return _table(USERS.names, {
        "user_id": h.user_id,
        "role": np.array(ROLES)[h.role],
        "department": np.array(DEPARTMENTS)[h.dept],
        "first_name": h.u_first_name,
        "last_name": h.u_last_name if h.u_shown_last_name is None else h.u_shown_last_name,
        "address": h.u_address if h.u_shown_address is None else h.u_shown_address,
        "zip": h.street_zip[h.u_street] if h.u_shown_zip is None else h.u_shown_zip,
        "employee_patient_id": np.where(h.u_patient >= 0, h.patient_id[np.maximum(h.u_patient, 0)], ""),
        "hire_date": clock.date_text(h.hire_day),
        "termination_date": clock.date_text(h.term_day),
    })  # fmt: skip


def _patients(h: Hospital, clock: Clock) -> bytes:
    o = np.argsort(h.patient_id, kind="stable")
    return _table(PATIENTS.names, {
        "patient_id": h.patient_id[o],
        "first_name": h.first_name[o],
        "last_name": h.last_name[o],
        "birth_date": clock.date_text(h.birth_day[o]),
        "address": h.address[o],
        "zip": h.street_zip[h.street[o]],
        "vip": np.where(h.vip[o], "true", "false"),
        "deceased_date": clock.date_text(h.deceased_day[o]),
    })  # fmt: skip


def _encounters(h: Hospital, clock: Clock, enc: Encounters) -> bytes:
    ids = np.strings.add("ENC", np.strings.zfill((np.arange(len(enc)) + 1).astype(np.str_), 7))
    return _table(ENCOUNTERS.names, {
        "patient_id": h.patient_id[enc.patient],
        "start": clock.iso(enc.start),
        "department": np.array(DEPARTMENTS)[enc.dept],
        "provider_id": np.where(enc.provider >= 0, h.user_id[np.maximum(enc.provider, 0)], ""),
        "end": clock.iso(enc.end),
        "encounter_id": ids,
        "encounter_type": np.array(ENCOUNTER_TYPES)[enc.etype],
    })  # fmt: skip


def _access_columns(h: Hospital, clock: Clock, ev: Events) -> list[pa.Array]:
    def pick(values: Any, index: Any) -> pa.Array:
        return text(values).take(pa.array(index))

    ids = np.strings.add("E", np.strings.zfill((np.arange(len(ev)) + 1).astype(np.str_), 10))
    cols = {
        "timestamp": iso_arrow(clock, ev.t),
        "user_id": pick(h.user_id, ev.user),
        "patient_id": pick(h.patient_id, ev.patient),
        "action": pick(ACTIONS, ev.action),
        "resource_type": pick(RESOURCE_TYPES, ev.resource),
        "event_id": text(ids),
        "workstation_id": pick(workstation_names(h), ev.workstation),
        "outcome": pick(["success", "failure"], ev.failure.astype(np.int64)),
        "break_glass": pick(["false", "true"], ev.break_glass.astype(np.int64)),
    }
    assert tuple(cols) == ACCESS_LOG.names
    return list(cols.values())


def _clear_stale(out_dir: Path, log_dir: Path, fmt: str) -> None:
    """Remove files a previous run wrote that this run would not overwrite (other days, other format)."""
    if log_dir.is_dir():
        for f in sorted(log_dir.iterdir()):
            if f.is_file() and _DAY_FILE.match(f.name):
                f.unlink()
    for other in FORMATS:
        for stem in ("users", "patients", "encounters"):
            stale = out_dir / f"{stem}.{other}"
            if other != fmt and stale.is_file():
                stale.unlink()


def _write_access_log(
    rng: np.random.Generator, h: Hospital, clock: Clock, ev: Events, dirty: float, log_dir: Path, fmt: str
) -> tuple[list[Path], dict[str, int]]:
    """Per-day files, events slightly out of order, dirty rows mixed in; returns paths and noise counts."""
    n = len(ev)
    cols = _access_columns(h, clock, ev)
    day = clock.day_of(ev.t)
    arrival = ev.t + rng.exponential(15.0, n)
    late = rng.random(n) < 0.001
    arrival[late] += rng.uniform(600, 3 * 3600, int(late.sum()))
    order = np.lexsort((arrival, day))
    day_sizes = np.bincount(day, minlength=clock.days).astype(np.int64)
    first = np.concatenate([[0], np.cumsum(day_sizes)])
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n) - first[day[order]]
    noise = plan_noise(rng, dirty, day, position, day_sizes, ev.incident >= 0)
    counts = {DUPLICATE: 0, **{r: 0 for r in REASONS}}
    header = (",".join(ACCESS_LOG.names) + "\n").encode()
    paths: list[Path] = []
    j = 0
    for d in range(clock.days):
        rows = order[first[d] : first[d + 1]]
        body = lines([c.take(pa.array(rows)) for c in cols])
        extra: list[str] = []
        keys: list[float] = []
        while j < len(noise) and noise[j].day == d:
            row = noise[j]
            fields = [str(c[row.source].as_py()) for c in cols]
            new_id = f"E{n + 1 + j:010d}"
            extra.append(render(rng, row, fields, int(ev.t[row.source]), clock, new_id) + "\n")
            keys.append(row.key)
            counts[DUPLICATE if row.kind in (DUPLICATE, VARIANT) else row.kind] += 1
            j += 1
        if extra:
            all_keys = np.concatenate([np.arange(len(rows), dtype=np.float64), np.array(keys)])
            # Large hospitals give chunked columns; a day's lines are small enough to combine.
            if isinstance(body, pa.ChunkedArray):
                body = body.combine_chunks()
            body = pa.concat_arrays([body, text(extra)]).take(pa.array(np.argsort(all_keys, kind="stable")))
        path = log_dir / f"{clock.date(d).isoformat()}.{fmt}"
        write(path, header + joined(body), fmt)
        paths.append(path)
    return paths, counts


def _incident_truth(h: Hospital, clock: Clock, ev: Events, incidents: list[Incident]) -> list[dict[str, Any]]:
    out: list[tuple[int, dict[str, Any]]] = []
    for i, inc in enumerate(incidents):
        mask = ev.incident == i
        if not mask.any():
            continue
        t = ev.t[mask]
        users, patients = h.user_id[ev.user[mask]].tolist(), h.patient_id[ev.patient[mask]].tolist()
        pairs = sorted(set(zip(users, patients, strict=True)))
        out.append((int(t.min()), {
            "scenario": inc.scenario,
            "window": inc.window,
            "user_ids": sorted({u for u, _ in pairs}),
            "patient_ids": sorted({p for _, p in pairs}),
            "pairs": [list(pair) for pair in pairs],
            "first_access": str(clock.iso(np.array([t.min()]))[0]),
            "last_access": str(clock.iso(np.array([t.max()]))[0]),
            "events": int(mask.sum()),
            "description": inc.description,
        }))  # fmt: skip
    out.sort(key=lambda item: (item[0], item[1]["scenario"]))
    return [{"incident_id": f"INC-{k + 1:04d}", **record} for k, (_, record) in enumerate(out)]


def _hard_negatives(h: Hospital, ev: Events, staff: dict[int, tuple[str, str]]) -> list[dict[str, str]]:
    """The archetype's hard-negative staff who have legitimate events in the log, by user id."""
    seen = np.zeros(h.n_users, dtype=np.bool_)
    seen[ev.user[ev.incident < 0]] = True
    rows = [(str(h.user_id[u]), role, why) for u, (role, why) in staff.items() if seen[u]]
    return [{"user_id": u, "role": role, "why": why} for u, role, why in sorted(rows)]


def generate_bundle(
    out_dir: str | Path,
    *,
    seed: int = 0,
    days: int = 35,
    scale: float = 1.0,
    scored_days: int = 7,
    start: str = "2026-02-23",
    timezone: str = "America/New_York",
    dirty: float = 0.002,
    fmt: str = "csv.gz",
    archetype: str = "community",
    behaviour_incidents: bool | None = None,
) -> GenerationResult:
    """Write a synthetic hospital's canonical bundle to ``out_dir`` and return what was written.

    ``days`` local days from ``start``; the last ``scored_days`` are the scored window where every scenario
    is planted (a few incidents in the training window before it too). ``scale`` 1.0 is ~570 staff,
    ~25,000 patients and ~40,000 audit events a weekday (~18,000 on weekends). ``dirty`` is the fraction of
    access rows added as duplicates and malformed rows (0 disables). Same arguments, same bytes.

    ``archetype`` is how the hospital is organised (``ARCHETYPES``: community, academic, float_pharmacy,
    outpatient); the default community hospital writes exactly what it always wrote.
    ``behaviour_incidents`` also plants the incidents only behaviour reveals (ex_partner, friend); by
    default on for every archetype but community (whose default bundle would otherwise change).

    Raises ValueError for an argument out of range (the message names it and the accepted values).
    """
    start_date = _check(seed, days, scale, scored_days, start, timezone, dirty, fmt)
    arch = archetype_spec(archetype)
    behaviour = arch.behaviour_incidents if behaviour_incidents is None else behaviour_incidents
    out = Path(out_dir)
    log_dir = out / ACCESS_LOG.name
    log_dir.mkdir(parents=True, exist_ok=True)
    _clear_stale(out, log_dir, fmt)

    clock = Clock(timezone, start_date, days)
    score_start = days - scored_days
    hosp = build_hospital(
        _rng(seed, "hospital"),
        clock,
        scale,
        score_start,
        staffing=arch.staffing,
        patients_at_scale_1=arch.patients_at_scale_1,
    )
    if arch.hr_identity:
        hosp = hr_style(_rng(seed, "identity"), hosp)
    roster = Roster(_rng(seed, "roster"), hosp, clock)
    plan = plan_incidents(_rng(seed, "plan"), hosp, clock, scale, score_start)
    enc, deceased = build_encounters(
        _rng(seed, "encounters"), hosp, roster, clock, scale, plan.forced, plan.protected, arch.volumes
    )
    hosp = replace(hosp, deceased_day=deceased)
    prep = arch.prepare(_rng(seed, f"archetype-{arch.name}"), hosp, roster, clock, enc)
    enc = prep.enc
    legit = build_workload(
        _rng(seed, "workload"),
        hosp,
        roster,
        clock,
        enc,
        pharmacy=prep.pharmacy,
        inpatient=prep.inpatient,
        extra=prep.extra,
    )
    planted, incidents = plant_incidents(
        _rng(seed, "incidents"),
        plan,
        hosp,
        prep.care,
        roster,
        clock,
        legit,
        score_start,
        behaviour=behaviour,
        scale=scale,
    )
    events = expand(_rng(seed, "events"), Lookups.concat([legit, planted]), hosp)
    w0, w1 = clock.window
    events = events.take((events.t >= w0) & (events.t < w1))
    events = events.take(np.argsort(events.t, kind="stable"))

    paths = {
        stem: out / f"{stem}.{fmt}" for stem in (USERS.name, PATIENTS.name, ENCOUNTERS.name)
    }  # fmt: skip
    write(paths[USERS.name], _users(hosp, clock), fmt)
    write(paths[PATIENTS.name], _patients(hosp, clock), fmt)
    write(paths[ENCOUNTERS.name], _encounters(hosp, clock, enc), fmt)
    files, noise = _write_access_log(_rng(seed, "noise"), hosp, clock, events, dirty, log_dir, fmt)
    mapping = out / "mapping.toml"
    mapping.write_text(f'[site]\ntimezone = "{timezone}"\n', encoding="utf-8")

    truth_incidents = _incident_truth(hosp, clock, events, incidents)
    n_noise = sum(noise.values())
    truth = {
        "generator": "sample_logs",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "scale": scale,
        "days": days,
        "timezone": timezone,
        "start": start_date.isoformat(),
        "score_start": clock.date(score_start).isoformat(),
        "end": clock.date(days - 1).isoformat(),
        "counts": {
            "users": hosp.n_users,
            "patients": hosp.n_patients,
            "encounters": len(enc),
            "access_log_rows": len(events),
        },
        "noise": {
            "rows_total": len(events) + n_noise,
            "duplicates": noise[DUPLICATE],
            "rejects_by_reason": {r: noise[r] for r in REASONS},
        },
        "incidents": truth_incidents,
        "archetype": arch.name,
        "behaviour_incidents": behaviour,
        "hard_negative_users": _hard_negatives(hosp, events, prep.hard_negatives),
    }
    truth_path = out / "ground_truth.json"
    truth_path.write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    return GenerationResult(
        out_dir=out,
        access_log=log_dir,
        access_log_files=tuple(files),
        users=paths[USERS.name],
        patients=paths[PATIENTS.name],
        encounters=paths[ENCOUNTERS.name],
        mapping=mapping,
        ground_truth=truth_path,
        n_users=hosp.n_users,
        n_patients=hosp.n_patients,
        n_encounters=len(enc),
        access_log_rows=len(events),
        rows_total=len(events) + n_noise,
        incidents=len(truth_incidents),
    )
