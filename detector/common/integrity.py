"""The workspace's secret key and the seals made with it: tamper evidence an editor cannot recompute.

A SHA-256 anyone can recompute after an edit proves nothing; an HMAC-SHA256 under a key the editor does
not hold does. ``init`` creates the key: 32 random bytes in ``W/.keys/hmac.key`` (folder 0700, file
0600), never in workspace.toml. A site that keeps keys elsewhere names the file in
``PHI_DETECTOR_KEY_FILE`` (it must be readable by the job's user only). Back the key up with the
workspace: without it the review log and the models cannot be verified (exit 65).

What the key seals:

* the review log's hash chain and its recorded heads (``detector.review.log``);
* each model folder ``W/models/<D>/``: ``seal.json`` holds the MAC of ``model.zip`` and
  ``reference.parquet`` (bound to the folder's night), checked before either is read.

A workspace created before keys existed has none; ``phi-detector init --workspace W --add-key`` adds one
(``detector.nightly.keys.add_key``). Until then commands that need the key refuse with exit 78. A key
that is missing or altered where seals exist is tampering (exit 65).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
from pathlib import Path

from detector.common.errors import BadDataError, ConfigError
from detector.common.outputs import write_json_atomic

__all__ = [
    "HEAD_NAME",
    "KEY_BYTES",
    "KEY_ENV",
    "MIGRATE_HINT",
    "SEAL_NAME",
    "check_folder",
    "create_key",
    "key_id",
    "key_path",
    "mac",
    "read_key",
    "require_key",
    "same",
    "seal_folder",
    "sealed",
]

KEY_ENV = "PHI_DETECTOR_KEY_FILE"
KEY_BYTES = 32
SEAL_NAME = "seal.json"
HEAD_NAME = "head.json"
MIGRATE_HINT = "add a key to this workspace: phi-detector init --workspace W --add-key"


def key_path(root: Path) -> Path:
    """The key file: ``PHI_DETECTOR_KEY_FILE`` when set, else ``W/.keys/hmac.key``."""
    override = os.environ.get(KEY_ENV)
    return Path(override) if override else root / ".keys" / "hmac.key"


def key_id(key: bytes) -> str:
    """A short public name of the key (not the key): tells which key sealed a file."""
    return hashlib.sha256(b"phi-detector key id\0" + key).hexdigest()[:16]


def mac(key: bytes, *parts: str | bytes) -> str:
    """HMAC-SHA256 of ``parts``, each length-prefixed so that no two sequences of parts collide."""
    h = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def same(recorded: object, expected: str) -> bool:
    """Whether a recorded MAC equals the expected one (constant time; any recorded value, even one that
    is not text or not ASCII, simply differs)."""
    if not isinstance(recorded, str):
        return False
    return hmac.compare_digest(recorded.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


def create_key(root: Path) -> tuple[Path, bool]:
    """Create the workspace key if there is none; returns its path and whether it was created now."""
    path = key_path(root)
    if path.exists():
        return path, False
    if KEY_ENV not in os.environ:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileNotFoundError as exc:
        raise ConfigError("the key file's folder does not exist", path=path, hint=f"check {KEY_ENV}") from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(os.urandom(KEY_BYTES))
        handle.flush()
        os.fsync(handle.fileno())
    return path, True


def sealed(root: Path) -> bool:
    """Whether anything in the workspace was sealed with a key (so a missing key is tampering)."""
    return (root / "review" / HEAD_NAME).is_file() or any((root / "models").glob(f"*/{SEAL_NAME}"))


def read_key(root: Path) -> bytes | None:
    """The workspace key, or None when the workspace has none and nothing was ever sealed.

    A missing or altered key where seals exist is a BadDataError (exit 65); a key file others can read or
    one too short for a workspace that never used it is a ConfigError (exit 78)."""
    path = key_path(root)
    if not path.exists():
        if sealed(root):
            raise BadDataError(
                "the workspace key is missing but the workspace was sealed with one",
                path=path,
                hint="restore the key file from backup; without it nothing sealed can be trusted",
            )
        return None
    try:
        mode = path.stat().st_mode
        key = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"the workspace key cannot be read ({exc.strerror})", path=path) from exc
    if not stat.S_ISREG(mode):
        raise ConfigError("the workspace key is not a regular file", path=path)
    if mode & 0o077:
        raise ConfigError("the workspace key is readable by other users", path=path, hint=f"chmod 600 {path}")
    if len(key) < KEY_BYTES:
        error = BadDataError if sealed(root) else ConfigError
        raise error(
            f"the workspace key is shorter than {KEY_BYTES} bytes",
            path=path,
            hint="restore the key file from backup",
        )
    return key


def require_key(root: Path) -> bytes:
    """The workspace key; a workspace without one is refused (exit 78) with how to add it."""
    key = read_key(root)
    if key is None:
        raise ConfigError("the workspace has no secret key", path=key_path(root), hint=MIGRATE_HINT)
    return key


def _file_mac(key: bytes, bound: str, folder: Path, name: str) -> str:
    return mac(key, "phi-detector file", bound, name, (folder / name).read_bytes())


def seal_folder(key: bytes, folder: Path, names: tuple[str, ...], *, bound: str | None = None) -> None:
    """Write ``folder/seal.json``: the MAC of each of ``names``, bound to the folder's name (``bound``
    when ``folder`` is a staging folder that will be renamed to it), so a file moved between folders
    fails too."""
    files = {name: _file_mac(key, bound or folder.name, folder, name) for name in names}
    body = {"key_id": key_id(key), "files": files}
    write_json_atomic(folder / SEAL_NAME, body | {"mac": mac(key, "phi-detector seal", _canonical(body))})


def check_folder(key: bytes, folder: Path, names: tuple[str, ...], *, hint: str) -> None:
    """Check ``folder``'s seal before any of ``names`` is read: a BadDataError (exit 65) naming the file
    that is missing, unsealed or altered."""
    seal = folder / SEAL_NAME
    try:
        raw = json.loads(seal.read_text(encoding="utf-8"))
        body = {"key_id": raw["key_id"], "files": dict(raw["files"])}
        recorded = raw["mac"]
    except FileNotFoundError as exc:
        raise BadDataError("the folder is not sealed (seal.json is missing)", path=seal, hint=hint) from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BadDataError("not a readable seal", path=seal, hint=hint) from exc
    if body["key_id"] != key_id(key):
        raise BadDataError("sealed with another key than the workspace's", path=seal, hint=hint)
    if not same(recorded, mac(key, "phi-detector seal", _canonical(body))):
        raise BadDataError("the seal was altered", path=seal, hint=hint)
    for name in names:
        path = folder / name
        if name not in body["files"]:
            raise BadDataError("the file is not covered by the folder's seal", path=path, hint=hint)
        try:
            actual = _file_mac(key, folder.name, folder, name)
        except OSError as exc:
            raise BadDataError("a sealed file is missing or unreadable", path=path, hint=hint) from exc
        if not same(body["files"][name], actual):
            raise BadDataError("the file was altered after it was sealed", path=path, hint=hint)


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
