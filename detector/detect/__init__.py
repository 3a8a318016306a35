"""Detection: canonical tables in, scored lookups and ranked, explained cases out.

- ``stages``: the feature and scoring stages in order, shared by ``run``, ``nightly`` and ``investigate``;
- ``spark_stage``: the feature stages on Apache Spark from canonical Parquet, their tables loaded back here;
- ``scoring``: one suspicion score per lookup (policy signals, peer-group surprise, the model);
- ``cases``: a user's suspicious lookups grouped into ranked cases;
- ``reasons``: plain-language reasons and scenario tags with the numbers behind them;
- ``pipeline``: the batch flow in one screen (``run``);
- ``evaluate``: a case queue judged against a generator's ground truth within a review budget.
"""

from detector.detect.evaluate import evaluate
from detector.detect.pipeline import Window, run

__all__ = ["Window", "evaluate", "run"]
