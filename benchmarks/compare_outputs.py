"""Behaviour unchanged? Digests of what a batch run and a run of nights write, to compare two versions.

    .venv/bin/python benchmarks/compare_outputs.py --record before.json   # the old code
    .venv/bin/python benchmarks/compare_outputs.py --check before.json    # the new code: exit 1 on a change
    .venv/bin/python benchmarks/compare_outputs.py --record old.json --tree ../old   # another checkout's code

``--drop-key`` leaves out a summary key besides the volatile ones (a count a later version added;
``/key``: the top-level key only).

Generates two small hospitals (a tuning and a held-out archetype, into bench-data/compare-*/), runs
`phi-detector run` on each and `init` + `nightly` over every night of one, and digests every output: the
case queues (alerts.jsonl), rejects, summaries and reports byte for byte once the fields that differ
between two runs of the same code are dropped (durations, the report's "Generated" line, the bundle
and workspace paths, the review head's MAC and the model seals under the workspace's random key, the
context fingerprint's file times), each night's history
tables and the case store's tables by their rows. Model files are left out (their zip members carry
times); the queues they produce are compared. A restructure that keeps behaviour passes `--check`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb

from detector.common.sqlsafe import quote_ident, quote_literal
from sample_logs import generate_bundle

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "detector"]
BUNDLES = {  # name -> (archetype, seed); 21 days, the last 7 scored
    "community": ("community", 3),
    "outpatient": ("outpatient", 5),
}
START, SINCE, LAST = "2026-02-23", "2026-03-09", "2026-03-15"
VOLATILE_KEYS = {"seconds", "timings", "bundle", "workspace", "review_head", "generated", "path"}
GENERATED = re.compile(rb"Generated [0-9:+ -]+")


def _scrub(value: Any, top: bool = True) -> Any:
    """``value`` without the volatile keys (at any depth; ``/key``: at the top only)."""
    if isinstance(value, dict):
        return {
            k: _scrub(v, False)
            for k, v in value.items()
            if k not in VOLATILE_KEYS and not (top and f"/{k}" in VOLATILE_KEYS)
        }
    if isinstance(value, list):
        return [_scrub(v, False) for v in value]
    return value


def _digest_file(path: Path, base: Path) -> str:
    data = path.read_bytes()
    if path.name == "summary.json":
        data = json.dumps(_scrub(json.loads(data)), sort_keys=True).encode()
    elif path.suffix == ".html":
        data = GENERATED.sub(b"Generated -", data)
    for spelling in {str(base.resolve()), str(base)}:  # a linked bundle is written by its real path
        data = data.replace(spelling.encode(), b"<base>")
    return hashlib.sha256(data).hexdigest()


def _digest_rows(con: duckdb.DuckDBPyConnection, relation: str) -> str:
    rows = con.sql(f"SELECT * FROM {relation} ORDER BY ALL").fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def _digest_tree(root: Path, base: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    con = duckdb.connect()
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if not path.is_file() or path.suffix == ".zip" or "/tmp/" in f"/{name}":
            continue
        if path.suffix == ".parquet":
            out[name] = _digest_rows(con, f"read_parquet({quote_literal(path)})")
        elif path.suffix == ".duckdb":
            store = duckdb.connect(str(path), read_only=True)
            tables = store.sql("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()
            for (table,) in tables:
                out[f"{name}:{table}"] = _digest_rows(store, quote_ident(table))
            store.close()
        elif path.suffix in {".jsonl", ".csv", ".json", ".html", ".prom"} and path.name not in {
            "workspace.toml",
            "head.json",
            "phi_detector.prom",
            "seal.json",
            "fingerprint.json",
        }:
            out[name] = _digest_file(path, base)
    return out


def collect(work: Path, cli: list[str]) -> dict[str, str]:
    """Run the batch and nightly flows (command line ``cli``) on the generated hospitals; digest them."""
    digests: dict[str, str] = {}
    for name, (archetype, seed) in BUNDLES.items():
        bundle = ROOT / "bench-data" / f"compare-{archetype}-{seed}"
        if not (bundle / "ground_truth.json").exists():
            generate_bundle(bundle, seed=seed, days=21, scale=0.25, archetype=archetype, start=START)
        out = work / f"run-{name}"
        subprocess.run([*cli, "run", str(bundle), "--since", SINCE, "--out", str(out)], check=True)
        digests.update({f"run-{name}/{k}": v for k, v in _digest_tree(out, bundle).items()})
    archetype, seed = BUNDLES["outpatient"]
    bundle = ROOT / "bench-data" / f"compare-{archetype}-{seed}"
    ws = work / "workspace"
    subprocess.run([*cli, "init", "--workspace", str(ws), "--bundle", str(bundle)], check=True)
    nightly = [*cli, "nightly", "--workspace", str(ws), "--from", START, "--to", LAST, "--quiet"]
    subprocess.run(nightly, check=True)
    digests.update({f"nightly/{k}": v for k, v in _digest_tree(ws, bundle).items()})
    return digests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--record", type=Path, help="write the digests to this file")
    mode.add_argument("--check", type=Path, help="compare with digests recorded earlier")
    parser.add_argument("--work", type=Path, default=ROOT / "bench-data" / "compare-out")
    parser.add_argument("--tree", type=Path, help="run the code of this checkout (benchmarks/tree.py)")
    parser.add_argument(
        "--drop-key",
        action="append",
        default=[],
        help="also drop this summary key (one a later version added); give it when recording and checking",
    )
    args = parser.parse_args()
    VOLATILE_KEYS.update(args.drop_key)
    shutil.rmtree(args.work, ignore_errors=True)
    cli = [sys.executable, str(ROOT / "benchmarks" / "tree.py"), str(args.tree)] if args.tree else CLI
    digests = collect(args.work, cli)
    if args.record:
        args.record.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
        print(f"recorded {len(digests)} digests in {args.record}")
        return 0
    before = json.loads(args.check.read_text())
    changed = sorted(k for k in before.keys() | digests.keys() if before.get(k) != digests.get(k))
    for key in changed:
        print(f"changed: {key}")
    print(f"{len(digests)} outputs compared, {len(changed)} changed")
    return 1 if changed else 0


if __name__ == "__main__":
    raise SystemExit(main())
