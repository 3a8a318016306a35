"""The fake log and what is learned and checked with it (Fabbri and LeFevre, VLDB 2011).

Explanations are claims to be checked. Every run builds a fake log (``fake_lookups``): each lookup keeps
its user, day and times but gets a random patient active that day, and the same rules
(``features.care``) explain it. Table ``explain_counts`` holds, per day and peer group, the real and fake
lookups explained by each kind and covered by each relation (``relation_counts``, ``with_kind_counts``):
the role rules are adopted from it (``adopt_role_rules``: a relation whose fake coverage in the group is
above ``role_max_fake_share`` is too broad, however much real work it covers) and the run reports it as
the explanation self-check (``explanation_self_check``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import ibis

from features.care import EXPLANATION_KINDS, RELATIONS, ExplainSettings, with_care
from features.columns import Col
from features.engine import stable_hash

__all__ = [
    "adopt_role_rules",
    "explanation_self_check",
    "fake_lookups",
    "relation_counts",
    "with_kind_counts",
]


def fake_lookups(backend: Any, lookups: Any, seed: int) -> Any:
    """Each lookup with a random patient active the same day (deterministic: a hash of the lookup, the same
    on every engine)."""
    active = lookups.select(a_day=lookups.day, a_patient_id=lookups.patient_id).distinct()
    active = active.mutate(
        a_k=ibis.row_number().over(
            group_by=active.a_day, order_by=[stable_hash(backend, active.a_patient_id), active.a_patient_id]
        ),
    )
    sizes = active.group_by("a_day").aggregate(a_n=active.count())
    keyed = lookups.join(sizes, lookups.day == sizes.a_day)
    mixed = stable_hash(backend, keyed.user_id + "|" + keyed.patient_id + "|" + ibis.literal(str(seed)))
    keyed = keyed.mutate(pick=(mixed % keyed.a_n).abs())
    fake = keyed.join(active, [keyed.day == active.a_day, keyed.pick == active.a_k])
    return fake.select(
        Col.user_id,
        patient_id=fake.a_patient_id,
        day=fake.day,
        first_access=fake.first_access,
        last_access=fake.last_access,
    )


def relation_counts(real: Any, real_care: Any, fake: Any, fake_care: Any) -> Any:
    """Per day and peer group: ``n`` real lookups and ``n_<relation>`` covered; ``f_n`` and ``f_<relation>``
    for the fake log."""
    r = with_care(real, real_care)
    f = with_care(fake, fake_care)
    rc = r.group_by([Col.day, Col.peer_group]).aggregate(
        n=r.count(), **{f"n_{x}": r.count(where=r[f"rel_{x}"]) for x in RELATIONS}
    )
    fc = f.group_by(c_day=f.day, c_group=f.peer_group).aggregate(
        f_n=f.count(), **{f"f_{x}": f.count(where=f[f"rel_{x}"]) for x in RELATIONS}
    )
    both = rc.left_join(fc, [rc.day == fc.c_day, rc.peer_group.identical_to(fc.c_group)])
    return both.select(
        *rc.columns,
        f_n=both.f_n.fill_null(0),
        **{f"f_{x}": both[f"f_{x}"].fill_null(0) for x in RELATIONS},
    )


def adopt_role_rules(counts: Any, s: ExplainSettings) -> Any:
    """The role rules: (peer group, relation) pairs whose baseline coverage is high and fake coverage low."""
    per = counts.filter(counts.peer_group.notnull())
    totals = per.group_by(Col.peer_group).aggregate(
        n=per.n.sum(),
        f_n=per.f_n.sum(),
        **{f"n_{x}": per[f"n_{x}"].sum() for x in RELATIONS},
        **{f"f_{x}": per[f"f_{x}"].sum() for x in RELATIONS},
    )
    rules = [
        totals.select(
            Col.peer_group,
            relation=ibis.literal(x),
            n=totals.n,
            real_share=totals[f"n_{x}"].cast("float64") / totals.n.cast("float64"),
            fake_share=totals[f"f_{x}"].cast("float64") / ibis.greatest(totals.f_n, 1).cast("float64"),
        )
        for x in RELATIONS
    ]
    union = ibis.union(*rules)
    return union.filter(
        union.n >= s.role_min_lookups,
        union.real_share >= s.role_min_share,
        union.fake_share <= s.role_max_fake_share,
    ).drop(Col.n)


def with_kind_counts(counts: Any, real_x: Any, fake_x: Any) -> Any:
    """``counts`` plus ``x_<kind>`` and ``fx_<kind>``: real and fake lookups explained by each kind."""
    rk = real_x.group_by(k_day=real_x.day, k_group=real_x.peer_group).aggregate(
        **{f"x_{k}": real_x.count(where=real_x.explanation == k) for k in EXPLANATION_KINDS}
    )
    fk = fake_x.group_by(q_day=fake_x.day, q_group=fake_x.peer_group).aggregate(
        **{f"fx_{k}": fake_x.count(where=fake_x.explanation == k) for k in EXPLANATION_KINDS}
    )
    j = counts.left_join(rk, [counts.day == rk.k_day, counts.peer_group.identical_to(rk.k_group)])
    j = j.left_join(fk, [j.day == fk.q_day, j.peer_group.identical_to(fk.q_group)])
    return j.select(
        *counts.columns,
        **{f"x_{k}": j[f"x_{k}"].fill_null(0) for k in EXPLANATION_KINDS},
        **{f"fx_{k}": j[f"fx_{k}"].fill_null(0) for k in EXPLANATION_KINDS},
    )


def explanation_self_check(backend: Any, *, since: str, until: str) -> dict[str, Any]:
    """The explanation self-check over the scored days: per kind, the share of real lookups and of fake
    lookups (a random patient active that day) it explains, and the rules adopted."""
    counts = backend.table("explain_counts")
    window = counts.filter(counts.day.between(dt.date.fromisoformat(since), dt.date.fromisoformat(until)))
    totals = window.aggregate(
        n=window.n.sum(),
        f_n=window.f_n.sum(),
        **{f"x_{k}": window[f"x_{k}"].sum() for k in EXPLANATION_KINDS},
        **{f"fx_{k}": window[f"fx_{k}"].sum() for k in EXPLANATION_KINDS},
    ).execute()
    row = {k: (0 if v is None or v != v else int(v)) for k, v in totals.iloc[0].to_dict().items()}
    n, f_n = row[Col.n], row[Col.f_n]

    def share(k: int, total: int) -> float | None:
        return round(k / total, 4) if total else None

    kinds = {
        kind: {"real": share(row[f"x_{kind}"], n), "fake": share(row[f"fx_{kind}"], f_n)}
        for kind in EXPLANATION_KINDS
    }
    real_all = sum(row[f"x_{k}"] for k in EXPLANATION_KINDS)
    fake_all = sum(row[f"fx_{k}"] for k in EXPLANATION_KINDS)
    rules = backend.table("role_rules").order_by([Col.peer_group, "relation"]).execute()
    return {
        "lookups": n,
        "real_explained": share(real_all, n),
        "fake_explained": share(fake_all, f_n),
        "kinds": kinds,
        "role_rules": [
            {
                Col.peer_group: str(r.peer_group),
                "relation": str(r.relation),
                "real_share": round(float(r.real_share), 4),
                "fake_share": round(float(r.fake_share), 4),
            }
            for r in rules.itertuples()
        ],
    }
