"""Ingestion: a bundle's files in, validated and de-duplicated canonical tables, rejects and an exact row
count out (``rows_read = accepted + rejected + duplicates + skipped``).

- ``flow``: the ingestion flow and its accounting (``ingest``, ``load_bundle``); ``report``: a table's
  counts in the summary (``TableReport``);
- ``mapping`` + ``confschema``: the site configuration (mapping.toml, workspace.toml keys);
- ``timezones``: the site zone inferred from the access log's UTC offsets;
- ``sources``: finding a table's files (one file, a folder, a glob), confined to the bundle;
- ``readers`` + ``validate``: one DuckDB scan per file that parses, validates and types;
- ``scans``: how each format (CSV, JSON lines, Parquet) is read as text; ``results``: a file's rows and
  rejects (the reject schema), or a file-level failure;
- ``recover`` + ``lines``: the line-by-line reader for damaged text, physical line numbers;
- ``dedup``: exact copies and repeated keys;
- ``adapted``: an access log of a site audit format (epic, fhir, atna) read through its source adapter
  (``adapters``), then validated as any file; its skipped events, notes and system users.
"""

from detector.ingest.flow import Bundle, TableReport, ingest, load_bundle, resolve_config

__all__ = ["Bundle", "TableReport", "ingest", "load_bundle", "resolve_config"]
