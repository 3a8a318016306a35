"""The signal registry (``features.flags.REGISTRY``) is the one place a signal is declared: its flag, its
weight, its scenario tag, its reason and the tables it needs are all derived from it (issue 13)."""

from __future__ import annotations

from detector.detect import reasons, scoring
from features import signals
from features.flags import FLAGS, HABIT_EXEMPT, HABIT_EXEMPT_MASK, REGISTRY
from features.tables import LOOKUPS

# Combinations of flags are stored per night as bit masks in this order (W/history/<D>/patterns.parquet):
# a stored night is read back by later versions, so the order of the signals that exist is frozen here.
# A new signal is appended; one inserted or moved breaks every stored mask and must fail this test.
STORED_BIT_ORDER = (
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
    "no_active_care",
)


def test_the_bit_order_of_stored_combinations_never_changes() -> None:
    names = [s.name for s in REGISTRY]
    assert names[: len(STORED_BIT_ORDER)] == list(STORED_BIT_ORDER)
    assert len(set(names)) == len(names)
    assert list(FLAGS) == names
    assert sum(2**i for i, s in enumerate(REGISTRY) if s.habit_exempt) == HABIT_EXEMPT_MASK


def test_every_signal_gets_its_weight_tag_reason_and_needs_from_the_registry() -> None:
    assert {s.name: s.weight for s in REGISTRY} == scoring.DEFAULT_WEIGHTS  # no flag silently weighs 0
    assert {s.name for s in REGISTRY if s.habit_exempt} == HABIT_EXEMPT
    for s in REGISTRY:
        if s.scenario:
            assert s.column and reasons._TAGS[s.column] == s.scenario, s.name
            assert s.reason, f"{s.name} tags a case but has no reason to show"
        if s.reason:
            assert s.column in (*reasons._REASON_ORDER, "print_export_unexplained"), (
                f"{s.name}'s reason is never listed"
            )
        if s.column and s.policy:
            needs = signals.SIGNALS[s.column]
            assert needs == ("users" in s.needs, "patients" in s.needs), s.name
    assert set(signals.SIGNALS) == {s.column for s in REGISTRY if s.column and s.policy}


def test_every_signal_column_is_a_declared_lookups_column() -> None:
    declared = {c.name: c.type for c in LOOKUPS.columns}
    for s in REGISTRY:
        if s.column:
            assert declared.get(s.column) == "BOOLEAN", s.name
        assert declared.get(f"s_{s.name}") == "DOUBLE", f"s_{s.name}"
