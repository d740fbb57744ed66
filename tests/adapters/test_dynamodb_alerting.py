"""How the hosts table is read for an evaluation: the fast decoder of Scan items (moto).

What every store must do is in the contract suites (test_host_store.py, test_alert_store.py,
test_silence_store.py); this is what only the DynamoDB adapter does."""

from __future__ import annotations

from datetime import UTC, datetime

from chalicelib.adapters.dynamodb import (
    snapshot_from_item,
    to_item,
)
from chalicelib.core.hosts import HostState, host_update
from chalicelib.core.instants import ms_of_instant
from chalicelib.core.models import Event, EventStatus, HostReport, Point

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


ms = ms_of_instant


def report(at: datetime, **overrides) -> HostReport:
    base = {
        "host": "web-1",
        "tags": {"role": "web"},
        "interval_s": 30,
        "points": [
            Point("disk", ms(at), {"mount": "/"}, {"used_percent": 91.5, "ro": False}),
            Point("system", ms(at), {}, {"load5": 3, "n_cpus": 2}),
        ],
        "events": [Event("backup", EventStatus.CRITICAL, ms(at), 90_000, "disk full", 97.5)],
    }
    base.update(overrides)
    return HostReport(**base)


def test_the_scan_decodes_only_the_fields_rules_read_when_told(aws_services):
    store = aws_services.host_store
    store.record(host_update(report(NOW), NOW))
    [web] = store.scan({"disk": frozenset({"used_percent", "absent"})})
    assert web.series["disk|mount=/"].fields == {"used_percent": 91.5}
    assert web.series["system"].fields == {}  # no rule reads it: time and tags only
    assert web.series["system"].time_ms == ms(NOW)


def test_the_fast_decoder_skips_what_it_cannot_read():
    item = to_item(
        {
            "host": "h",
            "last_seen_at": 1000,
            "state": "weird",
            "w": {"bad": {"m": "disk"}, "ok": {"m": "m", "tags": {}, "t": 5, "f": {"x": 1}}},
            "e#bad": "text",
        }
    )
    snapshot = snapshot_from_item(item)
    assert snapshot.state is HostState.UP
    assert list(snapshot.series) == ["ok"]
    assert snapshot.services == {}
    assert snapshot_from_item(to_item({"host": "no-last-seen"})) is None
