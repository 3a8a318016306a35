"""Review: what privacy officers decided, kept as evidence, and what it changes.

- ``log``: the review log (verdicts, allow-list rules added and revoked), a keyed hash chain;
- ``rules``: allow-list rules: checked, added, revoked, and those in force on a day;
- ``casestore``: cases across nights in the workspace's DuckDB file;
- ``learning``: verdicts and allow-lists applied to the next nights' scores.
"""

from detector.review.log import ReviewLog, verdicts
from detector.review.rules import active_rules, add_rule, revoke_rule

__all__ = ["ReviewLog", "active_rules", "add_rule", "revoke_rule", "verdicts"]
