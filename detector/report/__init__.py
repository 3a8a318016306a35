"""The review report: one self-contained HTML file a privacy officer can open offline.

- ``html``: the report's data and page (``write_report``);
- ``charts``: its two charts as inline SVG.
"""

from detector.report.html import render_report, report_data, write_report

__all__ = ["render_report", "report_data", "write_report"]
