"""Model files that are versioned and safe to load: no code runs when a file is read.

A model file is a zip archive holding two members:

- ``manifest.json``: format version, library versions, training window, feature names, rows trained on,
  creation time and the SHA-256 of the payload (``ModelManifest``);
- ``model.skops``: the fitted ``AccessIsolationForest`` in the skops format, which rebuilds objects from
  an explicit description instead of unpickling them.

``load_model`` checks, in this order, before anything is reconstructed: the archive and manifest are
well formed, the format version is one this code writes, the payload's checksum matches the manifest,
and every type in the payload is on an allow-list. Only then does skops build the model, trusting exactly
those types. A different scikit-learn version than the one that saved the file warns (or raises).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import sklearn
import skops
import skops.io
from sklearn.utils.validation import check_is_fitted

from models.iforest import AccessIsolationForest

FORMAT_VERSION = 1
MANIFEST_MEMBER = "manifest.json"
PAYLOAD_MEMBER = "model.skops"

# Types the payload may contain beyond those skops trusts by default (scikit-learn estimators, numpy
# arrays and dtypes, builtins). Anything else reported by skops.io.get_untrusted_types is refused.
ALLOWED_TYPES: frozenset[str] = frozenset(
    {
        f"{AccessIsolationForest.__module__}.{AccessIsolationForest.__qualname__}",
        "sklearn.tree._tree.Tree",
    }
)


class ModelFileError(Exception):
    """A model file is missing, malformed, tampered with, from an unknown format, or not trusted."""


class ModelVersionWarning(UserWarning):
    """The model file was saved with a different scikit-learn version than the one installed."""


@dataclass(frozen=True)
class ModelManifest:
    """What a model file records about the model it carries."""

    format_version: int
    created_at: str
    training_start: str
    training_end: str
    n_rows: int
    feature_names: tuple[str, ...]
    python_version: str
    sklearn_version: str
    numpy_version: str
    skops_version: str
    payload_sha256: str

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str) -> ModelManifest:
        """Parse a manifest; ``source`` names the file in error messages."""
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise ModelFileError(f"{source}: {MANIFEST_MEMBER} is not valid JSON ({exc})") from exc
        if not isinstance(raw, dict):
            raise ModelFileError(f"{source}: {MANIFEST_MEMBER} must be a JSON object")
        version = raw.get("format_version")
        if version != FORMAT_VERSION:
            raise ModelFileError(
                f"{source}: unknown model file format version {version!r} (this version reads "
                f"{FORMAT_VERSION}); retrain the model or use the release that wrote it"
            )
        fields = {field.name: field.type for field in dataclasses.fields(cls)}
        missing = sorted(set(fields) - set(raw))
        if missing:
            raise ModelFileError(f"{source}: {MANIFEST_MEMBER} lacks {', '.join(missing)}")
        names = raw["feature_names"]
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise ModelFileError(f"{source}: {MANIFEST_MEMBER} feature_names must be a list of strings")
        if not isinstance(raw["n_rows"], int):
            raise ModelFileError(f"{source}: {MANIFEST_MEMBER} n_rows must be an integer")
        strings = [name for name in fields if name not in {"format_version", "n_rows", "feature_names"}]
        bad = [name for name in strings if not isinstance(raw[name], str)]
        if bad:
            raise ModelFileError(f"{source}: {MANIFEST_MEMBER} fields must be strings: {', '.join(bad)}")
        values: dict[str, Any] = {name: raw[name] for name in fields}
        values["feature_names"] = tuple(names)
        return cls(**values)


def save_model(
    model: AccessIsolationForest,
    path: str | Path,
    *,
    training_start: str,
    training_end: str,
    n_rows: int,
    created_at: datetime | None = None,
) -> ModelManifest:
    """Write a fitted model and its manifest to ``path`` (a zip file), atomically; return the manifest.

    The model must have been fitted on a DataFrame, so the file can record (and scoring can check) the
    feature names. ``created_at`` must be timezone-aware; it defaults to now (UTC).
    """
    check_is_fitted(model)
    feature_names = getattr(model, "feature_names_in_", None)
    if feature_names is None:
        raise ValueError("fit the model on a DataFrame with named feature columns so the file records them")
    if created_at is None:
        created_at = datetime.now(UTC)
    elif created_at.tzinfo is None:
        raise ValueError("created_at must be timezone-aware (e.g. datetime.now(UTC))")

    payload = skops.io.dumps(model)
    manifest = ModelManifest(
        format_version=FORMAT_VERSION,
        created_at=created_at.isoformat(),
        training_start=training_start,
        training_end=training_end,
        n_rows=int(n_rows),
        feature_names=tuple(str(name) for name in feature_names),
        python_version=".".join(str(part) for part in sys.version_info[:3]),
        sklearn_version=sklearn.__version__,
        numpy_version=np.__version__,
        skops_version=skops.__version__,
        payload_sha256=hashlib.sha256(payload).hexdigest(),
    )
    _write_atomically(Path(path), manifest.to_json().encode(), payload)
    return manifest


def load_model(
    path: str | Path, *, on_version_mismatch: Literal["warn", "error"] = "warn"
) -> tuple[AccessIsolationForest, ModelManifest]:
    """Read a model file written by ``save_model``: return the model and its manifest.

    Raises ``ModelFileError`` (naming the file) when the file is unreadable, malformed, of an unknown format
    version, fails its checksum, or contains types outside the allow-list; in all these cases nothing in the
    payload is reconstructed. A scikit-learn version other than the saving one issues a
    ``ModelVersionWarning``, or raises ``ModelFileError`` when ``on_version_mismatch="error"``.
    """
    path = Path(path)
    manifest_text, payload = _read_members(path)
    manifest = ModelManifest.from_json(manifest_text, source=str(path))

    if hashlib.sha256(payload).hexdigest() != manifest.payload_sha256:
        raise ModelFileError(
            f"{path}: {PAYLOAD_MEMBER} does not match the checksum in {MANIFEST_MEMBER}; the file was "
            "modified or corrupted and was not loaded"
        )
    if manifest.sklearn_version != sklearn.__version__:
        message = (
            f"{path}: saved with scikit-learn {manifest.sklearn_version}, running "
            f"{sklearn.__version__}; scores may differ, retrain the model with this version"
        )
        if on_version_mismatch == "error":
            raise ModelFileError(message)
        warnings.warn(message, ModelVersionWarning, stacklevel=2)

    try:
        untrusted = skops.io.get_untrusted_types(data=payload)
    except Exception as exc:  # skops raises zipfile, JSON and its own errors on malformed payloads
        raise ModelFileError(f"{path}: {PAYLOAD_MEMBER} is not a readable skops payload ({exc})") from exc
    refused = sorted(set(untrusted) - ALLOWED_TYPES)
    if refused:
        raise ModelFileError(
            f"{path}: {PAYLOAD_MEMBER} contains types that are not trusted: {', '.join(refused)}; "
            "the file was not loaded"
        )
    try:
        model = skops.io.loads(payload, trusted=list(untrusted))
    except Exception as exc:
        raise ModelFileError(f"{path}: {PAYLOAD_MEMBER} could not be loaded ({exc})") from exc

    if not isinstance(model, AccessIsolationForest):
        raise ModelFileError(f"{path}: {PAYLOAD_MEMBER} holds a {type(model).__name__}, not a model")
    stored_names = tuple(str(name) for name in getattr(model, "feature_names_in_", ()))
    if stored_names != manifest.feature_names:
        raise ModelFileError(f"{path}: the model's feature names differ from those in {MANIFEST_MEMBER}")
    return model, manifest


def _read_members(path: Path) -> tuple[str, bytes]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = sorted({MANIFEST_MEMBER, PAYLOAD_MEMBER} - names)
            if missing:
                raise ModelFileError(f"{path}: not a model file (missing {', '.join(missing)})")
            manifest_text = archive.read(MANIFEST_MEMBER).decode("utf-8")
            payload = archive.read(PAYLOAD_MEMBER)
    except FileNotFoundError as exc:
        raise ModelFileError(f"{path}: no such model file") from exc
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: not a readable model file ({exc})") from exc
    return manifest_text, payload


def _write_atomically(path: Path, manifest: bytes, payload: bytes) -> None:
    """Write the zip to a temporary file beside ``path`` and rename it, so no half file is ever left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(MANIFEST_MEMBER, manifest)
                archive.writestr(PAYLOAD_MEMBER, payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
