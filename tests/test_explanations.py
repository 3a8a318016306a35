"""Explanations are specific and checked (issue 11): each names a path from the user to the patient, a
fake log measures how often each kind explains a random patient, and identity and policy signals are
damped only by direct care, never by a role rule or continuing care alone."""

from __future__ import annotations

import gzip
import json
import math
import shutil
from pathlib import Path
from typing import Any

import duckdb
import ibis
import pandas as pd
import pytest

from detector.detect.evaluate import evaluate
from detector.detect.pipeline import run
from features.behaviour import FLAGS
from features.explain import DIRECT_CARE, EXPLANATION_KINDS
from sample_logs import generate_bundle

SMALL = {"seed": 3, "scale": 0.3, "days": 21, "scored_days": 5}


@pytest.fixture(scope="module")
def community(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("community")
    bundle, out = root / "bundle", root / "out"
    generate_bundle(bundle, **SMALL)
    truth = json.loads((bundle / "ground_truth.json").read_text())
    summary = run(bundle, out, since=truth["score_start"], until=truth["end"])
    return bundle, out, summary


def test_identity_and_policy_flags_are_damped_only_by_direct_care() -> None:
    kinds = [*EXPLANATION_KINDS, None]
    rows = pd.DataFrame(
        {
            "explanation": pd.Series(kinds, dtype="string"),
            "self_access": False,
            "household": True,
            "same_surname": True,
            "coworker": True,
            "neighbour": True,
            "vip": True,
            "deceased": True,
            "after_termination": False,
            "break_glass_unexplained": False,
            "imaging_unexplained": False,
            "print_export_unexplained": False,
            "exports": 0,
            "curiosity_users": 5,
        }
    )
    con = duckdb.connect()
    backend = ibis.duckdb.from_connection(con)
    t = backend.create_table("t", rows)
    for name in ("household", "same_surname", "coworker", "neighbour", "vip", "deceased", "curiosity"):
        raised = backend.execute(t.select(kind=t.explanation, on=FLAGS[name](t)))
        by_kind = {(None if pd.isna(k) else k): bool(v) for k, v in zip(raised.kind, raised.on, strict=True)}
        for kind, on in by_kind.items():
            assert on == (kind not in DIRECT_CARE), (name, kind)


def test_every_run_reports_the_explanation_self_check(community) -> None:
    _, out, summary = community
    check = summary["explanation_self_check"]
    assert set(check["kinds"]) == set(EXPLANATION_KINDS)
    assert check["lookups"] == summary["lookups"]["scored_window"]
    real = sum(v["real"] or 0 for v in check["kinds"].values())
    fake = sum(v["fake"] or 0 for v in check["kinds"].values())
    assert real == pytest.approx(check["real_explained"], abs=1e-3)
    assert fake == pytest.approx(check["fake_explained"], abs=1e-3)
    assert check["real_explained"] == pytest.approx(summary["lookups"]["explained_share"], abs=1e-3)
    # Every adopted role rule passed the fake-log test on the baseline.
    for rule in check["role_rules"]:
        assert rule["fake_share"] <= 0.10 and rule["real_share"] >= 0.5, rule
    # Explanations explain real work far more often than random patients (measured on this small
    # hospital: real 0.72, fake 0.15; the README has the figures at full size).
    assert check["fake_explained"] <= 0.17
    assert check["real_explained"] >= 4 * check["fake_explained"]
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "Explanation self-check" in report


def test_weights_come_from_the_site_and_are_recorded(community) -> None:
    _, _, summary = community
    weights = summary["weights"]
    assert set(weights["hospital"]) == set(FLAGS)
    # Rarer in the site's baseline means heavier: the weight is -log10 of the smoothed rate.
    for flag in weights["hospital"].values():
        assert flag["weight"] == pytest.approx(-math.log10(flag["rate"]), abs=2e-3)
    assert weights["by_role"], "per-role weights"


def _rewrite_csv_gz(path: Path, edit: Any) -> None:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        frame = pd.read_csv(handle, dtype=str, keep_default_na=False)
    frame = edit(frame)
    with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False)


def test_a_vip_peek_explained_only_by_a_role_rule_is_still_scored(community, tmp_path: Path) -> None:
    """A lookup that a role rule explains (not direct care) of a patient who turns out to be a VIP raises
    the VIP signal and reaches the queue: a role-level explanation does not erase identity signals."""
    bundle, out, _ = community
    truth = json.loads((bundle / "ground_truth.json").read_text())
    first = pd.read_json(out / "alerts.jsonl", lines=True) if (out / "alerts.jsonl").stat().st_size else None
    raised = set(first["user_id"]) if first is not None else set()
    # A role-explained lookup in the scored window, by a user with no case yet.
    candidates = _role_explained(bundle, truth)
    candidates = candidates[~candidates["user_id"].isin(raised)]
    assert not candidates.empty, "the run explains some lookups by a role rule"
    pick = candidates.iloc[0]
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)

    def make_vip(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(vip=frame["vip"].where(frame["patient_id"] != pick["patient_id"], "true"))

    _rewrite_csv_gz(copy / "patients.csv.gz", make_vip)
    run(copy, tmp_path / "out", since=truth["score_start"], until=truth["end"])
    cases = [json.loads(line) for line in (tmp_path / "out" / "alerts.jsonl").read_text().splitlines()]
    mine = [c for c in cases if c["user_id"] == pick["user_id"]]
    assert mine, "the VIP peek opened a case"
    looked = [d for d in mine[0]["lookups"] if d["patient_id"] == pick["patient_id"]]
    assert looked and looked[0]["explanation"].startswith("role_")
    assert "vip" in looked[0]["signals"]
    assert "vip" in mine[0]["scenarios"]


def _role_explained(bundle: Path, truth: dict[str, Any]) -> pd.DataFrame:
    """(user, patient) pairs whose scored lookups are all explained by a role rule, from a run in memory."""
    from detector.detect.pipeline import prepare

    p = prepare(bundle, since=truth["score_start"], until=truth["end"])
    frame = p.con.execute(
        """
        SELECT user_id, patient_id FROM lookups WHERE day >= CAST(? AS DATE)
        GROUP BY user_id, patient_id
        HAVING bool_and(explanation LIKE 'role_%') AND count(*) = 1
        ORDER BY user_id, patient_id
        """,
        [truth["score_start"]],
    ).df()
    p.con.close()
    return frame


@pytest.fixture(scope="module")
def archetypes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, dict[str, Any]]]:
    """One tuning archetype and one held out, small, each generated and run once."""
    made = {}
    for archetype in ("academic", "outpatient"):
        root = tmp_path_factory.mktemp(archetype)
        bundle, out = root / "bundle", root / "out"
        generate_bundle(bundle, archetype=archetype, **SMALL)
        truth = json.loads((bundle / "ground_truth.json").read_text())
        made[archetype] = (bundle, out, run(bundle, out, since=truth["score_start"], until=truth["end"]))
    return made


@pytest.mark.parametrize("archetype", ["academic", "outpatient"])
def test_the_queue_holds_on_a_tuning_and_a_held_out_archetype(archetypes, archetype: str) -> None:
    """Issue 11: the quality floor on an archetype rules were chosen on (academic) and on one they were
    not (outpatient: a clinic network with a triage pool and e-consults). Measured at seed 3: recall 0.93
    on both, precision 0.56, AP 0.85 and 0.95."""
    bundle, out, summary = archetypes[archetype]
    assert json.loads((bundle / "ground_truth.json").read_text())["archetype"] == archetype
    report = evaluate(bundle / "ground_truth.json", out / "alerts.jsonl", per_day=5)
    assert report["recall"] >= 0.9, report["missed"]
    assert report["precision"] >= 0.5
    assert report["average_precision"] >= 0.8
    check = summary["explanation_self_check"]
    # Measured: real 0.66, fake 0.10 (outpatient) and 0.13 (academic).
    assert check["real_explained"] >= 0.6
    assert check["fake_explained"] <= 0.16
    assert check["real_explained"] >= 4 * check["fake_explained"]


def _flag_rows(user: str, day: str, n: int, **flags: int) -> list[dict[str, Any]]:
    """``n`` unexplained lookups of ``user`` on ``day``; the first ``flags[name]`` of them raise ``name``."""
    rows = []
    for i in range(n):
        rows.append(
            {
                "user_id": user,
                "patient_id": f"P{i}",
                "day": pd.Timestamp(day).date(),
                "explanation": None,
                "exports": 0,
                "curiosity_users": 0,
                "no_active_care": False,
                **{
                    column: i < flags.get(column, 0)
                    for column in (
                        "self_access", "household", "same_surname", "coworker", "neighbour", "vip",
                        "deceased", "after_termination", "break_glass_unexplained", "imaging_unexplained",
                        "print_export_unexplained",
                    )
                },
            }
        )  # fmt: skip
    return rows


def test_a_flag_the_user_raises_every_week_weighs_less_than_one_they_never_raised() -> None:
    """Per-user base rates: a pharmacist whose surname is common matches patients' surnames every week, so
    a match says less for her than for a peer who never matched one; a violation (opening one's own chart)
    is never excused by habit."""
    from features.behaviour import HABIT_EXEMPT, add_role_surprise

    baseline = [
        *_flag_rows("habit", "2026-03-02", 200, same_surname=20, self_access=20),
        *_flag_rows("quiet", "2026-03-02", 200),
        *_flag_rows("other", "2026-03-02", 200),
    ]
    scored = [
        *_flag_rows("habit", "2026-03-10", 1, same_surname=1, self_access=1),
        *_flag_rows("quiet", "2026-03-10", 1, same_surname=1, self_access=1),
    ]
    con = duckdb.connect()
    backend = ibis.duckdb.from_connection(con)
    lookups = pd.DataFrame(baseline + scored).astype({"explanation": "string"})
    backend.create_table("lookups", lookups)
    users = pd.DataFrame({"user_id": ["habit", "quiet", "other"], "role": "pharmacist", "department": "rx"})
    backend.create_table("users", users)
    add_role_surprise(backend, since="2026-03-09", has_users=True)
    out = con.execute(
        "SELECT user_id, s_same_surname, s_self_access FROM lookups WHERE day >= DATE '2026-03-09'"
    ).df()
    by_user = out.set_index("user_id")
    assert "self_access" in HABIT_EXEMPT and "same_surname" not in HABIT_EXEMPT
    assert by_user.loc["habit", "s_same_surname"] < by_user.loc["quiet", "s_same_surname"] - 0.3
    # The habitual user's surprise is about her own rate (20 of 200, shrunk with 50 pseudo-lookups).
    assert by_user.loc["habit", "s_same_surname"] == pytest.approx(-math.log10(0.085), abs=0.1)
    assert by_user.loc["habit", "s_self_access"] == pytest.approx(by_user.loc["quiet", "s_self_access"])


def test_a_back_office_user_on_a_crowded_chart_is_not_one_of_the_curious() -> None:
    """Three nurses with no link open one chart: a crowd. A central pharmacist, whose group's work no rule
    explains, opens it too: his lookup neither counts in the crowd nor raises the flag."""
    from features.behaviour import add_curiosity

    def row(user: str, patient: str, day: str, explained: bool) -> dict[str, Any]:
        return {
            "user_id": user,
            "patient_id": patient,
            "day": pd.Timestamp(day).date(),
            "explanation": "care_department" if explained else None,
        }

    baseline = [
        row(u, f"B{i}", "2026-03-02", u.startswith("n")) for u in ("n1", "n2", "n3", "rx") for i in range(9)
    ]
    scored = [row(u, "PX", "2026-03-10", False) for u in ("n1", "n2", "n3", "rx")]
    con = duckdb.connect()
    backend = ibis.duckdb.from_connection(con)
    backend.create_table("lookups", pd.DataFrame(baseline + scored).astype({"explanation": "string"}))
    users = pd.DataFrame(
        {
            "user_id": ["n1", "n2", "n3", "rx"],
            "role": ["nurse", "nurse", "nurse", "pharmacist"],
            "department": ["ward", "ward", "ward", "central_pharmacy"],
        }
    )
    backend.create_table("users", users)
    add_curiosity(backend, since="2026-03-09", has_users=True)
    out = con.execute("SELECT user_id, curiosity_users FROM lookups WHERE patient_id = 'PX'").df()
    crowd = dict(zip(out.user_id, out.curiosity_users, strict=True))
    assert crowd == {"n1": 3, "n2": 3, "n3": 3, "rx": 0}


def test_the_curious_of_one_department_do_not_explain_each_other_out_of_a_crowd() -> None:
    """Two nurses of one ward and a third user open a chart nobody cares for: the ward's second nurse is
    'explained' only because her colleague opened it (role_colleague); she still counts in the crowd."""
    from features.behaviour import add_curiosity

    def row(user: str, patient: str, day: str, explanation: str | None) -> dict[str, Any]:
        return {
            "user_id": user,
            "patient_id": patient,
            "day": pd.Timestamp(day).date(),
            "explanation": explanation,
        }

    baseline = [
        row(u, f"B{i}", "2026-03-02", "care_department") for u in ("n1", "n2", "n3") for i in range(9)
    ]
    scored = [
        row("n1", "PX", "2026-03-10", None),
        row("n2", "PX", "2026-03-10", "role_colleague"),
        row("n3", "PX", "2026-03-10", None),
        row("n1", "PY", "2026-03-10", None),
        row("n2", "PY", "2026-03-10", "role_check_in"),
        row("n3", "PY", "2026-03-10", None),
    ]
    con = duckdb.connect()
    backend = ibis.duckdb.from_connection(con)
    backend.create_table("lookups", pd.DataFrame(baseline + scored).astype({"explanation": "string"}))
    users = pd.DataFrame({"user_id": ["n1", "n2", "n3"], "role": ["nurse"] * 3, "department": ["ward"] * 3})
    backend.create_table("users", users)
    add_curiosity(backend, since="2026-03-09", has_users=True)
    out = con.execute("SELECT patient_id, max(curiosity_users) AS n FROM lookups GROUP BY 1").df()
    crowd = dict(zip(out.patient_id, out.n, strict=True))
    # A check-in explains a lookup by the patient's own encounter: that user is not counted.
    assert crowd["PX"] == 3 and crowd["PY"] == 2


def test_a_larger_crowd_weighs_more_by_how_rare_its_size_was_in_the_baseline() -> None:
    """Crowds of 3 and 5 were common in the baseline, of 8 rare, of 13 never: the curiosity flag of a
    crowd member weighs more the rarer a crowd of that size was; nights stored before the tiers count
    nothing towards them."""
    from features.behaviour import CROWD_TIERS
    from features.crowd import crowd_tiers as _crowd_tiers

    counts = pd.DataFrame(
        {
            "k_curiosity": [300, 99],
            **{f"k_crowd_{n}": [{5: 60, 8: 2, 13: 0}[n], None] for n in CROWD_TIERS},
        }
    )
    backend = ibis.duckdb.connect()
    tiers = _crowd_tiers(backend.create_table("c", counts)).execute().iloc[0]
    assert tiers["t_5"] == pytest.approx(-math.log10(60.5 / 301))
    assert tiers["t_8"] == pytest.approx(-math.log10(2.5 / 301))
    assert tiers["t_13"] == pytest.approx(-math.log10(0.5 / 301))
    assert 0 < tiers["t_5"] < tiers["t_8"] < tiers["t_13"]
    old = backend.create_table("old", pd.DataFrame({"k_curiosity": [300]}))
    assert _crowd_tiers(old).execute().iloc[0].tolist() == [0.0] * len(CROWD_TIERS)


def test_a_combination_of_flags_the_group_raises_routinely_weighs_no_more_than_its_own_rarity() -> None:
    """A radiologist's reads raise 'unexplained image' and 'unexplained export' together every night:
    summing the two surprises would count one routine event twice, so the lookup weighs the rarity of
    the combination. A combination nobody raised (a VIP's images) keeps the sum, and a habit never
    lowers a combination that includes a violation (opening one's own chart)."""
    from detector.detect.scoring import ScoringPolicy, score_lookups
    from features.behaviour import add_role_surprise

    baseline = [
        *_flag_rows("reader", "2026-03-02", 200, imaging_unexplained=60, print_export_unexplained=60),
        *_flag_rows("reader", "2026-03-03", 20, self_access=20, same_surname=20),
        *_flag_rows("peer", "2026-03-02", 200, imaging_unexplained=60, print_export_unexplained=60),
    ]
    scored = [
        *_flag_rows("reader", "2026-03-10", 1, imaging_unexplained=1, print_export_unexplained=1),
        *_flag_rows("peer", "2026-03-11", 1, imaging_unexplained=1, vip=1),
        *_flag_rows("reader", "2026-03-12", 1, self_access=1, same_surname=1),
        *_flag_rows("peer", "2026-03-12", 1, self_access=1, same_surname=1),
    ]
    con = duckdb.connect()
    backend = ibis.duckdb.from_connection(con)
    lookups = pd.DataFrame(baseline + scored).astype({"explanation": "string"}).assign(writes=0)
    backend.create_table("lookups", lookups)
    users = pd.DataFrame({"user_id": ["reader", "peer"], "role": "physician", "department": "radiology"})
    backend.create_table("users", users)
    add_role_surprise(backend, since="2026-03-09", has_users=True)
    score_lookups(con, ScoringPolicy())
    surprise = " + ".join(f"s_{name}" for name in FLAGS)
    out = con.execute(
        f"SELECT user_id, day, {surprise} AS summed, s_joint, score FROM lookups"
        " WHERE day >= DATE '2026-03-09'"
    ).df()
    out["day"] = out["day"].astype(str)
    row = {(r.user_id, r.day): r for r in out.itertuples()}
    routine, vip = row[("reader", "2026-03-10")], row[("peer", "2026-03-11")]
    assert routine.s_joint < routine.summed - 0.3
    # 60 of the reader's 220 lookups raised this combination (shrunk with 50 pseudo-lookups).
    assert routine.s_joint == pytest.approx(-math.log10(60 / 270), abs=0.1)
    assert routine.score == pytest.approx(routine.s_joint)
    assert vip.s_joint >= vip.summed and vip.score == pytest.approx(vip.summed)
    habit, first = row[("reader", "2026-03-12")], row[("peer", "2026-03-12")]
    # The group's rate of the combination, not the reader's own 20 in 270.
    assert habit.s_joint == pytest.approx(first.s_joint, abs=0.05)
    assert habit.s_joint > -math.log10(20 / 270) + 0.15
