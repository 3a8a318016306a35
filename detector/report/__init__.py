"""The review report: one self-contained HTML file a privacy officer can open offline.

- ``data``: what the report charts, read from the session's tables (``report_data``);
- ``html``: the report's page (``render_report``, ``write_report``);
- ``charts``: its two charts as inline SVG.
"""

from detector.report.data import report_data
from detector.report.html import render_report, write_report

__all__ = ["render_report", "report_data", "write_report"]
