"""The tables the stages exchange, declared once.

- ``bundle``: the canonical log bundle (access_log, users, patients, encounters): columns, types, codes.
"""

__all__ = ["bundle"]
