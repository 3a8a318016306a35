"""Finding a bundle's files: each table is one file or many (a folder, a glob, one file per day)."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from detector.errors import ConfigError, InputMissingError
from detector.mapping import SiteConfig
from detector.schema import TABLES

__all__ = ["SourceFile", "detect_format", "find_sources"]

_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".csv.gz", "csv.gz"),
    (".jsonl.gz", "jsonl.gz"),
    (".ndjson.gz", "jsonl.gz"),
    (".csv", "csv"),
    (".txt", "csv"),
    (".parquet", "parquet"),
    (".jsonl", "jsonl"),
    (".ndjson", "jsonl"),
)


@dataclass(frozen=True)
class SourceFile:
    table: str
    path: Path
    format: str

    @property
    def compressed(self) -> bool:
        return self.format.endswith(".gz")


def detect_format(path: Path) -> str | None:
    name = path.name.lower()
    for suffix, fmt in _SUFFIXES:
        if name.endswith(suffix):
            return fmt
    return None


def _expand(bundle: Path, pattern: str) -> list[Path]:
    target = bundle / pattern
    if target.is_dir():
        return sorted(p for p in target.iterdir() if p.is_file() and detect_format(p))
    if target.is_file():
        return [target]
    return sorted(Path(p) for p in glob.glob(str(target), recursive=True) if Path(p).is_file())


def _default_paths(bundle: Path, table: str) -> list[Path]:
    found: list[Path] = []
    for suffix, _ in _SUFFIXES:
        candidate = bundle / f"{table}{suffix}"
        if candidate.is_file():
            found.append(candidate)
    folder = bundle / table
    if folder.is_dir():
        found.extend(sorted(p for p in folder.iterdir() if p.is_file() and detect_format(p)))
    for sep in ("_", "-"):
        found.extend(sorted(p for p in bundle.glob(f"{table}{sep}*") if p.is_file() and detect_format(p)))
    return found


def find_sources(
    bundle: Path, config: SiteConfig, tables: tuple[str, ...] | None = None
) -> dict[str, list[SourceFile]]:
    """Every table's files in the bundle (or only ``tables``), in a stable order; access_log must be
    present."""
    if not bundle.exists():
        raise InputMissingError("bundle not found", path=bundle)
    if bundle.is_file():
        files = {"access_log": [bundle]}
        base = bundle.parent
    else:
        base = bundle
        files = {}
        for name in tables or tuple(TABLES):
            mapping = config.mapping(name)
            paths = _expand(base, mapping.path) if mapping.path else _default_paths(base, name)
            if mapping.path and not paths:
                raise InputMissingError(
                    f"no files match the [{name}] path in the mapping file", path=base / mapping.path
                )
            if paths:
                files[name] = paths
    if "access_log" not in files and (tables is None or "access_log" in tables):
        raise InputMissingError(
            "the bundle has no access_log",
            path=bundle,
            hint="expected access_log.csv[.gz], access_log.parquet, access_log.jsonl or a folder access_log/",
        )
    result: dict[str, list[SourceFile]] = {}
    for name, paths in files.items():
        forced = config.mapping(name).format
        sources = []
        for path in dict.fromkeys(paths):
            fmt = forced or detect_format(path)
            if fmt is None:
                raise ConfigError(
                    f"cannot tell the format of this {name} file",
                    path=path,
                    hint="name it .csv, .csv.gz, .parquet or .jsonl, or set format in the mapping",
                )
            sources.append(SourceFile(name, path, fmt))
        result[name] = sources
    return result
