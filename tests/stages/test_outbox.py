"""detector.siem.outbox.Outbox: one ledger per destination (JSON lines of event ids, appended and fsynced)
records the events that destination accepted, so each event is sent once. ``delivered`` reads the ids
back; a line cut short by a crash (or otherwise damaged) records nothing, and the next ``record``
starts on a new line instead of gluing onto it. Destinations never share a ledger.
"""

from __future__ import annotations

import json
from pathlib import Path

from detector.siem.outbox import Outbox

DEST = "https://siem.example.org:8088/services/collector"


def test_a_new_outbox_has_delivered_nothing_and_creates_its_folder(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox", DEST)
    assert (tmp_path / "outbox").is_dir()
    assert outbox.delivered() == set()
    assert not outbox.path.exists()


def test_recorded_events_are_delivered_once_across_instances(tmp_path: Path) -> None:
    Outbox(tmp_path, DEST).record(["c1-2026-03-10", "c2-2026-03-10"])
    Outbox(tmp_path, DEST).record(["c3-2026-03-10"])
    again = Outbox(tmp_path, DEST)
    assert again.delivered() == {"c1-2026-03-10", "c2-2026-03-10", "c3-2026-03-10"}
    lines = again.path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {"event_id": "c1-2026-03-10", "to": DEST},
        {"event_id": "c2-2026-03-10", "to": DEST},
        {"event_id": "c3-2026-03-10", "to": DEST},
    ]


def test_recording_nothing_writes_nothing(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, DEST)
    outbox.record([])
    assert not outbox.path.exists()


def test_each_destination_has_its_own_ledger(tmp_path: Path) -> None:
    splunk, syslog = Outbox(tmp_path, DEST), Outbox(tmp_path, "syslog://10.0.0.5:6514")
    splunk.record(["e1"])
    assert splunk.path != syslog.path
    assert splunk.path.parent == tmp_path and splunk.path.name.startswith("delivered-")
    assert syslog.delivered() == set()
    assert Outbox(tmp_path, DEST).path == splunk.path  # the same destination, the same ledger


def _crash_mid_line(outbox: Outbox) -> None:
    """The state a crash leaves: e1 recorded, e2's line cut short."""
    outbox.record(["e1"])
    with outbox.path.open("a", encoding="utf-8") as handle:
        handle.write('{"event_id": "e2", "to"')


def test_a_line_cut_by_a_crash_is_not_recorded(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, DEST)
    _crash_mid_line(outbox)
    assert outbox.delivered() == {"e1"}


def test_the_next_record_after_a_crash_starts_on_a_new_line(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, DEST)
    _crash_mid_line(outbox)
    outbox.record(["e3"])
    lines = outbox.path.read_text(encoding="utf-8").split("\n")
    assert lines == [
        json.dumps({"event_id": "e1", "to": DEST}),
        '{"event_id": "e2", "to"',
        json.dumps({"event_id": "e3", "to": DEST}),
        "",
    ]


def test_the_ledger_stays_readable_after_a_crash_and_a_later_record(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, DEST)
    _crash_mid_line(outbox)
    outbox.record(["e3"])
    assert Outbox(tmp_path, DEST).delivered() == {"e1", "e3"}


def test_event_ids_are_kept_exactly(tmp_path: Path) -> None:
    odd = ['case "7"\n2026-03-10', "naïve-id", "e1\\x"]
    Outbox(tmp_path, DEST).record(odd)
    assert Outbox(tmp_path, DEST).delivered() == set(odd)


def test_a_damaged_ledger_line_counts_as_not_delivered(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, DEST)
    outbox.record(["e1"])
    with outbox.path.open("ab") as handle:  # a disk or an editor left lines that record no event id
        handle.write(b'[1, 2]\n{"event_id": 7}\n\xff\xfe{\n\n{"to": "x"}\n')
    outbox.record(["e3"])
    assert Outbox(tmp_path, DEST).delivered() == {"e1", "e3"}
