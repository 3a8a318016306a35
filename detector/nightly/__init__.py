"""The nightly job: one day's logs in, the day's new and grown cases out, in a workspace.

- ``workspace``: the workspace's configuration, layout on disk and lock;
- ``keys``: setting a workspace up (``init``: its secret key), ``init --add-key`` and ``verify``;
- ``flow``: the nightly flow in one screen (``nightly``, ``backfill``, ``train``);
- ``intake``: the day's access log validated into W/days/D, the context tables refreshed in W/context;
- ``baseline``: what nights keep for later nights (W/history/D, the models in W/models/T) and read back;
- ``spark_night``: the night's feature stage on Spark (``[nightly] features = "spark"``), scored here;
- ``outputs``: the night's run folder W/runs/D (rejects, alerts, report, summary, then _SUCCESS);
- ``metrics``: the Prometheus textfile a night leaves for node_exporter.
"""

from detector.nightly.flow import backfill, nightly, train
from detector.nightly.keys import init_workspace, verify_workspace
from detector.nightly.workspace import Workspace, load_workspace

__all__ = [
    "Workspace",
    "backfill",
    "init_workspace",
    "load_workspace",
    "nightly",
    "train",
    "verify_workspace",
]
