"""PHI Access Detector: finds inappropriate access to patient records in EHR audit logs.

The public Python API: every command of ``phi-detector`` is one of these calls (the CLI parses options,
calls it and prints). Names load on first use, so ``import detector`` stays cheap. ``ingest_bundle`` and
``run_night`` are named apart from the subpackages ``detector.ingest`` and ``detector.nightly``::

    import detector
    summary = detector.ingest_bundle(Path("bundle"), Path("out/canonical"))
    summary = detector.run(Path("bundle"), Path("out/detect"), since="2026-03-16")
    ws = detector.load_workspace(Path("/var/lib/phi-detector"))
    detector.run_night(ws, dt.date(2026, 3, 16))
    cases = detector.list_cases(ws, status="open")

The stages live in subpackages, lowest first (``tests/test_layout.py`` holds dependencies to this
order): ``common`` and ``tables``, ``ingest``, ``report``, ``detect``, ``siem``, ``review``, ``nightly``,
``investigate``, ``cli``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from detector.common.version import __version__

_API: dict[str, tuple[str, str]] = {
    # name: (module, attribute)
    "ingest_bundle": ("detector.ingest.flow", "ingest"),
    "run": ("detector.detect.pipeline", "run"),
    "evaluate": ("detector.detect.evaluate", "evaluate"),
    "init_workspace": ("detector.nightly.keys", "init_workspace"),
    "load_workspace": ("detector.nightly.workspace", "load_workspace"),
    "verify_workspace": ("detector.nightly.keys", "verify_workspace"),
    "run_night": ("detector.nightly.flow", "nightly"),
    "backfill": ("detector.nightly.flow", "backfill"),
    "train": ("detector.nightly.flow", "train"),
    "send": ("detector.siem.send", "send_alerts"),
    "reveal": ("detector.siem.send", "reveal"),
    "list_cases": ("detector.investigate.casebook", "list_cases"),
    "case_detail": ("detector.investigate.casebook", "case_detail"),
    "breach_scope": ("detector.investigate.casebook", "breach_scope"),
    "investigate_user": ("detector.investigate.lookups", "user_report"),
    "investigate_patient": ("detector.investigate.lookups", "patient_report"),
    "close_case": ("detector.investigate.casebook", "close_case"),
    "reopen_case": ("detector.investigate.casebook", "reopen_case"),
    "active_rules": ("detector.review.rules", "active_rules"),
    "add_rule": ("detector.review.rules", "add_rule"),
    "revoke_rule": ("detector.review.rules", "revoke_rule"),
}

__all__ = [
    "__version__",
    "active_rules",
    "add_rule",
    "backfill",
    "breach_scope",
    "case_detail",
    "close_case",
    "evaluate",
    "ingest_bundle",
    "init_workspace",
    "investigate_patient",
    "investigate_user",
    "list_cases",
    "load_workspace",
    "reopen_case",
    "reveal",
    "revoke_rule",
    "run",
    "run_night",
    "send",
    "train",
    "verify_workspace",
]

if TYPE_CHECKING:
    from detector.detect.evaluate import evaluate
    from detector.detect.pipeline import run
    from detector.ingest.flow import ingest as ingest_bundle
    from detector.investigate.casebook import breach_scope, case_detail, close_case, list_cases, reopen_case
    from detector.investigate.lookups import patient_report as investigate_patient
    from detector.investigate.lookups import user_report as investigate_user
    from detector.nightly.flow import backfill, train
    from detector.nightly.flow import nightly as run_night
    from detector.nightly.keys import init_workspace, verify_workspace
    from detector.nightly.workspace import load_workspace
    from detector.review.rules import active_rules, add_rule, revoke_rule
    from detector.siem.send import reveal
    from detector.siem.send import send_alerts as send


def __getattr__(name: str) -> Any:
    """Load a public name's module on first use (PEP 562)."""
    if name not in _API:
        raise AttributeError(f"module 'detector' has no attribute {name!r}")
    module, attribute = _API[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value
