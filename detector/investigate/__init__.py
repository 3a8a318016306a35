"""Investigation: what a privacy officer reads.

- ``lookups``: one user's or one patient's accesses, explained;
- ``sources``: the session views they read, over a nightly workspace or a bundle scored in memory;
- ``casebook``: a workspace's cases with their reviews (closing and reopening them), and the
  breach-notification scope.
"""

from detector.investigate.casebook import breach_scope, case_detail, close_case, list_cases, reopen_case
from detector.investigate.lookups import patient_report, user_report

__all__ = [
    "breach_scope",
    "case_detail",
    "close_case",
    "list_cases",
    "patient_report",
    "reopen_case",
    "user_report",
]
