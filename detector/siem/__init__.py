"""SIEM delivery: a night's cases as CEF, LEEF, JSON, OCSF or Splunk HEC events, patients as tokens.

- ``formats``: the renderings and the pseudonymous patient tokens;
- ``transport``: syslog over UDP, TCP and TLS (RFC 5424/5425/6587) and HTTP Event Collector;
- ``outbox``: which events each destination has accepted (nothing lost, nothing twice);
- ``send``: the ``send`` and ``reveal`` flows.
"""

from detector.siem.send import reveal, send_alerts

__all__ = ["reveal", "send_alerts"]
