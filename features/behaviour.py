"""Behavioural features: how unusual a lookup is for the user's role, how many unrelated staff looked at
a patient (curiosity), and per user-day volumes against the user's own history and their peers.

Base rates are learned from the baseline (days before ``since``): a flag that a role raises every day
(release-of-information staff print unexplained records; IT staff open unrelated charts) says little,
the same flag from a role that never raises it says much. Surprise is ``-log10`` of the role's smoothed
rate, so scores are comparable across roles.
"""

from __future__ import annotations

import duckdb

__all__ = ["FLAGS", "USER_DAY_FEATURES", "add_curiosity", "add_role_surprise", "build_user_days"]

# Flags whose role base rate is learned; each is a boolean expression over table ``lookups``.
FLAGS: dict[str, str] = {
    "unexplained": "explanation IS NULL",
    "self_access": "self_access",
    "household": "household AND explanation IS NULL",
    "same_surname": "same_surname AND explanation IS NULL",
    "coworker": "coworker AND explanation IS NULL",
    "neighbour": "neighbour AND explanation IS NULL",
    "vip": "vip AND explanation IS NULL",
    "deceased": "deceased AND explanation IS NULL",
    "after_termination": "after_termination",
    "break_glass": "break_glass_unexplained",
    "imaging": "imaging_unexplained",
    "image_export": "imaging_unexplained AND exports > 0",
    "print_export": "print_export_unexplained",
    "curiosity": "curiosity_users >= 3 AND explanation IS NULL",
}

USER_DAY_FEATURES: tuple[str, ...] = (
    "lookups",
    "unexplained",
    "unexplained_share",
    "new_patients",
    "after_hours_share",
    "print_export_lookups",
    "demographics_only_lookups",
    "unexplained_vs_own",
    "unexplained_vs_peers",
)


def add_curiosity(con: duckdb.DuckDBPyConnection) -> None:
    """``curiosity_users``: distinct users with an unexplained lookup of the patient that day or the next
    or previous day (a patient in the news draws a crowd)."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE patient_days AS
        SELECT patient_id, day, count(DISTINCT user_id) AS users
        FROM lookups WHERE explanation IS NULL GROUP BY ALL
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE lookups AS
        SELECT l.*, coalesce((
            SELECT sum(users) FROM patient_days d
            WHERE d.patient_id = l.patient_id AND d.day BETWEEN l.day - 1 AND l.day + 1
        ), 0) AS curiosity_users
        FROM lookups l
    """)


def add_role_surprise(
    con: duckdb.DuckDBPyConnection, *, since: str, has_users: bool, prior: float = 50.0
) -> None:
    """For every flag, ``s_<flag>`` = -log10 of the peer group's smoothed baseline rate (0 when the flag
    is off). Peer group = role and department; its rate is shrunk towards the role's, and the role's
    towards everyone's, with ``prior`` pseudo-lookups, so small groups borrow strength."""
    role = "u.role" if has_users else "'staff'"
    group = "concat_ws('/', u.role, u.department)" if has_users else "'staff'"
    counts = ", ".join(f"count(*) FILTER (WHERE {expr}) AS k_{name}" for name, expr in FLAGS.items())
    everyone = ", ".join(f"(sum(k_{name}) + 0.5) / (sum(n) + 1.0) AS e_{name}" for name in FLAGS)
    by_role = ", ".join(
        f"(sum(k_{name}) + {prior} * any_value(e.e_{name})) / (sum(n) + {prior}) AS r_{name}"
        for name in FLAGS
    )
    by_group = ", ".join(f"(k_{name} + {prior} * r.r_{name}) / (n + {prior}) AS g_{name}" for name in FLAGS)
    surprise = ", ".join(
        f"CASE WHEN {expr} THEN -log10(coalesce(g.g_{name}, r.r_{name}, e.e_{name})) ELSE 0 END AS s_{name}"
        for name, expr in FLAGS.items()
    )
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE lookups AS
        WITH peered AS (
            SELECT l.*, {group} AS peer_group, {role} AS peer_role
            FROM lookups l {"LEFT JOIN users u USING (user_id)" if has_users else ""}
        ),
        counted AS (
            SELECT peer_group, peer_role, count(*) AS n, {counts}
            FROM peered WHERE day < DATE '{since}' GROUP BY ALL
        ),
        e AS (SELECT {everyone} FROM counted),
        r AS (SELECT peer_role, {by_role} FROM counted CROSS JOIN e GROUP BY peer_role),
        g AS (SELECT peer_group, {by_group} FROM counted JOIN r USING (peer_role))
        SELECT l.*, {surprise}
        FROM peered l LEFT JOIN g USING (peer_group) LEFT JOIN r USING (peer_role) CROSS JOIN e
    """)


def build_user_days(con: duckdb.DuckDBPyConnection) -> None:
    """Table ``user_days``: per user and day, volumes compared with the user's own earlier days and with
    peers (same peer group) on the same day."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE user_days AS
        WITH firsts AS (
            SELECT user_id, patient_id, min(day) AS first_day FROM lookups GROUP BY ALL
        ),
        d AS (
            SELECT l.user_id, l.day, any_value(l.peer_group) AS peer_group,
                   count(*) AS lookups,
                   count(*) FILTER (WHERE l.explanation IS NULL) AS unexplained,
                   count(*) FILTER (WHERE f.first_day = l.day AND l.day > (SELECT min(day) + 6 FROM lookups))
                       AS new_patients,
                   sum(l.after_hours_events) / sum(l.events) AS after_hours_share,
                   count(*) FILTER (WHERE l.prints + l.exports > 0) AS print_export_lookups,
                   count(*) FILTER (WHERE l.demographics_only) AS demographics_only_lookups
            FROM lookups l JOIN firsts f USING (user_id, patient_id)
            GROUP BY l.user_id, l.day
        ),
        own AS (
            SELECT *, coalesce(median(unexplained) OVER (
                PARTITION BY user_id ORDER BY day ROWS BETWEEN 28 PRECEDING AND 1 PRECEDING), 0) AS own_median
            FROM d
        ),
        peers AS (
            SELECT *, median(unexplained) OVER (PARTITION BY peer_group, day) AS peer_median
            FROM own
        )
        SELECT *, unexplained / lookups AS unexplained_share,
               (unexplained + 1) / (own_median + 1) AS unexplained_vs_own,
               (unexplained + 1) / (peer_median + 1) AS unexplained_vs_peers
        FROM peers
    """)
