"""Investigation: what a privacy officer reads.

- ``lookups``: one user's or one patient's accesses, explained (a workspace or a bundle as source);
- ``casebook``: a workspace's cases with their reviews, and the breach-notification scope.
"""

from detector.investigate.casebook import breach_scope, case_detail, list_cases
from detector.investigate.lookups import patient_report, user_report

__all__ = ["breach_scope", "case_detail", "list_cases", "patient_report", "user_report"]
