"""Run ``phi-detector`` from another checkout of the project (an old commit's worktree), for A/B timings.

    git worktree add --detach ../old 89a9b66
    .venv/bin/python benchmarks/tree.py ../old ingest bench-data/adapters/epic --out /tmp/old-out
    .venv/bin/python benchmarks/tree.py . ingest bench-data/adapters/epic --out /tmp/new-out

Putting the other checkout first on ``PYTHONPATH`` is not enough: the venv's editable install of this
checkout adds an import finder (``sys.meta_path``) that wins over ``sys.path``, so the "old" run would
import the current code. This script drops that finder, imports ``detector`` from TREE (and checks that it
did), then runs its command line with the remaining arguments.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    tree = Path(sys.argv.pop(1)).resolve()
    sys.meta_path[:] = [finder for finder in sys.meta_path if "editable" not in repr(finder).lower()]
    sys.path.insert(0, str(tree))
    import detector

    if not Path(detector.__file__).resolve().is_relative_to(tree):
        sys.exit(f"detector was imported from {detector.__file__}, not from {tree}")
    runpy.run_module("detector", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
