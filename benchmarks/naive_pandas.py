"""The features of one night, computed the way a data engineer would write them in plain pandas.

    .venv/bin/python benchmarks/naive_pandas.py --bundle B --date 2026-05-05 --out DIR
    .venv/bin/python benchmarks/naive_pandas.py --bundle B --date 2026-05-05 --out DIR --history-days 28

The reference point for ``bench_nightly.py --naive``. It prints one JSON line with its stage timings
(``timings``), the total ``seconds``, the lookups and explained share of the day, the lookups raising each
behavioural flag (``flags``) and, with history, ``history_days`` and ``history_rows`` (CSV rows read).

The day: read the day's CSV and the context CSVs with ``pd.read_csv``, parse timestamps to the site zone,
group events into lookups (user, patient, local day) with event, print, export, image, write and
after-hours counts, explain lookups by merging them with the encounters of the patient and checking the
care window (7 days before start to 30 after end) and the provider or department, add the policy signals
from users and patients (self, household, surname, coworker, neighbour, VIP, deceased, after termination,
unexplained break-glass/imaging/print-export), the curiosity crowd per patient-day and per user-day volumes
with the peer median, then write lookups and user-days to Parquet.

``--history-days N`` (what ``bench_nightly.py --naive`` runs, with N the workspace's baseline) computes the
same features as the product's night. Without durable state it has to rebuild the baseline from the raw
logs of the N previous days every night: it reads each day's CSV with ``pd.read_csv``, one day at a time,
reduces it to that day's lookups with their care context, the peer group and the policy signals (the
day-local part, so memory holds lookups, not events), and concatenates those frames. As the product's
nights did, each baseline day is explained with what the days before it (within the N) taught: roles that
explain recently seen patients learned from the running per-peer-group counts, continuing care from the
pairs explained directly on an earlier day, the curiosity crowd of the day and the day before. From the
baseline it then takes, for the day:

* the explaining roles: peer groups (role/department) with >= 50 baseline lookups, >= 60 % touching a
  patient with an encounter in the care window, < 50 % explained by own provider or department;
* continuing care: the user-patient pair was explained directly on a baseline day;
* role surprise: ``s_<flag>`` = -log10 of the peer group's baseline rate of the flag, smoothed towards the
  role's and the role's towards everyone's with 50 pseudo-lookups, when the lookup raises the flag;
* ``new_patients`` per user-day: pairs not seen in the baseline (once the baseline is > 6 days long);
* ``own_median``: the median of the user's unexplained lookups over their previous 28 user-days, and
  ``unexplained_vs_own``; the curiosity crowd also counts the day before (as the product's does).

These are the product's definitions (features/explain.py, behaviour.py, signals.py, lookups.py). When the
workspace holds more history than N days, the product's earliest baseline days had baseline days of their
own before them that this pipeline does not read, so their explanations (and hence the baseline's flag
rates and continuing care) can differ slightly; with N covering all the history they are the same.
Scoring, the model and cases are not computed here.

Without ``--history-days`` (0) it computes the day-local subset only: roles learned from the day itself,
no continuing care, own-history median, new-patient count or role surprise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PREP_DAYS = 7
FOLLOW_DAYS = 30
WORKDAY_START, WORKDAY_END = 7, 19
ROLE_MIN_LOOKUPS = 50
ROLE_RECENT_SHARE = 0.6
PRIOR = 50.0
"""Pseudo-lookups by which a peer group's flag rate is shrunk towards its role's, and a role's towards
everyone's."""
WARM_UP_DAYS = 6
OWN_DAYS = 28
CROWD = 3
LOG_COLUMNS = ["timestamp", "user_id", "patient_id", "action", "resource_type", "break_glass"]
SIGNALS = (
    "self_access",
    "household",
    "same_surname",
    "coworker",
    "neighbour",
    "vip",
    "deceased",
    "after_termination",
)
"""Policy signals that do not depend on the explanation."""
FLAGS = (
    "unexplained",
    "self_access",
    "household",
    "same_surname",
    "coworker",
    "neighbour",
    "vip",
    "deceased",
    "after_termination",
    "break_glass",
    "imaging",
    "image_export",
    "print_export",
    "curiosity",
)
"""Flags whose peer-group base rate is learned (features.behaviour.FLAGS)."""
HISTORY_COLUMNS = [
    "user_id",
    "patient_id",
    "day",
    "peer_group",
    "peer_role",
    "direct",
    *SIGNALS,
    "break_glass",
    "has_image",
    "has_export",
    "has_print_export",
]
"""What a baseline day keeps of its lookups."""


class Stages:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.started = self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        """Add the time since the last lap to stage ``name`` (stages repeated per day add up)."""
        now = time.perf_counter()
        self.timings[name] = round(self.timings.get(name, 0.0) + now - self._last, 3)
        self._last = now

    def total(self) -> float:
        return round(time.perf_counter() - self.started, 3)


def local_day(values: pd.Series, zone: str) -> pd.Series:
    """ISO 8601 text with offsets -> the site-local midnight (naive datetime64)."""
    local = pd.to_datetime(values, format="ISO8601", utc=True).dt.tz_convert(zone)
    return local.dt.tz_localize(None).dt.normalize()


def norm(values: pd.Series) -> pd.Series:
    return values.str.strip(" ").str.lower()


def street(values: pd.Series) -> pd.Series:
    return values.str.replace(r"^\s*\d+[a-zA-Z]?\s+", "", regex=True).str.strip(" ").str.lower()


# -- context --------------------------------------------------------------------------------------------


@dataclass
class Context:
    users: pd.DataFrame
    """user_id, department, peer_group, peer_role and the fields the policy signals read"""
    workers: pd.DataFrame
    """w_user_id, patient_id: users who are themselves patients"""
    patients: pd.DataFrame
    encounters: pd.DataFrame
    """patient_id, e_department, provider_id, open_from, open_to (the care window, local days)"""
    group_dtype: pd.CategoricalDtype
    role_dtype: pd.CategoricalDtype


def read_context(bundle: Path, zone: str, read: dict[str, Any]) -> Context:
    users = pd.read_csv(
        bundle / "users.csv",
        dtype={"user_id": "str", "employee_patient_id": "str", "zip": "str"},
        **read,
    )
    patients = pd.read_csv(bundle / "patients.csv", dtype={"patient_id": "str", "zip": "str"}, **read)
    encounters = pd.read_csv(
        bundle / "encounters.csv", dtype={"patient_id": "str", "provider_id": "str"}, **read
    )
    # Peer group: role and department ("concat_ws": a missing part is left out).
    role, department = users["role"], users["department"]
    both = role.fillna("") + "/" + department.fillna("")
    users["peer_group"] = both.mask(role.isna() | department.isna(), role.fillna("") + department.fillna(""))
    users["peer_role"] = role
    workers = users[["user_id", "employee_patient_id"]].dropna().drop_duplicates("employee_patient_id")
    workers = workers.rename(columns={"user_id": "w_user_id", "employee_patient_id": "patient_id"})
    start = local_day(encounters["start"], zone)
    end = local_day(encounters["end"].fillna(encounters["start"]), zone)
    enc = pd.DataFrame(
        {
            "patient_id": encounters["patient_id"],
            "e_department": encounters["department"],
            "provider_id": encounters["provider_id"],
            "open_from": start - pd.Timedelta(days=PREP_DAYS),
            "open_to": end + pd.Timedelta(days=FOLLOW_DAYS),
        }
    )
    return Context(
        users=users,
        workers=workers,
        patients=patients,
        encounters=enc,
        group_dtype=pd.CategoricalDtype(sorted(users["peer_group"].dropna().unique())),
        role_dtype=pd.CategoricalDtype(sorted(users["peer_role"].dropna().unique())),
    )


# -- one day's lookups ----------------------------------------------------------------------------------


def read_log(bundle: Path, day: pd.Timestamp, read: dict[str, Any]) -> pd.DataFrame:
    path = bundle / "access_log" / f"{day:%Y-%m-%d}.csv"
    ids = {"user_id": "str", "patient_id": "str"}
    return pd.read_csv(path, usecols=LOG_COLUMNS, dtype=ids, **read)


def build_lookups(
    log: pd.DataFrame, day: pd.Timestamp, zone: str, stages: Stages, prefix: str = ""
) -> pd.DataFrame:
    """Events -> lookups (user, patient, local day) of ``day``."""
    ts = pd.to_datetime(log["timestamp"], format="ISO8601", utc=True).dt.tz_convert(zone)
    log["ts"] = ts
    log["day"] = ts.dt.tz_localize(None).dt.normalize()
    log = log[log["day"] == day]
    hour = log["ts"].dt.hour
    log = log.assign(
        after_hours=(hour < WORKDAY_START) | (hour >= WORKDAY_END) | (log["ts"].dt.day_of_week >= 5),
        is_print=log["action"] == "print",
        is_export=log["action"].isin(["export", "download"]),
        is_image=log["resource_type"] == "image",
        is_write=log["action"].isin(["create", "update", "delete"]),
        is_demographics=log["resource_type"].fillna("") == "demographics",
        break_glass=log["break_glass"].fillna(False).astype(bool),
    )
    stages.lap(prefix + "parse_time")
    lookups = (
        log.groupby(["user_id", "patient_id", "day"], sort=False)
        .agg(
            events=("action", "size"),
            prints=("is_print", "sum"),
            exports=("is_export", "sum"),
            image_events=("is_image", "sum"),
            writes=("is_write", "sum"),
            demographics_only=("is_demographics", "all"),
            break_glass=("break_glass", "any"),
            after_hours_events=("after_hours", "sum"),
            first_access=("ts", "min"),
            last_access=("ts", "max"),
        )
        .reset_index()
    )
    stages.lap(prefix + "lookups")
    return lookups


def add_care(lookups: pd.DataFrame, ctx: Context, day: pd.Timestamp) -> pd.DataFrame:
    """The user's department and peer group, and the patient's encounters whose care window covers the
    day: ``by_provider``, ``by_department``, ``any_encounter``."""
    people = ctx.users[["user_id", "department", "peer_group", "peer_role"]]
    lookups = lookups.merge(people, on="user_id", how="left")
    enc = ctx.encounters
    enc = enc[(enc["open_from"] <= day) & (enc["open_to"] >= day)]
    pairs = lookups[["user_id", "patient_id", "department"]].merge(
        enc[["patient_id", "e_department", "provider_id"]], on="patient_id"
    )
    pairs["by_provider"] = pairs["provider_id"] == pairs["user_id"]
    pairs["by_department"] = pairs["e_department"] == pairs["department"]
    care = (
        pairs.groupby(["user_id", "patient_id"], sort=False)
        .agg(by_provider=("by_provider", "any"), by_department=("by_department", "any"))
        .reset_index()
    )
    care["any_encounter"] = True
    lookups = lookups.merge(care, on=["user_id", "patient_id"], how="left")
    for col in ("by_provider", "by_department", "any_encounter"):
        lookups[col] = lookups[col].fillna(False).astype(bool)
    lookups["own"] = lookups["by_provider"] | lookups["by_department"]
    return lookups


def explaining_roles(counts: pd.DataFrame) -> pd.Index:
    """Peer groups whose lookups are mostly recently seen patients of any department (``counts``: per
    peer group ``n``, ``n_any`` and ``n_own`` lookups)."""
    n = counts["n"]
    ok = (n >= ROLE_MIN_LOOKUPS) & (counts["n_any"] >= ROLE_RECENT_SHARE * n) & (counts["n_own"] < 0.5 * n)
    return counts.index[ok]


def group_counts(lookups: pd.DataFrame) -> pd.DataFrame:
    return lookups.groupby("peer_group").agg(
        n=("any_encounter", "size"), n_any=("any_encounter", "sum"), n_own=("own", "sum")
    )


def add_policy_signals(lookups: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """The signals that do not depend on the explanation, and ``has_image``, ``has_export`` and
    ``has_print_export`` (the unexplained-action signals are those and'ed with unexplained)."""
    u = ctx.users[["user_id", "employee_patient_id", "address", "zip", "last_name", "termination_date"]]
    lookups = lookups.merge(u.add_prefix("u_"), left_on="user_id", right_on="u_user_id", how="left")
    lookups = lookups.merge(ctx.workers, on="patient_id", how="left")
    p = ctx.patients[["patient_id", "address", "zip", "last_name", "vip", "deceased_date"]].add_prefix("p_")
    lookups = lookups.merge(p, left_on="patient_id", right_on="p_patient_id", how="left")
    is_self = (lookups["u_employee_patient_id"] == lookups["patient_id"]).fillna(False)
    same_address = norm(lookups["u_address"]) == norm(lookups["p_address"])
    same_zip = lookups["u_zip"] == lookups["p_zip"]
    deceased = pd.to_datetime(lookups["p_deceased_date"])
    terminated = pd.to_datetime(lookups["u_termination_date"])
    signals = {
        "self_access": is_self,
        "household": ~is_self & same_address & same_zip,
        "same_surname": ~is_self & (lookups["u_last_name"].str.lower() == lookups["p_last_name"].str.lower()),
        "coworker": lookups["w_user_id"].notna() & ~is_self,
        "neighbour": ~same_address
        & lookups["u_address"].notna()
        & lookups["p_address"].notna()
        & (street(lookups["u_address"]) == street(lookups["p_address"]))
        & same_zip,
        "vip": lookups["p_vip"].fillna(False),
        "deceased": deceased.notna() & (lookups["day"] > deceased),
        "after_termination": terminated.notna() & (lookups["day"] > terminated),
        "has_image": lookups["image_events"] > 0,
        "has_export": lookups["exports"] > 0,
        "has_print_export": (lookups["prints"] + lookups["exports"]) > 0,
    }
    for name, value in signals.items():
        lookups[name] = value.fillna(False).astype(bool)
    return lookups.drop(columns=[c for c in lookups.columns if c[:2] in ("u_", "p_", "w_")])


def flag_frame(t: pd.DataFrame, unexplained: pd.Series, crowd: pd.Series) -> pd.DataFrame:
    """The lookups' behavioural flags (features.behaviour.FLAGS), one boolean column each."""
    return pd.DataFrame(
        {
            "unexplained": unexplained,
            "self_access": t["self_access"],
            "household": t["household"] & unexplained,
            "same_surname": t["same_surname"] & unexplained,
            "coworker": t["coworker"] & unexplained,
            "neighbour": t["neighbour"] & unexplained,
            "vip": t["vip"] & unexplained,
            "deceased": t["deceased"] & unexplained,
            "after_termination": t["after_termination"],
            "break_glass": t["break_glass"] & unexplained,
            "imaging": t["has_image"] & unexplained,
            "image_export": t["has_image"] & t["has_export"] & unexplained,
            "print_export": t["has_print_export"] & unexplained,
            "curiosity": (crowd >= CROWD) & unexplained,
        },
        index=t.index,
    )


# -- the baseline ---------------------------------------------------------------------------------------


@dataclass
class Baseline:
    days: int
    rows: int
    roles: pd.DataFrame
    """per peer group: n, n_any, n_own over the baseline"""
    pairs: pd.DataFrame
    """user_id, patient_id, first_direct (NaT when never explained directly): the pairs seen"""
    yesterday: pd.DataFrame
    """patient_id, y_users: distinct unexplained users of the patient the day before"""
    everyone: pd.Series
    by_role: pd.DataFrame
    by_group: pd.DataFrame
    """smoothed flag rates (columns FLAGS) for everyone, per role and per peer group"""
    own_median: pd.Series
    """per user_id: median unexplained lookups over their last OWN_DAYS baseline user-days"""


def learn_baseline(
    bundle: Path,
    day: pd.Timestamp,
    n_days: int,
    ctx: Context,
    zone: str,
    read: dict[str, Any],
    stages: Stages,
) -> Baseline:
    """Rebuild the baseline of ``day`` from the raw logs of the ``n_days`` days before it."""
    frames: list[pd.DataFrame] = []
    totals = pd.DataFrame(columns=["n", "n_any", "n_own"], dtype="int64")
    rows = 0
    for k in range(n_days, 0, -1):
        past = day - pd.Timedelta(days=k)
        log = read_log(bundle, past, read)
        rows += len(log)
        stages.lap("history_read")
        lookups = build_lookups(log, past, zone, stages, prefix="history_")
        del log
        lookups = add_care(lookups, ctx, past)
        # Roles learned from the days before this one; direct explanations (continuing care is added
        # once all the days are in).
        roles = explaining_roles(totals)
        recent = lookups["any_encounter"] & lookups["peer_group"].isin(roles)
        lookups["direct"] = lookups["own"] | recent
        totals = totals.add(group_counts(lookups), fill_value=0)
        stages.lap("history_explain")
        lookups = add_policy_signals(lookups, ctx)
        frames.append(
            lookups[HISTORY_COLUMNS].astype({"peer_group": ctx.group_dtype, "peer_role": ctx.role_dtype})
        )
        del lookups
        stages.lap("history_signals")
    hist = pd.concat(frames, ignore_index=True)
    del frames
    stages.lap("history_concat")

    # Pairs: first day explained directly; continuing care on the later days.
    hist["direct_day"] = hist["day"].where(hist["direct"])
    pairs = (
        hist.groupby(["user_id", "patient_id"], sort=False)
        .agg(first_direct=("direct_day", "min"))
        .reset_index()
    )
    hist = hist.drop(columns="direct_day")
    indirect = ~hist["direct"]
    later = hist.loc[indirect, ["user_id", "patient_id", "day"]].merge(
        pairs, on=["user_id", "patient_id"], how="left"
    )
    explained = hist["direct"].copy()
    explained[indirect] = (later["first_direct"] < later["day"]).to_numpy()
    unexplained = ~explained
    stages.lap("history_continuing")

    # Curiosity: distinct unexplained users of the patient that day plus the day before.
    patient_days = (
        hist.loc[unexplained].groupby(["patient_id", "day"]).user_id.nunique().rename("users").reset_index()
    )
    next_day = patient_days.assign(day=patient_days["day"] + pd.Timedelta(days=1))
    crowds = pd.concat([patient_days, next_day]).groupby(["patient_id", "day"]).users.sum().reset_index()
    crowd = pd.Series(0, index=hist.index, dtype="int64")
    near = hist.loc[unexplained, ["patient_id", "day"]].merge(crowds, on=["patient_id", "day"], how="left")
    crowd[unexplained] = near["users"].fillna(0).astype("int64").to_numpy()
    yesterday = patient_days[patient_days["day"] == day - pd.Timedelta(days=1)]
    yesterday = yesterday[["patient_id", "users"]].rename(columns={"users": "y_users"})
    stages.lap("history_curiosity")

    # Flag rates: everyone, role, peer group (smoothed).
    flags = flag_frame(hist, unexplained, crowd)
    everyone = (flags.sum() + 0.5) / (len(flags) + 1.0)
    by_role_counts = flags.groupby(hist["peer_role"], observed=True).sum()
    role_n = hist.groupby("peer_role", observed=True).size()
    by_role = (by_role_counts + PRIOR * everyone).div(role_n + PRIOR, axis=0)
    keys = [hist["peer_group"], hist["peer_role"]]
    group_k = flags.groupby(keys, observed=True).sum()
    group_n = flags.groupby(keys, observed=True).size()
    prior = by_role.reindex(group_k.index.get_level_values(1)).set_axis(group_k.index)
    by_group = (group_k + PRIOR * prior).div(group_n + PRIOR, axis=0).droplevel(1)
    by_role.index = by_role.index.astype("str")
    by_group.index = by_group.index.astype("str")
    by_group = by_group[~by_group.index.duplicated()]
    del flags
    stages.lap("history_rates")

    # The user's own history: unexplained lookups per user-day, median of the last OWN_DAYS.
    user_days = (
        hist.assign(unexplained=unexplained).groupby(["user_id", "day"]).unexplained.sum().reset_index()
    )
    own_median = user_days.groupby("user_id").tail(OWN_DAYS).groupby("user_id").unexplained.median()
    stages.lap("history_own")
    return Baseline(
        days=n_days,
        rows=rows,
        roles=totals,
        pairs=pairs,
        yesterday=yesterday,
        everyone=everyone,
        by_role=by_role,
        by_group=by_group,
        own_median=own_median,
    )


def role_surprise(lookups: pd.DataFrame, flags: pd.DataFrame, base: Baseline) -> pd.DataFrame:
    """``s_<flag>``: -log10 of the smoothed baseline rate of the lookup's peer group (else role, else
    everyone) when the lookup raises the flag, else 0."""
    names = list(FLAGS)
    group = base.by_group.reindex(lookups["peer_group"])[names].to_numpy()
    role = base.by_role.reindex(lookups["peer_role"])[names].to_numpy()
    everyone = base.everyone[names].to_numpy()[None, :]
    rate = np.where(np.isnan(group), np.where(np.isnan(role), everyone, role), group)
    raised = flags[names].to_numpy()
    surprise = np.where(raised, -np.log10(np.where(raised, rate, 1.0)), 0.0)
    return pd.DataFrame(surprise, columns=[f"s_{n}" for n in names], index=lookups.index)


# -- the night ------------------------------------------------------------------------------------------


def run(bundle: Path, date: str, zone: str, out: Path, engine: str, history_days: int = 0) -> dict[str, Any]:
    stages = Stages()
    read: dict[str, Any] = {"engine": engine}
    day = pd.Timestamp(date)
    ctx = read_context(bundle, zone, read)
    stages.lap("read_context")
    base = learn_baseline(bundle, day, history_days, ctx, zone, read, stages) if history_days else None

    log = read_log(bundle, day, read)
    stages.lap("read_day")
    lookups = build_lookups(log, day, zone, stages)
    del log

    # Explanations.
    lookups = add_care(lookups, ctx, day)
    if base is None:
        # Roles whose work is recently seen patients of any department, learned from the day itself.
        roles = explaining_roles(group_counts(lookups))
        lookups["seen_before"] = False
        continuing = pd.Series(False, index=lookups.index)
    else:
        roles = explaining_roles(base.roles)
        lookups = lookups.merge(base.pairs, on=["user_id", "patient_id"], how="left", indicator=True)
        lookups["seen_before"] = lookups.pop("_merge") == "both"
        continuing = lookups.pop("first_direct").notna()
    recent = lookups["any_encounter"] & lookups["peer_group"].isin(roles)
    lookups["explanation"] = (
        pd.Series(None, index=lookups.index, dtype="str")
        .mask(continuing, "continuing_care")
        .mask(recent, "role_recent_patient")
        .mask(lookups["by_department"], "care_department")
        .mask(lookups["by_provider"], "care_provider")
    )
    unexplained = lookups["explanation"].isna()
    lookups["unexplained"] = unexplained
    stages.lap("explain")

    # Policy signals from users and patients.
    lookups = add_policy_signals(lookups, ctx)
    lookups["break_glass_unexplained"] = lookups["break_glass"] & unexplained
    lookups["imaging_unexplained"] = lookups["has_image"] & unexplained
    lookups["print_export_unexplained"] = lookups["has_print_export"] & unexplained
    stages.lap("signals")

    # Curiosity: distinct users with an unexplained lookup of the patient that day (and the day before).
    crowd = (
        lookups[unexplained]
        .groupby(["patient_id", "day"])
        .user_id.nunique()
        .rename("curiosity_users")
        .reset_index()
    )
    lookups = lookups.merge(crowd, on=["patient_id", "day"], how="left")
    lookups["curiosity_users"] = lookups["curiosity_users"].fillna(0).astype("int64")
    if base is not None:
        lookups = lookups.merge(base.yesterday, on="patient_id", how="left")
        lookups["curiosity_users"] += lookups.pop("y_users").fillna(0).astype("int64")
    stages.lap("curiosity")
    flags = flag_frame(lookups, lookups["unexplained"], lookups["curiosity_users"])
    if base is not None:
        lookups = pd.concat([lookups, role_surprise(lookups, flags, base)], axis=1)
    stages.lap("surprise")

    # Per user-day volumes, against the user's own history and the peers.
    lookups["print_export"] = lookups["has_print_export"]
    lookups["new_patient"] = ~lookups["seen_before"] & (base is not None and base.days > WARM_UP_DAYS)
    user_days = (
        lookups.groupby(["user_id", "day"])
        .agg(
            peer_group=("peer_group", "first"),
            lookups=("events", "size"),
            unexplained=("unexplained", "sum"),
            new_patients=("new_patient", "sum"),
            events=("events", "sum"),
            after_hours_events=("after_hours_events", "sum"),
            print_export_lookups=("print_export", "sum"),
            demographics_only_lookups=("demographics_only", "sum"),
        )
        .reset_index()
    )
    user_days["after_hours_share"] = user_days["after_hours_events"] / user_days["events"]
    user_days["unexplained_share"] = user_days["unexplained"] / user_days["lookups"]
    user_days["peer_median"] = user_days.groupby(["peer_group", "day"], dropna=False)[
        "unexplained"
    ].transform("median")
    user_days["unexplained_vs_peers"] = (user_days["unexplained"] + 1) / (user_days["peer_median"] + 1)
    if base is None:
        user_days = user_days.drop(columns="new_patients")
    else:
        user_days["own_median"] = user_days["user_id"].map(base.own_median).fillna(0.0)
        user_days["unexplained_vs_own"] = (user_days["unexplained"] + 1) / (user_days["own_median"] + 1)
    lookups = lookups.drop(
        columns=["own", "has_image", "has_export", "has_print_export", "new_patient", "seen_before"]
    )
    stages.lap("behaviour")

    out.mkdir(parents=True, exist_ok=True)
    lookups.to_parquet(out / "lookups.parquet", index=False)
    user_days.to_parquet(out / "user_days.parquet", index=False)
    stages.lap("write")
    explained = int((~lookups["unexplained"]).sum())
    result: dict[str, Any] = {
        "rows": int(lookups["events"].sum()),
        "lookups": len(lookups),
        "explained_share": round(explained / len(lookups), 4) if len(lookups) else None,
        "flags": {name: int(flags[name].sum()) for name in FLAGS},
        "history_days": history_days,
        "history_rows": base.rows if base is not None else 0,
        "timings": stages.timings,
    }
    result["seconds"] = stages.total()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--date", required=True, help="the local day (YYYY-MM-DD)")
    parser.add_argument("--timezone", default="America/New_York")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--engine", default="c", choices=["c", "pyarrow"], help="pd.read_csv engine")
    parser.add_argument(
        "--history-days",
        type=int,
        default=0,
        help="rebuild the baseline from the raw logs of this many days before --date (0: day-local only)",
    )
    args = parser.parse_args()
    if args.history_days < 0:
        parser.error("--history-days must be >= 0")
    dt.date.fromisoformat(args.date)
    result = run(args.bundle, args.date, args.timezone, args.out, args.engine, args.history_days)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
