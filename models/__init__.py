"""Estimators (isolation-forest wrapper following the scikit-learn contract) and safe model persistence.

- ``iforest``: the isolation forest over user-day features (``AccessIsolationForest``);
- ``persistence``: model files (a JSON manifest and a skops payload) that load without running code.

``AccessIsolationForest.anomaly_score`` is the project's score: higher = more anomalous. Model files are
zip archives with a JSON manifest and a skops payload, refused on any checksum, format or type problem.
This package never imports ``detector``, ``features`` or click.
"""

from __future__ import annotations

from models.iforest import AccessIsolationForest
from models.persistence import ModelFileError, ModelManifest, load_model, save_model

__all__ = ["AccessIsolationForest", "ModelFileError", "ModelManifest", "load_model", "save_model"]
