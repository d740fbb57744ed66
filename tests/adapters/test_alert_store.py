"""The AlertStore contract, held by the in-memory fake and by DynamoDB (moto): every write
is a compare-and-swap on `version`, and losing it is False, never an error."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from chalicelib.core.alert_message import AlertKind, AlertStatus, Severity
from chalicelib.core.alerts import AlertRecord, AlertState, build_message

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def record(**overrides) -> AlertRecord:
    base = AlertRecord(
        alert_id="web-1/disk-full/mount=/",
        kind=AlertKind.THRESHOLD,
        host="web-1",
        rule="disk-full",
        state=AlertState.FIRING,
        severity=Severity.CRITICAL,
        summary="Disk / at 97% on web-1",
        active_at=NOW,
        value=97.25,
        threshold=95.0,
        labels={"mount": "/"},
        runbook="https://runbooks.example/disk",
        fired_at=NOW,
        version=1,
        updated_at=NOW,
    )
    return replace(base, **overrides)


def test_a_record_reads_back_exactly_with_every_optional_value(stores):
    alerts = stores.alerts
    full = record(
        outbox=build_message(record(), AlertStatus.FIRING, None),
        outbox_at=NOW + timedelta(microseconds=123),
        notified=AlertStatus.RESOLVED,
        notified_at=NOW,
        notified_severity=Severity.WARNING,
        clear_since=NOW + timedelta(seconds=1),
        resolved_at=NOW + timedelta(minutes=2),
        description="over the line",
        version=7,
    )
    bare = record(
        alert_id="db-1/heartbeat",
        kind=AlertKind.HEARTBEAT,
        host="db-1",
        rule="heartbeat",
        value=None,
        threshold=None,
        labels={},
        runbook=None,
        fired_at=None,
        updated_at=None,
        state=AlertState.PENDING,
    )
    assert alerts.put(full, None)
    assert alerts.put(bare, None)
    assert sorted(alerts.scan(), key=lambda r: r.alert_id) == [bare, full]


def test_creating_an_alert_that_exists_loses_the_race(stores):
    alerts = stores.alerts
    assert alerts.put(record(), None)
    assert not alerts.put(record(summary="another evaluator"), None)
    assert alerts.scan() == [record()]


def test_an_update_takes_effect_only_over_the_version_it_read(stores):
    alerts = stores.alerts
    alerts.put(record(), None)
    moved = record(state=AlertState.RESOLVED, resolved_at=NOW, version=2)
    assert alerts.put(moved, 1)
    assert not alerts.put(record(version=3), 1)  # stale: another evaluator moved it
    assert not alerts.put(record(alert_id="nobody", version=2), 1)  # absent: nothing to update
    assert alerts.scan() == [moved]


def test_a_delete_takes_effect_only_over_the_version_it_read(stores):
    alerts = stores.alerts
    alerts.put(record(version=2), None)
    assert not alerts.delete(record().alert_id, 1)
    assert not alerts.delete("nobody", 1)
    assert alerts.scan() == [record(version=2)]
    assert alerts.delete(record().alert_id, 2)
    assert alerts.scan() == []
