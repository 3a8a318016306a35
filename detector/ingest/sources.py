"""Finding a bundle's files: each table is one file or many (a folder, a glob, one file per day).

Every file found, through a relative path, a glob or a link, must lie inside the bundle (or inside a folder
of ``[site] allowed_roots``): anything else is a ConfigError (exit 78) naming the setting or the bundle's
file, never where it leads. Globs are expanded here, not by ``glob``: ``**`` never descends through a
link to a folder (so a link loop cannot trap it), and the expansion stops with a ConfigError past
``MAX_GLOB_DEPTH`` folder levels, ``MAX_GLOB_FOLDERS`` folders read or ``MAX_GLOB_FILES`` files matched.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from detector.common.errors import ConfigError, InputMissingError
from detector.ingest.confschema import ADAPTER_FORMATS
from detector.ingest.mapping import SiteConfig
from detector.tables.bundle import TABLES
from features.columns import Tab

__all__ = [
    "MAX_GLOB_DEPTH",
    "MAX_GLOB_FILES",
    "MAX_GLOB_FOLDERS",
    "SourceFile",
    "confined",
    "detect_format",
    "expand_glob",
    "find_sources",
]

MAX_GLOB_DEPTH = 16
MAX_GLOB_FOLDERS = 20_000
MAX_GLOB_FILES = 100_000
_ALLOW_HINT = "keep it inside, or list the folder it leads into in [site] allowed_roots (absolute paths)"
_GLOB_HINT = "narrow the glob (its expansion is bounded: a link loop or a huge tree cannot stall a run)"

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


ADAPTED_SUFFIXES = (".json", ".ndjson", ".jsonl", ".xml", ".log", ".syslog", ".csv", ".tsv", ".txt")
"""What a file read by a source adapter (``[access_log] format`` epic, fhir, atna) may be named, each
also with ``.gz``."""


def _adapted_suffix(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz")
    return name.endswith(ADAPTED_SUFFIXES)


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


def _resolved(path: Path) -> Path | None:
    """Where ``path`` leads once every link is followed; None for a link loop or an unreadable link."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return None


def _inside(path: Path, roots: Iterable[Path]) -> bool:
    real = _resolved(path)
    return real is not None and any(real.is_relative_to(root) for root in roots)


def _roots(base: Path, allowed: Iterable[Path]) -> list[Path]:
    return [r for r in (_resolved(p) for p in (base, *allowed)) if r is not None]


def confined(base: Path, relative: str, allowed: Iterable[Path], setting: str, where: str) -> Path:
    """``base / relative`` (up to its first glob character), when it stays inside ``base`` or an
    ``allowed`` root once ``..`` and links are followed; else a ConfigError (exit 78) naming ``setting``."""
    parts = Path(relative).parts
    literal = next((i for i, part in enumerate(parts) if _magic(part)), len(parts))
    target = base.joinpath(*parts[:literal]) if literal else base
    if not _inside(target, _roots(base, allowed)):
        raise ConfigError(f"{setting} leads outside its folder", path=where, hint=_ALLOW_HINT)
    if ".." in parts[literal:]:
        raise ConfigError(f"{setting} has '..' after a glob character", path=where, hint=_ALLOW_HINT)
    return base / relative


def _magic(part: str) -> bool:
    return any(c in part for c in "*?[")


def expand_glob(base: Path, pattern: str, setting: str) -> list[Path]:
    """The files under ``base`` matching ``pattern`` (``*``, ``?``, ``[...]`` within a name, ``**`` any
    number of folders), sorted; names starting with a dot only when the pattern says so, as ``glob``."""
    parts = Path(pattern).parts
    literal = next((i for i, part in enumerate(parts) if _magic(part)), len(parts))
    start = base.joinpath(*parts[:literal]) if literal else base
    found: list[Path] = []
    folders = [0]

    def scan(folder: Path, rest: tuple[str, ...], depth: int) -> None:
        if depth > MAX_GLOB_DEPTH:
            raise ConfigError(f"{setting} reaches more than {MAX_GLOB_DEPTH} folder levels", hint=_GLOB_HINT)
        folders[0] += 1
        if folders[0] > MAX_GLOB_FOLDERS:
            raise ConfigError(f"{setting} reads more than {MAX_GLOB_FOLDERS} folders", hint=_GLOB_HINT)
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError:
            return
        head, tail = rest[0], rest[1:]
        if head == "**":
            if tail:
                scan(folder, tail, depth)
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    scan(Path(entry.path), rest, depth + 1)
                elif not tail and entry.is_file():
                    _add(Path(entry.path))
            return
        for entry in entries:
            if entry.name.startswith(".") and not head.startswith("."):
                continue
            if not fnmatch.fnmatchcase(entry.name, head):
                continue
            if not tail:
                if entry.is_file():
                    _add(Path(entry.path))
            elif entry.is_dir():
                scan(Path(entry.path), tail, depth + 1)

    def _add(path: Path) -> None:
        found.append(path)
        if len(found) > MAX_GLOB_FILES:
            raise ConfigError(f"{setting} matches more than {MAX_GLOB_FILES} files", hint=_GLOB_HINT)

    if literal == len(parts):
        return [start] if start.is_file() else []
    if start.is_dir():
        scan(start, parts[literal:], 0)
    return sorted(dict.fromkeys(found))


def _expand(bundle: Path, pattern: str, setting: str, known: Callable[[Path], object]) -> list[Path]:
    target = bundle / pattern
    if target.is_dir():
        return sorted(p for p in target.iterdir() if p.is_file() and known(p))
    if target.is_file():
        return [target]
    return expand_glob(bundle, pattern, setting)


def _default_paths(bundle: Path, table: str, known: Callable[[Path], object]) -> list[Path]:
    if known is detect_format:  # the canonical formats, in their order of preference
        found = [bundle / f"{table}{s}" for s, _ in _SUFFIXES if (bundle / f"{table}{s}").is_file()]
    else:
        found = sorted(p for p in bundle.glob(f"{table}.*") if p.is_file() and known(p))
    folder = bundle / table
    if folder.is_dir():
        found.extend(sorted(p for p in folder.iterdir() if p.is_file() and known(p)))
    for sep in ("_", "-"):
        found.extend(sorted(p for p in bundle.glob(f"{table}{sep}*") if p.is_file() and known(p)))
    return found


def _format_of(path: Path, forced: str | None) -> str | None:
    """A file's format: an adapter's (``fhir``, ``fhir.gz``...), the mapping's, or told by its name."""
    if forced in ADAPTER_FORMATS:
        return f"{forced}.gz" if path.name.lower().endswith(".gz") else forced
    return forced or detect_format(path)


def _adapted_hint(bundle: Path) -> str:
    """When the bundle holds an access log in a site audit format's file (``access_log.ndjson``, ``.xml``,
    ``.log``, ...), which only an adapter reads: how to name that format."""
    if not bundle.is_dir():
        return ""
    names = [path.name for path in bundle.glob("access_log*") if _adapted_suffix(path)]
    if not names:
        return ""
    formats = "|".join(ADAPTER_FORMATS)
    return f"; {min(names)} is read with --format {formats} (or [access_log] format in the mapping file)"


def find_sources(
    bundle: Path, config: SiteConfig, tables: tuple[str, ...] | None = None
) -> dict[str, list[SourceFile]]:
    """Every table's files in the bundle (or only ``tables``), in a stable order; access_log must be
    present."""
    if not bundle.exists():
        raise InputMissingError("bundle not found", path=bundle)
    if bundle.is_file():
        files = {Tab.access_log: [bundle]}
        base = bundle.parent
    else:
        base = bundle
        files = {}
        roots = _roots(base, config.allowed_roots)
        for name in tables or tuple(TABLES):
            mapping = config.mapping(name)
            known = _adapted_suffix if mapping.format in ADAPTER_FORMATS else detect_format
            setting = f"the [{name}] path"
            if mapping.path:
                confined(base, mapping.path, config.allowed_roots, setting, config.source or str(base))
            if mapping.path:
                paths = _expand(base, mapping.path, setting, known)
            else:
                paths = _default_paths(base, name, known)
            if mapping.path and not paths:
                raise InputMissingError(
                    f"no files match the [{name}] path in the mapping file", path=base / mapping.path
                )
            for path in paths:
                if not _inside(path, roots):
                    raise ConfigError(
                        f"this {name} file leads outside the bundle (a link?)", path=path, hint=_ALLOW_HINT
                    )
            if paths:
                files[name] = paths
    if Tab.access_log not in files and (tables is None or Tab.access_log in tables):
        raise InputMissingError(
            "the bundle has no access_log",
            path=bundle,
            hint="expected access_log.csv[.gz], access_log.parquet, access_log.jsonl or a folder access_log/"
            + _adapted_hint(bundle),
        )
    result: dict[str, list[SourceFile]] = {}
    for name, paths in files.items():
        forced = config.mapping(name).format
        sources = []
        for path in dict.fromkeys(paths):
            fmt = _format_of(path, forced)
            if fmt is None:
                raise ConfigError(
                    f"cannot tell the format of this {name} file",
                    path=path,
                    hint="name it .csv, .csv.gz, .parquet or .jsonl, or set format in the mapping",
                )
            sources.append(SourceFile(name, path, fmt))
        result[name] = sources
    return result
