"""Estimators (isolation-forest wrapper following the scikit-learn contract) and safe model persistence.

Filled in by the detection work; this package never imports ``detector`` or click.
"""

from __future__ import annotations

__all__: list[str] = []
