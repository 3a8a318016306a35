"""The nightly job: one day's logs in, the day's new and grown cases out, in a workspace.

- ``workspace``: the workspace's configuration, layout on disk, lock, key and verification;
- ``flow``: the nightly flow in one screen (``nightly``, ``backfill``, ``train``);
- ``metrics``: the Prometheus textfile a night leaves for node_exporter.
"""

from detector.nightly.flow import backfill, nightly, train
from detector.nightly.workspace import Workspace, init_workspace, load_workspace, verify_workspace

__all__ = [
    "Workspace",
    "backfill",
    "init_workspace",
    "load_workspace",
    "nightly",
    "train",
    "verify_workspace",
]
