"""The command line: a thin shell over the library; the only package that imports click.

* ``shell``: the ``cli`` group (the error boundary and exit codes), ``main``, shared options and helpers;
* ``batch``: ``ingest``, ``features`` (on Spark), ``run``, ``sample``, ``evaluate`` on a log bundle;
* ``night``: ``init``, ``nightly``, ``train``, ``verify`` on a nightly workspace;
* ``delivery``: ``send`` cases to a SIEM, ``reveal`` a patient token;
* ``cases``: the ``case`` and ``allow`` groups (review, verdicts, allow-list rules, breach scope);
* ``investigation``: the ``investigate`` group (one user, one patient).

Importing the command modules registers their commands on ``cli``.
"""

from detector.cli import batch, cases, delivery, investigation, night  # noqa: F401  (register commands)
from detector.cli.shell import cli, main

__all__ = ["cli", "main"]
