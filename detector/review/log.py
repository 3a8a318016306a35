"""Review: privacy officers' verdicts and allow-list rules, kept as evidence that review happened.

``W/review/log.jsonl`` is append-only: one JSON object per line, each with a sequence number, the time
(UTC), the reviewer, the action and a hash chained to the line before. The hash is an HMAC-SHA256 under
the workspace's secret key (``detector.common.integrity``), so an edited, reordered, inserted or deleted line
is detected when the log is read (exit 65), even when the editor recomputed a plain SHA-256 chain. Actions:

* ``verdict``: a case closed as ``confirmed``, ``false-positive`` or ``policy-exception``, with a note
  (and, for confirmed cases, the breach discovery date when the office sets one);
* ``reopen``: a closed case open again (its verdict no longer applies);
* ``allow``: an allow-list rule with an expiry: a user may access a patient, or a role may access the
  patients of a department; ``revoke`` ends one early (``detector.review.rules``).

A chain alone cannot show that its last lines were cut off, so the log's head (the number and hash of
its last entry, sealed with the key) is also recorded where a truncation of the log cannot reach it:
in ``W/review/head.json`` at every append, and by every night in its ``summary.json``
(``review_head``). Reading the log checks it against every recorded head: a log shorter than one, or
whose entry differs from one, was tampered with (exit 65 naming the log line). A last line without its
newline is tampering or corruption too: appends replace the file whole (temporary file, fsync,
rename), so a crash never leaves half a line.

The log sits beside the case database rather than in it: the nightly job holds ``cases.duckdb`` open for
writing, and reviewers work while it runs. Appends take their own lock (``W/review/.lock``). A night
records how many log entries it applied (``review_seq`` in its summary) and uses the same number when
re-run, so re-running a night reproduces it whatever was reviewed since.

The log is read, checked and hashed as the JSON objects it records (dicts); readers that act on entries
use their typed views (``detector.tables.review``): ``verdicts`` gives ``Verdict`` records,
``detector.review.rules.active_rules`` ``AllowRule`` records, and ``ReviewEntry.from_json`` any entry.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from detector.common.errors import BadDataError, ConfigError, UsageError
from detector.common.integrity import (
    HEAD_NAME,
    MIGRATE_HINT,
    key_id,
    key_path,
    mac,
    read_key,
    require_key,
    same,
)
from detector.tables.cases import Key
from detector.tables.review import Verdict

__all__ = [
    "VERDICTS",
    "ReviewLog",
    "closed_cases",
    "in_force",
    "night_head",
    "verdicts",
]

VERDICTS = ("confirmed", "false-positive", "policy-exception")
GENESIS = "0" * 64
RESTORE = "restore the review log from backup; entries are never edited in place"


def _digest(key: bytes | None, prev: str, entry: dict[str, Any]) -> str:
    """The entry's link in the chain: HMAC under the workspace key (plain SHA-256 only in logs written
    before workspaces had keys, read once by the migration)."""
    body = json.dumps(entry, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    if key is None:
        return hashlib.sha256((prev + body).encode("utf-8")).hexdigest()
    return mac(key, "phi-detector review", prev, body)


def _line(recorded: dict[str, Any]) -> bytes:
    return (json.dumps(recorded, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def _head(key: bytes, entries: list[dict[str, Any]], bound: str) -> dict[str, Any]:
    seq, last = len(entries), entries[-1]["hash"] if entries else GENESIS
    return {"seq": seq, "hash": last, "key_id": key_id(key), "mac": _head_mac(key, bound, seq, last)}


def _head_mac(key: bytes, bound: str, seq: int, last: str) -> str:
    return mac(key, "phi-detector review head", bound, str(seq), last)


def night_head(key: bytes, entries: list[dict[str, Any]], night: str) -> dict[str, Any]:
    """The head of the entries a night applied, sealed and bound to the night (its ``review_head``)."""
    return _head(key, entries, night)


def _replace(path: Path, data: bytes) -> None:
    """``path`` replaced whole by ``data``: a temporary file beside it, fsynced, renamed, folder fsynced."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ReviewLog:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.folder = root / "review"
        self.path = self.folder / "log.jsonl"
        self.head_path = self.folder / HEAD_NAME

    def entries(self, upto: int | None = None) -> list[dict[str, Any]]:
        """Every entry (the first ``upto`` when given), the whole log checked: the keyed hash chain line
        by line, then against every recorded head. Any failure is a BadDataError (exit 65) naming the
        file and line; a workspace whose log has entries but which has no key is refused (exit 78)."""
        key = read_key(self.root)
        data = self._read()
        if key is None:
            if data:
                raise ConfigError(
                    "the review log has entries but the workspace has no secret key to verify them",
                    path=key_path(self.root),
                    hint=MIGRATE_HINT,
                )
            self._check_nights([], None)
            return []
        recorded = self._recorded_head(key, bool(data))
        out = self._parse(data, key)
        if recorded is not None:
            self._check_head(out, recorded, f"{self.head_path.name} (the head at the last append)")
        self._check_nights(out, key)
        return out[:upto] if upto is not None else out

    def _read(self) -> bytes:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return b""

    def _parse(self, data: bytes, key: bytes | None) -> list[dict[str, Any]]:
        if data and not data.endswith(b"\n"):
            raise BadDataError(
                "the last line is incomplete (no final newline): the log was cut short or corrupted",
                path=self.path,
                line=data.count(b"\n") + 1,
                hint=RESTORE,
            )
        out: list[dict[str, Any]] = []
        prev = GENESIS
        for number, raw in enumerate(data.split(b"\n")[:-1], start=1):
            try:
                entry = json.loads(raw.decode("utf-8"))
                recorded = entry.pop("hash")
                intact = (
                    entry.get("prev") == prev
                    and same(recorded, _digest(key, prev, entry))
                    and entry.get("seq") == number
                    and _line(entry | {"hash": recorded}) == raw + b"\n"
                )
            except (UnicodeError, ValueError, KeyError, AttributeError, TypeError) as exc:
                # not UTF-8, not JSON, not an object, or text that cannot be encoded (a lone surrogate)
                raise BadDataError(
                    "not a review log entry", path=self.path, line=number, hint=RESTORE
                ) from exc
            if not intact:
                raise BadDataError(
                    "the review log was altered: the hash chain breaks here",
                    path=self.path,
                    line=number,
                    hint=RESTORE,
                )
            out.append(entry | {"hash": recorded})
            prev = recorded
        return out

    def _recorded_head(self, key: bytes, has_entries: bool) -> dict[str, Any] | None:
        """``head.json``, its seal checked; None only for a log never written with a key."""
        try:
            head = json.loads(self.head_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            if not has_entries:
                return None
            raise BadDataError(
                "the review log's recorded head is missing", path=self.head_path, hint=RESTORE
            ) from None
        except (OSError, ValueError) as exc:
            raise BadDataError("not a readable review head", path=self.head_path, hint=RESTORE) from exc
        self._check_seal(head, key, "log", self.head_path)
        return dict(head)

    def _check_seal(self, head: Any, key: bytes, bound: str, source: Path) -> None:
        if not isinstance(head, dict) or not isinstance(head.get("seq"), int) or head["seq"] < 0:
            raise BadDataError("not a readable review head", path=source, hint=RESTORE)
        if head.get("key_id") != key_id(key):
            raise BadDataError(
                f"the workspace key is not the one that sealed {source.name}",
                path=key_path(self.root),
                hint="restore the workspace's own key file from backup",
            )
        if not same(head.get("mac"), _head_mac(key, bound, head["seq"], str(head.get("hash")))):
            raise BadDataError("the recorded review head was altered", path=source, hint=RESTORE)

    def _check_head(self, entries: list[dict[str, Any]], head: dict[str, Any], what: str) -> None:
        seq = int(head["seq"])
        if len(entries) < seq:
            raise BadDataError(
                f"the review log has {len(entries)} entries but {what} recorded {seq}: entries were removed",
                path=self.path,
                line=len(entries) + 1,
                hint=RESTORE,
            )
        if "hash" in head and seq and entries[seq - 1]["hash"] != head["hash"]:
            raise BadDataError(
                f"entry {seq} differs from the one {what} recorded", path=self.path, line=seq, hint=RESTORE
            )

    def _check_nights(self, entries: list[dict[str, Any]], key: bytes | None) -> None:
        """Every completed night's ``review_head`` (``review_seq`` for nights run before heads)."""
        for marker in sorted((self.root / "runs").glob("????-??-??/_SUCCESS")):
            source = marker.parent / "summary.json"
            try:
                summary = json.loads(source.read_text(encoding="utf-8"))
                head = summary.get("review_head")
                seq = summary.get("review_seq", 0) if head is None else None
            except (OSError, ValueError, AttributeError) as exc:
                raise BadDataError("not a readable night summary", path=source) from exc
            what = f"the night of {marker.parent.name}"
            if head is not None:
                if key is None:
                    raise BadDataError(
                        "the workspace key is missing but its nights were sealed with one",
                        path=key_path(self.root),
                        hint="restore the key file from backup",
                    )
                self._check_seal(head, key, marker.parent.name, source)
                self._check_head(entries, head, what)
            elif isinstance(seq, int) and seq > 0:
                self._check_head(entries, {"seq": seq}, what)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write_head(self, key: bytes, entries: list[dict[str, Any]]) -> None:
        head = _head(key, entries, "log")
        _replace(self.head_path, (json.dumps(head, indent=2, sort_keys=True) + "\n").encode("utf-8"))

    def start(self, key: bytes) -> None:
        """A new workspace's log: its empty head, so that deleting the log later is detected."""
        with self._locked():
            if not self.head_path.exists() and not self._read():
                self._write_head(key, [])

    def legacy_entries(self) -> list[dict[str, Any]]:
        """The entries of a log written before the workspace had a key, its plain chain checked (a line
        cut by a crash of the old appends, which were not atomic, was never recorded)."""
        data = self._read()
        if data and not data.endswith(b"\n"):
            data = data[: data.rfind(b"\n") + 1]
        entries = self._parse(data, None)
        self._check_nights(entries, None)
        return entries

    def reseal(self, key: bytes) -> int:
        """Migration of a log written before the workspace had a key: its plain chain is checked, then
        every entry is chained again under ``key`` (content unchanged) and the head recorded. Returns the
        number of entries."""
        with self._locked():
            entries = self.legacy_entries()
            out, prev = [], GENESIS
            for entry in entries:
                plain = {k: v for k, v in entry.items() if k != "hash"} | {"prev": prev}
                prev = _digest(key, prev, plain)
                out.append(plain | {"hash": prev})
            if out:
                _replace(self.path, b"".join(_line(e) for e in out))
            self._write_head(key, out)
        return len(out)

    def append(self, action: str, reviewer: str, **fields: Any) -> dict[str, Any]:
        """Record one entry (on disk, fsynced, before returning); returns it with its sequence number and
        hash."""
        if not reviewer.strip():
            raise UsageError("--reviewer must name the reviewer")
        key = require_key(self.root)
        with self._locked():
            existing = self.entries()
            prev = existing[-1]["hash"] if existing else GENESIS
            entry = {
                "seq": len(existing) + 1,
                "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "action": action,
                "reviewer": reviewer.strip(),
                **fields,
                **({"rule_id": f"R{len(existing) + 1}"} if action == "allow" else {}),
                "prev": prev,
            }
            try:
                recorded = entry | {"hash": _digest(key, prev, entry)}
                line = _line(recorded)
            except UnicodeEncodeError as exc:  # e.g. undecodable bytes in a command-line argument
                raise UsageError(
                    "the entry holds text that is not valid UTF-8 (check the note and names)"
                ) from exc
            _replace(self.path, self._read() + line)
            self._write_head(key, [*existing, recorded])  # after the log: a crash between leaves it longer
        return recorded


def in_force(entries: list[dict[str, Any]], key: str, give: str, take: str) -> dict[str, dict[str, Any]]:
    """entry[key] -> the latest entry whose action is ``give``, unless a ``take`` entry for the same key
    came after it (a verdict and its reopening, a rule and its revocation)."""
    out: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if entry["action"] == give:
            out[entry[key]] = entry
        elif entry["action"] == take:
            out.pop(entry[key], None)
    return out


def verdicts(entries: list[dict[str, Any]]) -> dict[str, Verdict]:
    """case_id -> the verdict in force (the latest, unless the case was reopened after it)."""
    return {c: Verdict.from_json(e) for c, e in in_force(entries, Key.case_id, "verdict", "reopen").items()}


def closed_cases(entries: list[dict[str, Any]]) -> set[str]:
    return set(verdicts(entries))
