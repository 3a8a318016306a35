"""The tables the stages exchange, declared once.

- ``bundle``: the canonical log bundle (access_log, users, patients, encounters): columns, types, codes;
- ``cases``: the case store's rows (case_nights, case_lookups) as frozen dataclasses, its DDL derived;
- ``review``: the review log's entries (any entry, a verdict, an allow-list rule) as frozen dataclasses,
  typed views of the JSON lines the log hashes.

The feature stages' tables (``lookups``, ``user_days``, the history a night stores) are declared in
``features.tables``, beside the code that builds them (``features`` never imports ``detector``).
"""

__all__ = ["bundle", "cases", "review"]
