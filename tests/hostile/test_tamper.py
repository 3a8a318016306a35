"""Tampering with a workspace's evidence is always detected (issue 12): exit 65 naming the file and line.

One small workspace is built per module: three nights of a generated hospital, a model trained and
sealed, five review entries (four applied by the last night, which records the log's head in its
summary; the fifth after it, covered by ``review/head.json``). Each case copies it, alters one thing as
an attacker or a careless operator would, and runs a command in-process: the command must exit 65, name
the altered file (and the line, for the log), print no traceback and echo nothing from the log.

What the key can and cannot do: an attacker who can read the key can forge anything; these cases are
the ones an editor without the key can attempt, plus the key itself deleted, replaced or emptied.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from detector.cli import cli
from detector.common.errors import UsageError
from detector.common.integrity import KEY_ENV
from detector.investigate.casebook import list_cases
from detector.nightly.flow import backfill, nightly
from detector.nightly.workspace import load_workspace
from detector.review.log import ReviewLog
from models import AccessIsolationForest, load_model, save_model
from sample_logs import generate_bundle

FIRST = dt.date(2026, 2, 23)
NIGHTS = [FIRST + dt.timedelta(days=k) for k in range(3)]
LAST = NIGHTS[-1].isoformat()
NOTE = "NOTE-7c1e: spoke to the manager"
"""A review note: never echoed by an error message."""
LOG = "review/log.jsonl"
ENTRIES = 5
APPLIED = 4
"""Entries in the log, and how many the last night applied (its recorded head)."""


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("tamper")
    bundle = base / "hospital"
    generate_bundle(bundle, seed=3, days=len(NIGHTS), scale=0.2, scored_days=1)
    root = base / "ws"
    result = CliRunner().invoke(cli, ["init", "--workspace", str(root), "--bundle", str(bundle)])
    assert result.exit_code == 0, result.output
    config = root / "workspace.toml"
    config.write_text(config.read_text(encoding="utf-8").replace("baseline_days = 28", "baseline_days = 2"))
    ws = load_workspace(root)
    backfill(ws, NIGHTS[0], NIGHTS[1])
    cases = [c["case_id"] for c in list_cases(ws, status="all")]
    assert len(cases) >= 3, cases
    log = ReviewLog(root)
    log.append("verdict", "D. Ruiz", case_id=cases[0], verdict="confirmed", note=NOTE)
    log.append("verdict", "D. Ruiz", case_id=cases[1], verdict="false-positive", note=NOTE)
    shutil.copy(root / "review" / "head.json", base / "head-after-2.json")
    log.append("allow", "A. Chen", kind="role-department", role="coder", department="oncology",
               expires="2026-12-31", reason=NOTE)  # fmt: skip
    log.append("verdict", "A. Chen", case_id=cases[2], verdict="policy-exception", note=NOTE)
    nightly(ws, NIGHTS[2])
    log.append("reopen", "A. Chen", case_id=cases[1], note=NOTE)
    assert len(log.entries()) == ENTRIES
    assert [p.parent.name for p in (root / "models").glob("*/model.zip")], "no model was trained"
    return root


def _copy(pristine: Path, tmp_path: Path, *, whole: bool = False) -> Path:
    """The workspace's evidence (enough for `case log`, `verify`), or all of it for a night."""
    skip = [".lock"] if whole else [".lock", "days", "history", "context", "tmp"]
    target = tmp_path / "ws"
    shutil.copytree(pristine, target, ignore=shutil.ignore_patterns(*skip))
    shutil.copy(pristine.parent / "head-after-2.json", tmp_path / "head-after-2.json")
    return target


def _run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), env=env)


# -- how an attacker edits the log ------------------------------------------------------------------------


def _lines(root: Path) -> list[bytes]:
    return (root / LOG).read_bytes().splitlines(keepends=True)


def _write(root: Path, lines: list[bytes]) -> None:
    (root / LOG).write_bytes(b"".join(lines))


def _entries(root: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _lines(root)]


def _plain(entries: list[dict[str, Any]], prev: str) -> list[bytes]:
    """Entries chained again with the plain SHA-256 anyone can compute (the old, unkeyed chain)."""
    out = []
    for entry in entries:
        body = {k: v for k, v in entry.items() if k != "hash"} | {"prev": prev}
        text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        prev = hashlib.sha256((prev + text).encode()).hexdigest()
        out.append((json.dumps(body | {"hash": prev}, sort_keys=True, ensure_ascii=False) + "\n").encode())
    return out


def _rechain_from(index: int, edit: Callable[[list[dict[str, Any]]], None]) -> Callable[[Path], None]:
    """Edit the entries, then recompute the plain chain from entry ``index`` on (0-based)."""

    def mutate(root: Path) -> None:
        entries = _entries(root)
        edit(entries)
        prev = entries[index - 1]["hash"] if index else "0" * 64
        _write(root, _lines(root)[:index] + _plain(entries[index:], prev))

    return mutate


def _set(index: int, field: str, value: Any) -> Callable[[list[dict[str, Any]]], None]:
    def edit(entries: list[dict[str, Any]]) -> None:
        entries[index][field] = value

    return edit


def _edit_line(index: int, change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        lines = _lines(root)
        lines[index] = change(lines[index])
        _write(root, lines)

    return mutate


def _keep(*indexes: int) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        lines = _lines(root)
        _write(root, [lines[i] for i in indexes])

    return mutate


def _forged(seq: int, prev: str, key: bytes | None = None) -> bytes:
    body = {"seq": seq, "at": "2026-02-26T09:00:00+00:00", "action": "verdict", "reviewer": "intruder",
            "case_id": "CASE-0", "verdict": "false-positive", "note": "x", "prev": prev}  # fmt: skip
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest = (
        hmac.new(key, (prev + text).encode(), hashlib.sha256).hexdigest()
        if key
        else hashlib.sha256((prev + text).encode()).hexdigest()
    )
    return (json.dumps(body | {"hash": digest}, sort_keys=True) + "\n").encode()


def _insert_forged(at: int) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        lines, entries = _lines(root), _entries(root)
        prev = entries[at - 1]["hash"] if at else "0" * 64
        forged = _forged(at + 1, prev)
        rest = [{**e, "seq": e["seq"] + 1} for e in entries[at:]]
        _write(root, [*lines[:at], forged, *_plain(rest, json.loads(forged)["hash"])])

    return mutate


def _append_forged(key: bytes | None) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        _write(root, [*_lines(root), _forged(ENTRIES + 1, _entries(root)[-1]["hash"], key)])

    return mutate


def _swap(a: int, b: int) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        lines = _lines(root)
        lines[a], lines[b] = lines[b], lines[a]
        _write(root, lines)

    return mutate


def _truncate_and_replay_head(keep: int) -> Callable[[Path], None]:
    """Cut the log to ``keep`` entries and put back the head.json of an earlier moment (valid then)."""

    def mutate(root: Path) -> None:
        _write(root, _lines(root)[:keep])
        shutil.copy(root.parent / "head-after-2.json", root / "review" / "head.json")

    return mutate


def _edit_json(relative: str, edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        path = root / relative
        data = json.loads(path.read_text(encoding="utf-8"))
        edit(data)
        path.write_text(json.dumps(data), encoding="utf-8")

    return mutate


def _both(*mutations: Callable[[Path], None]) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        for m in mutations:
            m(root)

    return mutate


def _night_head(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    return _edit_json(SUMMARY, edit)


def _lower_night_head(summary: dict[str, Any]) -> None:
    summary["review_head"]["seq"] = 2
    summary["review_seq"] = 2


def _drop_night_head(summary: dict[str, Any]) -> None:
    del summary["review_head"]


def _drop_first(entries: list[dict[str, Any]]) -> None:
    """The confirmed verdict removed, the later entries renumbered."""
    del entries[0]
    for entry in entries:
        entry["seq"] -= 1


def _key(root: Path) -> Path:
    return root / ".keys" / "hmac.key"


def _delete_key(root: Path) -> None:
    _key(root).unlink()


def _replace_key(root: Path) -> None:
    _key(root).write_bytes(os.urandom(32))


def _empty_key(root: Path) -> None:
    _key(root).write_bytes(b"")


def _downgrade(root: Path) -> None:
    """Everything an editor without the key could do to make the workspace look unkeyed."""
    _delete_key(root)
    (root / "review" / "head.json").unlink()
    _write(root, _plain(_entries(root)[:2], "0" * 64))
    for summary in (root / "runs").glob("*/summary.json"):
        data = json.loads(summary.read_text(encoding="utf-8"))
        data.pop("review_head", None)
        data["review_seq"] = 0
        summary.write_text(json.dumps(data), encoding="utf-8")


def _remove(relative: str) -> Callable[[Path], None]:
    return lambda root: (root / relative).unlink()


def _flip(at: float = 0.5) -> Callable[[bytes], bytes]:
    def change(data: bytes) -> bytes:
        out = bytearray(data)
        out[int(len(out) * at)] ^= 0x01
        return bytes(out)

    return change


# -- how an attacker edits a model folder -----------------------------------------------------------------


def _model_dir(root: Path) -> Path:
    return sorted(p.parent for p in (root / "models").glob("*/model.zip"))[0]


def _model_file(name: str, change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        path = _model_dir(root) / name
        path.write_bytes(change(path.read_bytes()))

    return mutate


def _member(name: str, change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    """Change one member of model.zip and write the archive again."""

    def mutate(root: Path) -> None:
        path = _model_dir(root) / "model.zip"
        with zipfile.ZipFile(path) as archive:
            members = {n: archive.read(n) for n in archive.namelist()}
        members[name] = change(members[name])
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for n, data in members.items():
                archive.writestr(n, data)

    return mutate


def _add_member(root: Path) -> None:
    with zipfile.ZipFile(_model_dir(root) / "model.zip", "a") as archive:
        archive.writestr("extra.py", "import os\n")


def _retrained_with_sha256(root: Path) -> None:
    """Other trees in a well-formed model file whose SHA-256 is right: only the key can tell."""
    path = _model_dir(root) / "model.zip"
    _, manifest = load_model(path)
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        rng.normal(size=(64, len(manifest.feature_names))), columns=list(manifest.feature_names)
    )
    model = AccessIsolationForest(n_estimators=8, random_state=1).fit(frame)
    save_model(model, path, training_start=manifest.training_start, training_end=manifest.training_end,
               n_rows=manifest.n_rows)  # fmt: skip
    load_model(path)  # the file's own checksum passes


def _other_reference(root: Path) -> None:
    path = _model_dir(root) / "reference.parquet"
    values = pq.read_table(path).column("reference").to_numpy()
    pq.write_table(pa.table({"reference": values * 0.5}), path)


def _resealed_with_sha256(root: Path) -> None:
    def edit(seal: dict[str, Any]) -> None:
        folder = _model_dir(root)
        seal["files"] = {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in seal["files"]}

    _model_file("model.zip", _flip())(root)
    _edit_json(str((_model_dir(root) / "seal.json").relative_to(root)), edit)(root)


def _seal_wrong_key(root: Path) -> None:
    def edit(seal: dict[str, Any]) -> None:
        seal["mac"] = hmac.new(os.urandom(32), b"anything", hashlib.sha256).hexdigest()

    _edit_json(str((_model_dir(root) / "seal.json").relative_to(root)), edit)(root)


def _seal_edit(edit: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        _edit_json(str((_model_dir(root) / "seal.json").relative_to(root)), edit)(root)

    return mutate


def _model_moved_to_another_night(root: Path) -> None:
    folder = _model_dir(root)
    later = folder.with_name((dt.date.fromisoformat(folder.name) + dt.timedelta(days=1)).isoformat())
    shutil.rmtree(later, ignore_errors=True)
    shutil.copytree(folder, later)


# -- the catalogue ----------------------------------------------------------------------------------------

KEY = ".keys/hmac.key"
HEAD = "review/head.json"
SUMMARY = f"runs/{LAST}/summary.json"
CASE_LOG = ("case", "log")

LOG_CASES = [
    pytest.param(
        _keep(0, 1, 2, 3), CASE_LOG, f"{LOG}:5: the review log has 4 entries", id="truncate_last_line"
    ),
    pytest.param(
        _keep(0, 1, 2), CASE_LOG, f"{LOG}:4: the review log has 3 entries", id="truncate_last_two_lines"
    ),
    pytest.param(_keep(), CASE_LOG, f"{LOG}:1: the review log has 0 entries", id="truncate_all_lines"),
    pytest.param(_remove(LOG), CASE_LOG, f"{LOG}:1: the review log has 0 entries", id="delete_the_log"),
    pytest.param(
        lambda r: (r / LOG).write_bytes((r / LOG).read_bytes()[:-1]),
        CASE_LOG,
        f"{LOG}:5: the last line is incomplete",
        id="drop_final_newline",
    ),
    pytest.param(
        lambda r: (r / LOG).write_bytes((r / LOG).read_bytes()[:-40]),
        CASE_LOG,
        f"{LOG}:5: the last line is incomplete",
        id="cut_last_line_midway",
    ),
    pytest.param(
        lambda r: (r / LOG).write_bytes((r / LOG).read_bytes() + b'{"seq": 6'),
        CASE_LOG,
        f"{LOG}:6: the last line is incomplete",
        id="partial_line_appended",
    ),
    pytest.param(_swap(0, 1), CASE_LOG, f"{LOG}:1: the review log was altered", id="reorder_first_two"),
    pytest.param(_swap(1, 3), CASE_LOG, f"{LOG}:2: the review log was altered", id="swap_two_entries"),
    pytest.param(
        _keep(0, 1, 2, 3, 4, 4), CASE_LOG, f"{LOG}:6: the review log was altered", id="duplicate_last_line"
    ),
    pytest.param(
        _keep(0, 0, 1, 2, 3, 4), CASE_LOG, f"{LOG}:2: the review log was altered", id="duplicate_first_line"
    ),
    pytest.param(
        _keep(0, 1, 3, 4), CASE_LOG, f"{LOG}:3: the review log was altered", id="delete_middle_line"
    ),
    pytest.param(_keep(1, 2, 3, 4), CASE_LOG, f"{LOG}:1: the review log was altered", id="delete_first_line"),
    pytest.param(
        _edit_line(0, lambda b: b.replace(b'"confirmed"', b'"false-positive"')),
        CASE_LOG,
        f"{LOG}:1: the review log was altered",
        id="edit_verdict_keep_hash",
    ),
    pytest.param(
        _rechain_from(0, _set(0, "verdict", "false-positive")),
        CASE_LOG,
        f"{LOG}:1: the review log was altered",
        id="edit_verdict_recompute_plain_chain",
    ),
    pytest.param(
        _rechain_from(2, _set(2, "expires", "2099-12-31")),
        CASE_LOG,
        f"{LOG}:3: the review log was altered",
        id="extend_allow_rule_recompute_plain_chain",
    ),
    pytest.param(
        _rechain_from(1, _set(1, "reviewer", "Someone Else")),
        CASE_LOG,
        f"{LOG}:2: the review log was altered",
        id="edit_reviewer_recompute_plain_chain",
    ),
    pytest.param(
        _rechain_from(3, _set(3, "at", "2026-01-01T00:00:00+00:00")),
        CASE_LOG,
        f"{LOG}:4: the review log was altered",
        id="backdate_entry_recompute_plain_chain",
    ),
    pytest.param(
        _rechain_from(0, _drop_first),
        CASE_LOG,
        f"{LOG}:1: the review log was altered",
        id="drop_confirmed_verdict_rewrite_whole_chain",
    ),
    pytest.param(
        _edit_line(1, lambda b: b.replace(b'"seq": 2', b'"seq": 7')),
        CASE_LOG,
        f"{LOG}:2: the review log was altered",
        id="edit_sequence_number",
    ),
    pytest.param(
        _edit_line(2, lambda b: b.replace(b'"prev": "', b'"prev": "0')),
        CASE_LOG,
        f"{LOG}:3: the review log was altered",
        id="edit_prev_field",
    ),
    pytest.param(
        _edit_line(4, lambda b: b.replace(b'"hash": "', b'"hash": "0')),
        CASE_LOG,
        f"{LOG}:5: the review log was altered",
        id="edit_hash_field",
    ),
    pytest.param(
        _insert_forged(2), CASE_LOG, f"{LOG}:3: the review log was altered", id="insert_forged_entry"
    ),
    pytest.param(
        _append_forged(None), CASE_LOG, f"{LOG}:6: the review log was altered", id="append_forged_plain"
    ),
    pytest.param(
        _append_forged(os.urandom(32)),
        CASE_LOG,
        f"{LOG}:6: the review log was altered",
        id="append_forged_other_key",
    ),
    pytest.param(_keep(0, 1, 1), CASE_LOG, f"{LOG}:3: the review log was altered", id="replay_an_entry"),
    pytest.param(
        _edit_line(1, lambda b: b + b"\n"),
        CASE_LOG,
        f"{LOG}:3: not a review log entry",
        id="blank_line_inserted",
    ),
    pytest.param(
        _edit_line(1, lambda b: b.replace(b'", "', b'",  "', 1)),
        CASE_LOG,
        f"{LOG}:2: the review log was altered",
        id="whitespace_changed",
    ),
    pytest.param(
        _edit_line(0, lambda b: b[:-2] + b', "verdict": "false-positive"}\n'),
        CASE_LOG,
        f"{LOG}:1: the review log was altered",
        id="duplicate_json_key",
    ),
    pytest.param(
        _edit_line(3, lambda b: b[:10] + b"\xff" + b[11:]),
        CASE_LOG,
        f"{LOG}:4: not a review log entry",
        id="invalid_utf8",
    ),
    pytest.param(
        _edit_line(2, lambda b: b"garbage\n"), CASE_LOG, f"{LOG}:3: not a review log entry", id="garbage_line"
    ),
    pytest.param(
        _edit_line(2, lambda b: b"[1, 2]\n"),
        CASE_LOG,
        f"{LOG}:3: not a review log entry",
        id="json_array_line",
    ),
    pytest.param(
        _edit_line(2, lambda b: b"null\n"), CASE_LOG, f"{LOG}:3: not a review log entry", id="json_null_line"
    ),
    pytest.param(
        lambda r: (r / LOG).write_bytes((r / LOG).read_bytes().replace(b"\n", b"\r\n")),
        CASE_LOG,
        f"{LOG}:1: the review log was altered",
        id="crlf_line_endings",
    ),
    pytest.param(
        _truncate_and_replay_head(3),
        CASE_LOG,
        f"{LOG}:4: the review log has 3 entries but the night of {LAST}",
        id="truncate_and_replay_old_head",
    ),
    pytest.param(
        _remove(HEAD), CASE_LOG, f"{HEAD}: the review log's recorded head is missing", id="delete_head"
    ),
    pytest.param(
        _both(_keep(0, 1, 2, 3), _edit_json(HEAD, lambda h: h.update(seq=4))),
        CASE_LOG,
        f"{HEAD}: the recorded review head was altered",
        id="truncate_and_lower_head",
    ),
    pytest.param(
        _edit_json(HEAD, lambda h: h.update(mac="0" * 64)),
        CASE_LOG,
        f"{HEAD}: the recorded review head was altered",
        id="head_mac_edited",
    ),
    pytest.param(
        lambda r: (r / HEAD).write_text("{", encoding="utf-8"),
        CASE_LOG,
        f"{HEAD}: not a readable review head",
        id="head_not_json",
    ),
    pytest.param(
        _both(_truncate_and_replay_head(2), _night_head(_lower_night_head)),
        CASE_LOG,
        f"{SUMMARY}: the recorded review head was altered",
        id="truncate_and_lower_night_head",
    ),
    pytest.param(
        _both(_truncate_and_replay_head(3), _night_head(_drop_night_head)),
        CASE_LOG,
        f"{LOG}:4: the review log has 3 entries but the night of {LAST}",
        id="truncate_and_drop_night_head",
    ),
    pytest.param(
        _edit_line(0, lambda b: b.replace(NOTE.encode(), b"\\ud800")),
        CASE_LOG,
        f"{LOG}:1: the review log was altered",
        id="lone_surrogate_in_entry",
    ),
    pytest.param(
        _edit_line(1, lambda b: b.replace(b'"hash": "', b'"hash": "\xc3\xa9')),
        CASE_LOG,
        f"{LOG}:2: the review log was altered",
        id="non_ascii_hash",
    ),
    pytest.param(
        _edit_line(1, lambda b: b.replace(b'"hash": "', b'"hash": 7, "x": "')),
        CASE_LOG,
        f"{LOG}:2: the review log was altered",
        id="hash_not_text",
    ),
    pytest.param(
        _edit_json(HEAD, lambda h: h.update(mac="\ud800", hash="\udfff")),
        CASE_LOG,
        f"{HEAD}: the recorded review head was altered",
        id="head_with_lone_surrogates",
    ),
    pytest.param(
        _edit_json(HEAD, lambda h: h.update(seq="5")),
        CASE_LOG,
        f"{HEAD}: not a readable review head",
        id="head_seq_not_a_number",
    ),
    pytest.param(
        _night_head(lambda s: s.update(review_head="x")),
        CASE_LOG,
        f"{SUMMARY}: not a readable review head",
        id="night_head_not_an_object",
    ),
    pytest.param(
        lambda r: (r / SUMMARY).write_text("[", encoding="utf-8"),
        CASE_LOG,
        f"{SUMMARY}: not a readable night summary",
        id="night_summary_not_json",
    ),
    pytest.param(_delete_key, CASE_LOG, f"{KEY}: the workspace key is missing", id="delete_the_key"),
    pytest.param(_replace_key, CASE_LOG, f"{KEY}: the workspace key is not the one", id="replace_the_key"),
    pytest.param(_empty_key, CASE_LOG, f"{KEY}: the workspace key is shorter", id="empty_the_key"),
    pytest.param(_downgrade, CASE_LOG, f"{KEY}: the workspace key is missing", id="downgrade_to_unkeyed"),
    pytest.param(_keep(0, 1, 2), ("case", "breach"), f"{LOG}:4:", id="truncated_log_case_breach"),
    pytest.param(_keep(0, 1, 2), ("case", "list"), f"{LOG}:4:", id="truncated_log_case_list"),
    pytest.param(_keep(0, 1, 2), ("allow", "list"), f"{LOG}:4:", id="truncated_log_allow_list"),
    pytest.param(_keep(1, 2), ("verify",), f"{LOG}:1:", id="truncated_log_verify"),
]

MODEL_CASES = [
    pytest.param(_model_file("model.zip", _flip()), "model.zip", id="flip_byte_in_model_zip"),
    pytest.param(_model_file("model.zip", _flip(0.01)), "model.zip", id="flip_byte_in_model_zip_header"),
    pytest.param(_member("manifest.json", _flip()), "model.zip", id="flip_byte_in_manifest_member"),
    pytest.param(_member("model.skops", _flip()), "model.zip", id="flip_byte_in_payload_member"),
    pytest.param(_retrained_with_sha256, "model.zip", id="other_trees_with_recomputed_sha256"),
    pytest.param(_add_member, "model.zip", id="member_added_to_model_zip"),
    pytest.param(_model_file("model.zip", lambda b: b""), "model.zip", id="model_zip_emptied"),
    pytest.param(lambda r: (_model_dir(r) / "model.zip").unlink(), "model.zip", id="model_zip_deleted"),
    pytest.param(_model_file("reference.parquet", _flip()), "reference.parquet", id="flip_byte_in_reference"),
    pytest.param(_other_reference, "reference.parquet", id="reference_rewritten_valid_parquet"),
    pytest.param(
        lambda r: (_model_dir(r) / "reference.parquet").unlink(), "reference.parquet", id="reference_deleted"
    ),
    pytest.param(lambda r: (_model_dir(r) / "seal.json").unlink(), "seal.json", id="seal_deleted"),
    pytest.param(_resealed_with_sha256, "seal.json", id="seal_recomputed_with_sha256"),
    pytest.param(_seal_wrong_key, "seal.json", id="seal_mac_from_another_key"),
    pytest.param(
        _seal_edit(lambda seal: seal.update(mac="\ud800\u00e9")), "seal.json", id="seal_mac_not_ascii"
    ),
    pytest.param(_seal_edit(lambda seal: seal.update(files=[1])), "seal.json", id="seal_files_not_a_mapping"),
    pytest.param(
        _seal_edit(lambda seal: seal["files"].pop("reference.parquet")),
        "seal.json",
        id="reference_dropped_from_seal",
    ),
    pytest.param(_seal_edit(lambda seal: seal.update(key_id="0" * 16)), "seal.json", id="seal_key_id_edited"),
    pytest.param(
        lambda r: (_model_dir(r) / "seal.json").write_bytes(b"\xff\xfe"), "seal.json", id="seal_not_utf8"
    ),
    pytest.param(_model_moved_to_another_night, "model.zip", id="model_folder_copied_to_another_night"),
]


def _clean(result: Any) -> None:
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "NOTE-7c1e" not in result.stderr and "D. Ruiz" not in result.stderr  # nothing from the log


def test_the_untouched_workspace_verifies(pristine: Path, tmp_path: Path) -> None:
    root = _copy(pristine, tmp_path)
    logged = _run("case", "log", "--workspace", str(root), "--format", "json")
    assert logged.exit_code == 0, logged.output
    assert [e["seq"] for e in json.loads(logged.stdout)] == list(range(1, ENTRIES + 1))
    verified = _run("verify", "--workspace", str(root))
    assert verified.exit_code == 0 and f"{ENTRIES} review log entries" in verified.stdout
    summary = json.loads((root / SUMMARY).read_text(encoding="utf-8"))
    assert summary["review_head"]["seq"] == summary["review_seq"] == APPLIED


@pytest.mark.parametrize(("mutate", "command", "expected"), LOG_CASES)
def test_review_log_tampering_exits_65_naming_the_line(
    pristine: Path, tmp_path: Path, mutate: Callable[[Path], None], command: tuple[str, ...], expected: str
) -> None:
    root = _copy(pristine, tmp_path)
    mutate(root)
    before = (root / LOG).read_bytes() if (root / LOG).exists() else None
    result = _run(*command, "--workspace", str(root))
    assert result.exit_code == 65, result.output
    assert f"{root}/{expected}" in result.stderr, result.stderr
    _clean(result)
    assert ((root / LOG).read_bytes() if (root / LOG).exists() else None) == before  # nothing rewritten


@pytest.mark.parametrize(("mutate", "name"), MODEL_CASES)
def test_model_folder_tampering_exits_65_naming_the_file(
    pristine: Path, tmp_path: Path, mutate: Callable[[Path], None], name: str
) -> None:
    root = _copy(pristine, tmp_path)
    mutate(root)
    result = _run("verify", "--workspace", str(root))
    assert result.exit_code == 65, result.output
    assert f"{root}/models/" in result.stderr and f"/{name}: " in result.stderr, result.stderr
    _clean(result)


@pytest.mark.parametrize(
    ("mutate", "name"),
    [
        pytest.param(_model_file("model.zip", _flip()), "model.zip", id="night_flip_byte_in_model_zip"),
        pytest.param(_retrained_with_sha256, "model.zip", id="night_other_trees_with_recomputed_sha256"),
        pytest.param(
            _model_file("reference.parquet", _flip()), "reference.parquet", id="night_flip_reference"
        ),
        pytest.param(_keep(0, 1), LOG, id="night_truncated_review_log"),
    ],
)
def test_a_night_refuses_tampered_evidence(
    pristine: Path, tmp_path: Path, mutate: Callable[[Path], None], name: str
) -> None:
    root = _copy(pristine, tmp_path, whole=True)
    mutate(root)
    before = (root / "runs" / LAST / "alerts.jsonl").read_bytes()
    result = _run("nightly", "--workspace", str(root), "--date", LAST, "--quiet")
    assert result.exit_code == 65, result.output
    assert f"{root}/" in result.stderr and (f"/{name}: " in result.stderr or f"/{name}:3:" in result.stderr)
    _clean(result)
    assert (root / "runs" / LAST / "alerts.jsonl").read_bytes() == before
    metrics = (root / "metrics" / "phi_detector.prom").read_text(encoding="utf-8")
    assert "phi_detector_last_run_exit_code 65" in metrics


def test_a_tampered_log_takes_no_new_entry(pristine: Path, tmp_path: Path) -> None:
    root = _copy(pristine, tmp_path)
    _keep(0, 1, 2)(root)
    before = (root / LOG).read_bytes()
    case_id = _entries(root)[0]["case_id"]
    result = _run("case", "reopen", case_id, "--workspace", str(root), "--reviewer", "X", "--note", "y")
    assert result.exit_code == 65 and f"{LOG}:4:" in result.stderr
    _clean(result)
    assert (root / LOG).read_bytes() == before


@pytest.mark.parametrize(
    ("mutate", "args", "expected"),
    [
        pytest.param(_keep(0, 1, 2, 3), ("case", "log"), f"{LOG}:5:", id="process_truncated_log"),
        pytest.param(_delete_key, ("case", "log"), KEY, id="process_deleted_key"),
        pytest.param(_member("model.skops", _flip()), ("verify",), "model.zip", id="process_tampered_model"),
    ],
)
def test_the_real_entry_point_exits_65_without_a_traceback(
    pristine: Path, tmp_path: Path, mutate: Callable[[Path], None], args: tuple[str, ...], expected: str
) -> None:
    root = _copy(pristine, tmp_path)
    mutate(root)
    done = subprocess.run(
        [sys.executable, "-m", "detector", *args, "--workspace", str(root)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 65, done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr and done.stderr.count("\n") == 1


# -- the key itself, and workspaces from before keys ------------------------------------------------------


def test_init_creates_a_private_key_outside_the_configuration(pristine: Path) -> None:
    key = _key(pristine)
    assert key.stat().st_mode & 0o777 == 0o600 and key.parent.stat().st_mode & 0o777 == 0o700
    assert len(key.read_bytes()) == 32
    config = (pristine / "workspace.toml").read_text(encoding="utf-8")
    assert "key" not in config and key.read_bytes().hex() not in config


def test_a_key_kept_elsewhere_is_named_by_the_environment(pristine: Path, tmp_path: Path) -> None:
    root = _copy(pristine, tmp_path)
    elsewhere = tmp_path / "vault" / "phi.key"
    elsewhere.parent.mkdir()
    shutil.move(_key(root), elsewhere)
    assert _run("case", "log", "--workspace", str(root)).exit_code == 65  # missing where expected
    result = _run("verify", "--workspace", str(root), env={KEY_ENV: str(elsewhere)})
    assert result.exit_code == 0, result.output


def test_a_key_others_can_read_is_refused_with_78(pristine: Path, tmp_path: Path) -> None:
    root = _copy(pristine, tmp_path)
    _key(root).chmod(0o644)
    result = _run("case", "log", "--workspace", str(root))
    assert (
        result.exit_code == 78 and "readable by other users" in result.stderr and "chmod 600" in result.stderr
    )


def _legacy(root: Path) -> list[dict[str, Any]]:
    """The workspace as a release before keys left it: a plain chain, no key, no head, no seals."""
    entries = _entries(root)
    _write(root, _plain(entries, "0" * 64))
    shutil.rmtree(root / ".keys")
    (root / "review" / "head.json").unlink()
    for seal in (root / "models").glob("*/seal.json"):
        seal.unlink()
    for summary in (root / "runs").glob("*/summary.json"):
        data = json.loads(summary.read_text(encoding="utf-8"))
        data.pop("review_head", None)
        summary.write_text(json.dumps(data), encoding="utf-8")
    return entries


def test_a_workspace_from_before_keys_is_refused_then_migrated(pristine: Path, tmp_path: Path) -> None:
    root = _copy(pristine, tmp_path)
    entries = _legacy(root)
    refused = _run("case", "log", "--workspace", str(root))
    assert refused.exit_code == 78 and "init --workspace W --add-key" in refused.stderr
    assert _run("verify", "--workspace", str(root)).exit_code == 78
    migrated = _run("init", "--workspace", str(root), "--add-key")
    assert migrated.exit_code == 0, migrated.output
    assert (
        f"{ENTRIES} review log entries" in migrated.stdout and "1 model folder(s) sealed" in migrated.stdout
    )
    logged = _run("case", "log", "--workspace", str(root))
    assert logged.exit_code == 0, logged.output
    strip = ("hash", "prev")
    assert [{k: v for k, v in e.items() if k not in strip} for e in ReviewLog(root).entries()] == [
        {k: v for k, v in e.items() if k not in strip} for e in entries
    ]
    assert _run("verify", "--workspace", str(root)).exit_code == 0
    again = _run("init", "--workspace", str(root), "--add-key")
    assert again.exit_code == 0 and "already has a key" in again.stdout
    _rechain_from(0, _set(0, "verdict", "false-positive"))(root)  # now the plain chain no longer passes
    assert _run("case", "log", "--workspace", str(root)).exit_code == 65


def test_a_tampered_log_from_before_keys_is_not_migrated(pristine: Path, tmp_path: Path) -> None:
    root = _copy(pristine, tmp_path)
    _legacy(root)
    _edit_line(1, lambda b: b.replace(b"false-positive", b"confirmed"))(root)
    result = _run("init", "--workspace", str(root), "--add-key")
    assert result.exit_code == 65 and f"{LOG}:2: the review log was altered" in result.stderr
    assert not (root / ".keys").exists()  # nothing changed


def test_an_entry_that_is_not_valid_text_is_refused_before_it_is_written(
    pristine: Path, tmp_path: Path
) -> None:
    root = _copy(pristine, tmp_path)
    before = (root / LOG).read_bytes()
    with pytest.raises(UsageError, match="not valid UTF-8"):
        ReviewLog(root).append("reopen", "A. Chen", case_id="CASE-1", note="bytes \udcff from argv")
    assert (root / LOG).read_bytes() == before
    assert _run("case", "log", "--workspace", str(root)).exit_code == 0


def test_init_without_a_bundle_is_a_usage_error(tmp_path: Path) -> None:
    result = _run("init", "--workspace", str(tmp_path / "w"))
    assert result.exit_code == 64 and "--bundle is required" in result.output


def test_the_catalogue_is_large_enough() -> None:
    assert len(LOG_CASES) + len(MODEL_CASES) + 4 + 3 >= 40
