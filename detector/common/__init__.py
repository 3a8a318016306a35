"""What every stage shares and nothing stage-specific; imports no other package of the tool.

- ``errors``: the one exception hierarchy and the exit codes the CLI maps it to;
- ``boundary``: any exception becomes a DetectorError with a documented exit code;
- ``sqlsafe``: the one place where a value or a name becomes SQL text;
- ``outputs``: outputs written whole (never half, never over an input);
- ``spreadsheet``: CSV meant for people, safe to open in a spreadsheet;
- ``render``: rows as a terminal table, CSV or JSON;
- ``arrow_ops``: Arrow helpers that keep large tables cheap;
- ``integrity``: the workspace's secret key and the seals made with it;
- ``version``: the tool's version.
"""

__all__ = [
    "arrow_ops",
    "boundary",
    "errors",
    "integrity",
    "outputs",
    "render",
    "spreadsheet",
    "sqlsafe",
    "version",
]
