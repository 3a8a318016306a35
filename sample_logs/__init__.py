"""A seeded generator of a realistic synthetic hospital's EHR audit logs, with planted, labelled incidents.

``generate_bundle(out_dir, seed=..., days=..., scale=...)`` writes a canonical bundle (users, patients,
encounters, one access-log file per day with dirty rows, mapping.toml) and ``ground_truth.json`` listing
every planted incident and exactly how many duplicate and malformed rows were written.
"""

from __future__ import annotations

from .generate import GenerationResult, generate_bundle
from .incidents import SCENARIOS
from .noise import REASONS

__all__ = ["REASONS", "SCENARIOS", "GenerationResult", "generate_bundle"]
