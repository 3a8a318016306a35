"""A seeded generator of a realistic synthetic hospital's EHR audit logs, with planted, labelled incidents.

``generate_bundle(out_dir, seed=..., days=..., scale=...)`` writes a canonical bundle (users, patients,
encounters, one access-log file per day with dirty rows, mapping.toml) and ``ground_truth.json`` listing
every planted incident and exactly how many duplicate and malformed rows were written.
``write_epic_extract(bundle, out)`` writes the same hospital with an Epic-style access log extract.
``archetype=`` picks how the hospital is organised (``ARCHETYPES``; rules are tuned on
``TUNING_ARCHETYPES`` and checked on ``HELD_OUT_ARCHETYPES``).
"""

from __future__ import annotations

from .archetypes import ARCHETYPES, HELD_OUT_ARCHETYPES, TUNING_ARCHETYPES
from .behaviour import BEHAVIOUR_SCENARIOS
from .epic import EpicExtract, write_epic_extract
from .generate import GenerationResult, generate_bundle
from .incidents import SCENARIOS
from .noise import REASONS

__all__ = [
    "ARCHETYPES",
    "BEHAVIOUR_SCENARIOS",
    "HELD_OUT_ARCHETYPES",
    "REASONS",
    "SCENARIOS",
    "TUNING_ARCHETYPES",
    "EpicExtract",
    "GenerationResult",
    "generate_bundle",
    "write_epic_extract",
]
