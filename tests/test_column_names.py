"""The stages' tables and columns are named once (``features.columns``, ``features.tables``,
``detector.tables``): outside those declarations no package module spells a table's or a derived column's
name as a string literal. SQL text names columns inside larger strings and is not concerned; a string that
is exactly a declared name is code handling that column by hand (``df["patient_id"]``, ``row["score"]``,
``.group_by("user_id")``) and must say ``Col.patient_id`` instead, or read a dataclass's field.

Where a string equal to a declared name means something else (a JSON key of the run summary that counts
lookups, a CLI option), it is listed in ``ALLOWED`` with the reason; a stale entry fails a test.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from detector.tables.cases import STORE_TABLES
from features.columns import Col, Tab
from features.flags import CROWD_TIERS, FLAGS
from features.signals import SIGNALS
from features.tables import HISTORY, LOOKUPS

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("detector", "features", "models")

DECLARATIONS = {"features/columns.py", "features/tables.py"}
"""Modules that declare names: every literal in them is a declaration."""
DECLARATION_FOLDERS = ("detector/tables/",)
REGISTRY_MODULES = {"features/flags.py"}
"""Modules whose module-level assignments declare names (the signal registry); their functions may not."""

ALLOWED: dict[tuple[str, str], str] = {
    ("features/fake_log.py", "lookups"): "the self-check summary's count of lookups (a JSON key of the run "
    "summary), not the table",
    ("features/normalise.py", "n"): "the USPS abbreviation of the directional north, not the count column",
    (
        "features/signals.py",
        "vip",
    ): "the canonical patients table's vip column (the bundle's schema), read to "
    "compute the signal of the same name",
    ("detector/detect/reasons.py", "household"): "the reason's words for a household match",
    ("detector/detect/evaluate.py", "pairs"): "the ground-truth file's incident key (user, patient pairs)",
    ("detector/detect/evaluate.py", "scenarios"): "the evaluation report's recall per scenario",
    ("detector/detect/pipeline.py", "lookups"): "the run summary's key that counts lookups",
    (
        "detector/investigate/casebook.py",
        "patients",
    ): "how many patients a case names (the breach scope's list)",
    ("detector/cli/cases.py", "patients"): "the breach scope's list of affected patients",
    ("detector/nightly/outputs.py", "lookups"): "the night summary's key that counts lookups",
    ("detector/siem/send.py", "events"): "the delivery outcome's count of SIEM events",
    **{
        (
            "detector/siem/formats.py",
            label,
        ): "a label of the CEF, LEEF, ECS or OCSF record a SIEM parses: fixed "
        "by the formats, not renamed with the case's field"
        for label in ("patients", "scenarios", "score", "severity", "status", "unexplained")
    },
    ("detector/cli/batch.py", "lookups"): "the run summary's key for its lookup counts",
    ("detector/nightly/flow.py", "lookups"): "the night summary's key for its lookup counts",
    ("detector/cli/delivery.py", "events"): "the send result's count of SIEM events",
    ("detector/cli/investigation.py", "patients"): "the user report's per-day count of distinct patients",
    ("detector/report/charts.py", "events"): "an axis title and a legend label",
    ("detector/report/data.py", "patients"): "the chart data's list of a case's lookups as the report shows "
    "them",
    ("detector/investigate/lookups.py", "unexplained"): "a row's plain-language reason and CSS class",
    ("detector/cli/shell.py", "status"): "the ingest summary's outcome (ok or failed)",
    ("detector/cli/shell.py", "patients"): "the case list's count of distinct patients (a case book key)",
    ("detector/ingest/flow.py", "status"): "the ingest summary's outcome (ok or failed)",
    ("detector/nightly/intake.py", "status"): "the night's ingest summary's outcome (ok or failed)",
    ("detector/nightly/flow.py", "status"): "the night summary's outcome (ok or failed)",
}
"""(module, literal) -> why this string, equal to a declared name, is not that table or column."""


def _own(namespace: type) -> dict[str, str]:
    return {k: v for k, v in vars(namespace).items() if not k.startswith("_")}


def _generated() -> set[str]:
    out = {f"s_{f}" for f in FLAGS} | {f"k_{f}" for f in FLAGS} | {f"k_crowd_{n}" for n in CROWD_TIERS}
    return out | set(SIGNALS)


def declared_names() -> set[str]:
    names = set(_own(Col).values()) | set(_own(Tab).values()) | set(SIGNALS) | set(HISTORY)
    for row_type in STORE_TABLES.values():
        names |= {f.name for f in dataclasses.fields(row_type)}
    return names


def _modules() -> list[str]:
    out = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in DECLARATIONS or rel.startswith(DECLARATION_FOLDERS):
                continue
            out.append(rel)
    return out


def _exempt_nodes(tree: ast.Module, rel: str) -> set[int]:
    """The constants of module-level assignments in a registry module (their declarations), ``__all__``
    (names of Python objects, not columns), and docstrings everywhere."""
    exempt: set[int] = set()
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in stmt.targets):
            exempt |= {id(n) for n in ast.walk(stmt.value)}
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            exempt.add(id(body[0].value))
    if rel in REGISTRY_MODULES:
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign | ast.AnnAssign):
                exempt |= {id(n) for n in ast.walk(stmt)}
    return exempt


def literals(rel: str, source: str | None = None) -> list[tuple[int, str]]:
    """(line, literal) for every string constant in the module that is exactly a declared name."""
    names = declared_names()
    tree = ast.parse((ROOT / rel).read_text(encoding="utf-8") if source is None else source)
    exempt = _exempt_nodes(tree, rel)
    return sorted(
        (n.lineno, n.value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant)
        and isinstance(n.value, str)
        and n.value in names
        and id(n) not in exempt
        and (rel, n.value) not in ALLOWED
    )


@pytest.mark.parametrize("rel", _modules())
def test_no_module_spells_a_declared_name(rel: str) -> None:
    found = literals(rel)
    assert not found, f"{rel} spells declared names as literals (use Col/Tab or a dataclass): {found}"


def test_allowed_entries_are_current() -> None:
    names = declared_names()
    for (rel, value), reason in ALLOWED.items():
        assert reason, (rel, value)
        assert value in names, f"ALLOWED lists {value!r}, which is no longer a declared name"
        text = (ROOT / rel).read_text(encoding="utf-8")
        tree = ast.parse(text)
        hits = [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value == value]
        assert hits, f"ALLOWED lists {value!r} in {rel}, which no longer spells it"


def test_col_attributes_are_their_own_names_and_cover_the_declarations() -> None:
    for namespace in (Col, Tab):
        for attr, value in _own(namespace).items():
            assert attr == value, f"{namespace.__name__}.{attr} is {value!r}"
    declared = {n for t in (LOOKUPS, *HISTORY.values()) for n in t.names}
    care = {n for n in declared if n.startswith(("n_", "f_")) and n not in {"n_flags", "n_users", "f_n"}}
    assert set(_own(Col).values()) == declared - _generated() - care


def test_the_check_catches_a_literal() -> None:
    """The scan itself: a subscript by a declared name is found; the same name inside SQL text, a
    docstring or ``__all__`` is not."""
    sample = (
        '__all__ = ["score"]\n\n\ndef f(df, con):\n    """Reads patient_id."""\n'
        '    con.execute("SELECT patient_id FROM lookups")\n    return df["patient_id"]\n'
    )
    assert literals("detector/any.py", sample) == [(7, "patient_id")]
