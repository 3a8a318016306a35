"""Setting a workspace up and checking what its secret key seals: ``init`` (workspace.toml, the key and
the review log's first head), ``init --add-key`` for a workspace created before keys, and ``verify``.

The key is ``detector.common.integrity``'s; it seals the review log (``detector.review.log``) and each
model folder W/models/<D>/ (``MODEL_FILES``).
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from detector.common.errors import ConfigError, InputMissingError
from detector.ingest.mapping import SiteConfig, check_timezone
from detector.nightly.workspace import (
    CONFIG_NAME,
    MODEL_FILES,
    load_workspace,
    write_config,
)
from features.columns import Tab

__all__ = ["add_key", "init_workspace", "verify_workspace"]


def init_workspace(
    root: Path,
    bundle: Path,
    access_log: str,
    mapping: str | None = None,
    *,
    timezone: str | None = None,
    access_format: str | None = None,
) -> tuple[Path, SiteConfig]:
    """``phi-detector init``: write workspace.toml with the site zone in [site] timezone: ``timezone``,
    else the mapping's [site] timezone, else inferred from the UTC offsets of every access-log file the
    pattern matches (any {date}); a ConfigError (exit 78) saying how to set it when none of these gives
    one. ``access_format`` (``--format``): [sources] format, the files read so for the inference.
    Creates the workspace's secret key (``detector.common.integrity``). Returns the file and the
    configuration (``timezone_source``, ``timezone_inference``). A workspace may hold its bundle but not
    be it or lie inside it (exit 64)."""
    from detector.common.outputs import check_output
    from detector.ingest.flow import resolve_config

    check_output(root, [bundle], what="--workspace", may_contain=True)
    if (root / CONFIG_NAME).exists():
        raise ConfigError(f"{CONFIG_NAME} already exists", path=root / CONFIG_NAME, hint="edit it instead")
    if "{date}" not in access_log:
        raise ConfigError("--access-log must contain {date}")
    config = resolve_config(  # an unknown access_format is a ConfigError naming --format
        bundle, bundle / mapping if mapping else None, None, None, infer=False, access_format=access_format
    )
    config = _site_zone(bundle, access_log, config, timezone)
    _new_key(root)  # first: a workspace.toml is never left without its key
    path = write_config(root, bundle, access_log, mapping, timezone=config.zone, access_format=access_format)
    return path, config


def _site_zone(bundle: Path, access_log: str, config: SiteConfig, timezone: str | None) -> SiteConfig:
    """``config`` with the site zone ``init`` writes: --timezone, else the mapping's, else inferred."""
    from detector.ingest.timezones import with_inferred_zone

    if timezone:
        check_timezone(timezone, "--timezone")
        if config.timezone and config.timezone != timezone:
            raise ConfigError(
                f"--timezone {timezone} differs from the mapping's [site] timezone {config.timezone}",
                path=config.source,
                hint="make them agree: the nightly job reads both",
            )
        config = replace(config, timezone=timezone, timezone_source="option")
    elif config.timezone is None:
        pattern = access_log.replace("{date}", "*")
        every_day = replace(config.mapping(Tab.access_log), path=pattern)
        try:
            inferred = with_inferred_zone(
                bundle,
                replace(config, tables={**config.tables, Tab.access_log: every_day}),
                (Tab.access_log,),
            )
        except InputMissingError as exc:
            raise ConfigError(
                "no site time zone is configured and no access-log file matches --access-log to infer it",
                path=bundle / pattern,
                hint="pass --timezone (an IANA name such as America/Chicago) or set it in the mapping",
            ) from exc
        config = replace(
            config,
            timezone=inferred.timezone,
            timezone_source=inferred.timezone_source,
            timezone_inference=inferred.timezone_inference,
        )
    return config


def _new_key(root: Path) -> bytes:
    """The workspace's secret key (created unless it exists) and the review log's first head."""
    from detector.common.integrity import create_key, require_key
    from detector.review.log import ReviewLog

    create_key(root)
    key = require_key(root)
    ReviewLog(root).start(key)
    return key


def add_key(root: Path) -> dict[str, Any]:
    """``phi-detector init --add-key``: give a workspace created before keys its secret key.

    The review log's plain SHA-256 chain is checked first (a broken one is refused, exit 65), then every
    entry is chained again under the key and the head recorded; each model folder whose model file passes
    its own checksum is sealed (one that does not is left unsealed, and the night that needs it fails
    until it is retrained). What the workspace holds at this moment is trusted: run it from a backup you
    trust. A workspace that already has a key is left as it is."""
    from detector.common.integrity import create_key, key_path, read_key, require_key, seal_folder
    from detector.review.log import ReviewLog
    from models import ModelFileError, load_model

    ws = load_workspace(root)
    with ws.locked():
        if read_key(root) is not None:
            return {"key": str(key_path(root)), "created": False, "entries": 0, "models": [], "refused": []}
        log = ReviewLog(root)
        log.legacy_entries()  # a broken plain chain is refused before anything changes
        create_key(root)
        key = require_key(root)
        entries = log.reseal(key)
        sealed, refused = [], []
        for folder in sorted(p for p in (root / "models").glob("????-??-??") if p.is_dir()):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    load_model(folder / "model.zip")
                if not (folder / "reference.parquet").is_file():
                    raise ModelFileError("no reference.parquet")
            except ModelFileError:
                refused.append(folder.name)
                continue
            seal_folder(key, folder, MODEL_FILES)
            sealed.append(folder.name)
    return {
        "key": str(key_path(root)),
        "created": True,
        "entries": entries,
        "models": sealed,
        "refused": refused,
    }


def verify_workspace(root: Path) -> dict[str, Any]:
    """``phi-detector verify``: check everything the workspace key seals, without running a night: the
    review log (its keyed chain, ``head.json`` and every completed night's recorded head) and every
    model folder (model.zip, reference.parquet). The first failure is a BadDataError (exit 65) naming
    the file and line; a workspace without a key is refused (exit 78)."""
    from detector.common.integrity import check_folder, require_key
    from detector.review.log import ReviewLog

    load_workspace(root)
    key = require_key(root)
    entries = ReviewLog(root).entries()
    models = []
    for folder in sorted(p for p in (root / "models").glob("????-??-??") if p.is_dir()):
        retrain = f"phi-detector train --workspace W --date {folder.name}"
        check_folder(key, folder, MODEL_FILES, hint=f"restore the folder from backup or retrain: {retrain}")
        models.append(folder.name)
    nights = sorted(p.parent.name for p in (root / "runs").glob("????-??-??/_SUCCESS"))
    return {"review_entries": len(entries), "nights": len(nights), "models": models}
