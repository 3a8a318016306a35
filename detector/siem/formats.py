"""SIEM renderings of a case: pseudonymous patient tokens, CEF, LEEF 2.0, an ECS JSON document, an OCSF
Detection Finding, and the RFC 5424 syslog envelope with octet-counting framing. Delivering them is
``detector.siem.transport`` (syslog, HEC) with ``detector.siem.outbox``; the README's SIEM delivery
section shows each format.

Rules followed (from the CEF, LEEF and RFC 5424/6587 specifications):

* CEF header fields escape ``\\`` and ``|``, and may not contain line breaks; extension values escape ``\\``
  and ``=``, and write CR/LF as ``\\r``/``\\n``; extension keys are alphanumeric.
* LEEF defines no escaping: the attribute delimiter (``^`` here) and CR/LF are replaced in values, and
  header fields never carry ``|``.
* RFC 5424: ``<PRI>1 TIMESTAMP HOST APP-NAME PROCID MSGID - MSG``; header fields are printable US-ASCII
  without spaces (``-`` when empty); on TCP and TLS every message is sent as ``LENGTH SP MESSAGE``
  (RFC 6587 octet counting), so a message may contain newlines.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from detector.common.version import __version__
from detector.tables.cases import Key
from features.columns import Col

__all__ = [
    "LEEF_DELIMITER",
    "Pseudonymizer",
    "SiemEvent",
    "cef",
    "cef_escape_extension",
    "cef_escape_header",
    "ecs",
    "leef",
    "ocsf",
    "octet_frame",
    "syslog_5424",
]

VENDOR = "OpenPHI"
PRODUCT = "phi-access-detector"
LEEF_DELIMITER = "^"
TOKEN_PREFIX = "pt_"


class Pseudonymizer:
    """A keyed HMAC-SHA256 token per patient: stable for one key, meaningless without it. Revealing a
    token means recomputing tokens for known patient ids with the key (``reveal``)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the pseudonymisation key must be at least 16 bytes")
        self._key = key

    def token(self, patient_id: str) -> str:
        digest = hmac.new(self._key, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()
        return TOKEN_PREFIX + digest[:24]

    def reveal(self, token: str, patient_ids: Iterable[str]) -> str | None:
        """The patient id among ``patient_ids`` whose token is ``token`` (None when none is)."""
        for patient_id in patient_ids:
            if hmac.compare_digest(self.token(patient_id), token):
                return patient_id
        return None


@dataclass(frozen=True)
class SiemEvent:
    """What a SIEM receives for one case on one night: no names, no addresses; patients as tokens unless
    the sender was told to send clear identifiers."""

    event_id: str
    """Deterministic: the case id and the night (a re-delivered event has the same id)."""
    time: dt.datetime
    user_id: str
    patients: tuple[str, ...]
    severity: str
    score: float
    scenarios: tuple[str, ...]
    message: str
    case_id: str
    status: str

    @classmethod
    def from_case(
        cls, case: Mapping[str, object], pseudonymizer: Pseudonymizer | None, *, clear: bool = False
    ) -> SiemEvent:
        patient_ids = [str(p) for p in case[Key.patient_ids]]  # type: ignore[attr-defined]
        if not clear:
            if pseudonymizer is None:
                raise ValueError("patients leave as tokens unless clear identifiers are asked for")
            patient_ids = [pseudonymizer.token(p) for p in patient_ids]
        scenarios = tuple(str(s) for s in case.get(Key.scenarios, ()))  # type: ignore[attr-defined]
        night = str(case.get(Key.night) or case.get(Col.last_access, ""))[:10]
        return cls(
            event_id=f"{case[Key.case_id]}:{night}",
            time=dt.datetime.fromisoformat(str(case[Col.last_access])),
            user_id=str(case[Col.user_id]),
            patients=tuple(patient_ids),
            severity=str(case[Key.severity]),
            score=float(case[Col.score]),  # type: ignore[arg-type]
            scenarios=scenarios,
            message=f"{len(patient_ids)} patient record(s) to review: "
            + (", ".join(scenarios) or "unexplained access"),
            case_id=str(case[Key.case_id]),
            status=str(case.get(Key.status, "new")),
        )


_SEVERITY = {"low": 3, "medium": 6, "high": 8}


def cef_escape_header(value: str) -> str:
    value = re.sub(r"[\r\n]+", " ", value)
    return value.replace("\\", "\\\\").replace("|", "\\|")


def cef_escape_extension(value: str) -> str:
    """Backslash and '=' escaped; CR and LF written as \\r and \\n (each kept, so nothing is lost)."""
    return value.replace("\\", "\\\\").replace("=", "\\=").replace("\r", "\\r").replace("\n", "\\n")


def _epoch_ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def cef(event: SiemEvent) -> str:
    """``CEF:0|Vendor|Product|Version|SignatureID|Name|Severity|extension``."""
    header = [
        "CEF:0",
        VENDOR,
        PRODUCT,
        __version__,
        "phi.case." + (event.scenarios[0] if event.scenarios else "unexplained"),
        "Suspicious access to patient records",
        str(_SEVERITY.get(event.severity, 5)),
    ]
    extension = {
        "rt": str(_epoch_ms(event.time)),
        "suser": event.user_id,
        "duser": ",".join(event.patients),
        "act": event.status,
        "msg": event.message,
        "externalId": event.event_id,
        "cs1Label": "caseId",
        "cs1": event.case_id,
        "cs2Label": "scenarios",
        "cs2": ",".join(event.scenarios),
        "cfp1Label": "score",
        "cfp1": f"{event.score:.4f}",
        "cnt": str(len(event.patients)),
    }
    head = "|".join(cef_escape_header(part) for part in header)
    return head + "|" + " ".join(f"{key}={cef_escape_extension(value)}" for key, value in extension.items())


def _leef_value(value: str) -> str:
    return re.sub(r"[\r\n]+", " ", value).replace(LEEF_DELIMITER, " ")


def leef(event: SiemEvent) -> str:
    """``LEEF:2.0|Vendor|Product|Version|EventID|^|key=value^...``."""
    header = ["LEEF:2.0", VENDOR, PRODUCT, __version__, "PHI_CASE", LEEF_DELIMITER]
    attributes = {
        "devTime": event.time.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000",
        "devTimeFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSZ",
        "cat": "PrivacyAlert",
        "sev": str(_SEVERITY.get(event.severity, 5)),
        "usrName": event.user_id,
        "resource": ",".join(event.patients),
        "externalId": event.event_id,
        "caseId": event.case_id,
        "scenarios": ",".join(event.scenarios),
        "score": f"{event.score:.4f}",
        "msg": event.message,
    }
    head = "|".join(part.replace("|", " ") for part in header)
    return head + "|" + LEEF_DELIMITER.join(f"{k}={_leef_value(v)}" for k, v in attributes.items())


def ecs(event: SiemEvent) -> dict[str, object]:
    """An Elastic Common Schema document (event.kind alert); the tool's own fields under ``phi_detector``."""
    return {
        "@timestamp": event.time.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "ecs": {"version": "8.11.0"},
        "event": {
            "kind": "alert",
            "category": ["iam"],
            "type": ["info"],
            "id": event.event_id,
            "dataset": "phi_detector.case",
            "module": "phi_detector",
            "severity": _SEVERITY.get(event.severity, 5),
            "risk_score": event.score,
            "action": event.status,
        },
        "user": {"id": event.user_id},
        "rule": {"name": ",".join(event.scenarios) or "unexplained"},
        "message": event.message,
        "observer": {"vendor": VENDOR, "product": PRODUCT, "version": __version__},
        "phi_detector": {
            Key.case_id: event.case_id,
            "patients": list(event.patients),
            Key.scenarios: list(event.scenarios),
        },
    }


_OCSF_SEVERITY = {"low": 2, "medium": 3, "high": 4}


def ocsf(event: SiemEvent) -> dict[str, object]:
    """An OCSF Detection Finding (class 2004, category Findings); ``finding_info.uid`` is the event id."""
    activity = 1 if event.status == "new" else 2  # Create, Update
    millis = _epoch_ms(event.time)
    return {
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": activity,
        "activity_name": "Create" if activity == 1 else "Update",
        "type_uid": 2004 * 100 + activity,
        "severity_id": _OCSF_SEVERITY.get(event.severity, 0),
        "severity": event.severity.capitalize(),
        "status_id": 1,
        "status": "New",
        "time": millis,
        "message": event.message,
        "count": len(event.patients),
        "risk_score": round(event.score),
        "metadata": {
            "version": "1.1.0",
            "product": {"name": PRODUCT, "vendor_name": VENDOR, "version": __version__},
        },
        "finding_info": {
            "uid": event.event_id,
            "title": "Suspicious access to patient records",
            "desc": event.message,
            "types": list(event.scenarios) or ["unexplained"],
            "last_seen_time": millis,
        },
        "observables": [
            {"name": "actor.user.name", "type_id": 4, "type": "User Name", "value": event.user_id}
        ],
        "resources": [{"uid": patient, "type": "patient"} for patient in event.patients],
        "unmapped": {Key.case_id: event.case_id},
    }


def _header_field(value: str | None, limit: int) -> str:
    cleaned = "".join(ch for ch in (value or "") if 33 <= ord(ch) <= 126)[:limit]
    return cleaned or "-"


def syslog_5424(
    message: str,
    *,
    moment: dt.datetime,
    hostname: str,
    app_name: str = "phi-detector",
    procid: str | None = None,
    msgid: str = "case",
    facility: int = 13,
    severity: int = 4,
) -> bytes:
    """One RFC 5424 message (no structured data; the payload is UTF-8)."""
    pri = facility * 8 + severity
    stamp = moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    header = " ".join(
        [
            f"<{pri}>1",
            stamp,
            _header_field(hostname, 255),
            _header_field(app_name, 48),
            _header_field(procid, 128),
            _header_field(msgid, 32),
            "-",
        ]
    )
    return (header + " " + message).encode("utf-8")


def octet_frame(message: bytes) -> bytes:
    """RFC 6587 octet counting, as syslog over TCP and TLS (RFC 5425) expects."""
    return str(len(message)).encode("ascii") + b" " + message
