"""Source adapters: a site's own audit format in, canonical ``access_log`` text rows out.

A hospital does not have the canonical bundle; it has what its EHR and PACS emit. Each adapter reads one
file of one format and returns an ``Adapted``: canonical ``access_log`` columns as text (validated next
by the same SQL as a CSV file, ``detector.ingest.validate``), the records it refused with their line and
reason, and the events it skipped because they are not patient-record access (log-in, log-off, system
lists), counted by reason. The modules:

- ``base``: ``Adapted``, ``AdapterOptions`` and the accounting every adapter keeps.
- ``fhir``: ``read_fhir``, FHIR AuditEvent R4/R5/IHE BALP as a JSON resource, a Bundle, NDJSON or XML.
- ``fhir_fields``: one AuditEvent's fields mapped to canonical rows (the mapping and its decisions).
- ``fhir_fast``: the common NDJSON line (a BALP RESTful read) recognised whole by a regular expression
  and its row taken from the match, without ``json.loads``; the same row ``fhir_fields`` gives it.
- ``fhir_typed``: the other NDJSON lines of a plain R4 or R5 shape decoded by msgspec straight into the
  fields the mapping reads (full BALP server records); the same answer ``fhir_fields`` gives, or none.
- ``atna``: DICOM / IHE ATNA audit messages (PS3.15 A.5, RFC 3881), as XML files or syslog files, to
  rows (``read_atna``); machine requestors are mapped to users or listed as system users.
- ``atna_xml``: the lenient, DTD-refusing parse of one audit message in either attribute dialect.
- ``syslog``: a syslog file split into RFC 5424 messages (octet-counted or LF-framed) with their headers.
- ``nodes``: the site's node-to-user map (IP address, AE title, workstation... to user id).
- ``epic``: ``read_epic``, Epic-style access log extracts (CSV, TSV or pipe-delimited) to rows, the
  timestamp from the UTC ``ACCESS_INSTANT`` and the local ``ACCESS_TIME``.
- ``epic_fast``: the vectorised Epic reader (Arrow's CSV parser, one DuckDB query) ``read_epic`` uses for
  every file whose records the row-by-row reader would all take; its result is the same ``Adapted``.
- ``epic_catalogue``: the metric catalogue (metric name or id to action, resource type, break-the-glass,
  outcome, or a reason to skip), the shipped default ``epic_metrics.toml`` extended by the site's.
"""

from detector.ingest.adapters.atna import read_atna
from detector.ingest.adapters.base import Adapted, AdapterOptions
from detector.ingest.adapters.epic import read_epic
from detector.ingest.adapters.fhir import read_fhir

__all__ = ["Adapted", "AdapterOptions", "read_atna", "read_epic", "read_fhir"]
