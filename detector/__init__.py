"""PHI Access Detector: finds inappropriate access to patient records in EHR audit logs."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
