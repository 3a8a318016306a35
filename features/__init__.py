"""Feature definitions (per lookup, per user-day, per patient-day), written once for DuckDB and Spark.

Filled in by the detection work; this package never imports ``detector`` or click.
"""

from __future__ import annotations

__all__: list[str] = []
