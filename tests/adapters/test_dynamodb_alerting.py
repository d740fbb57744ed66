"""Alert, silence and host-evaluation operations on DynamoDB (moto)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib.adapters.dynamodb import (
    DynamoDBAlertStore,
    DynamoDBHostStore,
    epoch_ms,
    from_item,
    snapshot_from_item,
    to_item,
)
from chalicelib.adapters.memory import InMemoryHostStore
from chalicelib.core.alert_message import AlertKind, AlertStatus, Severity
from chalicelib.core.alerts import AlertRecord, AlertState, build_message
from chalicelib.core.hosts import HostState, host_update
from chalicelib.core.models import Event, EventStatus, HeartbeatState, HostReport, Point
from chalicelib.core.ports import BackendUnavailable
from chalicelib.core.silences import parse_silence

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


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


def test_the_scan_reads_hosts_as_the_in_memory_store_does(aws_services):
    store = aws_services.host_store
    memory = InMemoryHostStore()
    for target in (store, memory):
        target.record(host_update(report(NOW - timedelta(minutes=1)), NOW - timedelta(minutes=1)))
        target.record(host_update(report(NOW, tags={}, events=[]), NOW))
        target.record(host_update(HostReport("db-1", state=HeartbeatState.SHUTDOWN), NOW))
    scanned = sorted(store.scan(), key=lambda h: h.host)
    assert scanned == sorted(memory.scan(), key=lambda h: h.host)
    db, web = scanned
    assert (db.state, db.retired_at) == (HostState.RETIRED, NOW)
    assert web.interval == timedelta(seconds=30)
    assert web.first_seen_at == NOW - timedelta(minutes=1)
    assert web.series["disk|mount=/"].fields == {"used_percent": 91.5, "ro": False}
    assert web.series["system"].fields == {"load5": 3.0, "n_cpus": 2.0}
    assert web.services["backup"].ttl_ms == 90_000


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
            "s#bad": {"m": "disk"},
            "s#ok": {"m": "m", "tags": {}, "t": 5, "f": {"x": 1}},
            "e#bad": "text",
        }
    )
    snapshot = snapshot_from_item(item)
    assert snapshot.state is HostState.UP
    assert list(snapshot.series) == ["ok"]
    assert snapshot.services == {}
    assert snapshot_from_item(to_item({"host": "no-last-seen"})) is None


def test_mark_down_only_if_nothing_was_posted_since_the_read(aws_services):
    store = aws_services.host_store
    store.record(host_update(report(NOW), NOW))
    assert not store.mark_down("web-1", NOW - timedelta(seconds=1))  # a newer post landed
    assert store.get("web-1")["state"] == "up"
    assert store.mark_down("web-1", NOW)
    assert store.get("web-1")["state"] == "down"
    assert not store.mark_down("web-1", NOW)  # already down: nothing to do
    assert not store.mark_down("nobody", NOW)


def float_unfriendly_instant() -> datetime:
    """A post time whose stored epoch ms do not survive a float round trip through
    datetime (some do not, after 2038)."""
    ms = 2**31 * 1000
    while int(datetime.fromtimestamp(ms / 1000, tz=UTC).timestamp() * 1000) == ms:
        ms += 1
    seen = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms, microseconds=500)
    assert epoch_ms(seen) == ms  # what the collector stores
    return seen


def test_mark_down_and_forget_send_back_exactly_the_time_they_read(aws_services):
    store = aws_services.host_store
    memory = InMemoryHostStore()
    seen = float_unfriendly_instant()
    for target in (store, memory):
        target.record(host_update(report(seen), seen))
        target.record(host_update(HostReport("db-1", state=HeartbeatState.SHUTDOWN), seen))
        read = {h.host: h.last_seen_at for h in target.scan()}
        assert target.mark_down("web-1", read["web-1"])
        assert target.forget("db-1", read["db-1"])


def test_pause_resume_and_unknown_hosts(aws_services):
    store = aws_services.host_store
    store.record(host_update(report(NOW), NOW))
    assert store.pause("web-1")
    assert store.get("web-1")["state"] == "paused"
    assert store.resume("web-1")
    assert store.get("web-1")["state"] == "up"
    assert store.resume("web-1")  # not paused: nothing to undo, but the host exists
    assert not store.pause("nobody")
    assert not store.resume("nobody")
    assert store.get("nobody") is None  # a failed pause creates nothing


def test_forget_only_a_retired_host_as_it_was_read(aws_services):
    store = aws_services.host_store
    store.record(host_update(HostReport("web-1", state=HeartbeatState.SHUTDOWN), NOW))
    assert not store.forget("web-1", NOW - timedelta(seconds=1))
    assert store.forget("web-1", NOW)
    assert store.get("web-1") is None
    store.record(host_update(report(NOW), NOW))
    assert not store.forget("web-1", NOW)  # up: kept


def test_prune_removes_stale_values_unless_refreshed_meanwhile(aws_services):
    store = aws_services.host_store
    old = NOW - timedelta(days=2)
    store.record(host_update(report(old), old))
    store.record(host_update(report(NOW, points=[], events=[]), NOW))
    t_old = ms(old)
    stale_series = {"disk|mount=/": t_old, "system": t_old}
    assert not store.prune("web-1", {"disk|mount=/": t_old - 1}, {})  # not what was read
    assert store.prune("web-1", stale_series, {"backup": t_old})
    item = store.get("web-1")
    assert not [k for k in item if k.startswith(("s#", "e#"))]
    assert item["last_seen_at"] == ms(NOW)


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


def test_alert_records_round_trip_and_every_write_is_a_compare_and_swap(aws_services):
    store = aws_services.alert_store
    first = record()
    assert store.put(first, None)
    assert not store.put(first, None)  # exists already: another evaluator created it
    claimed = replace(
        first,
        outbox=build_message(first, AlertStatus.FIRING, None),
        outbox_at=NOW,
        notified=AlertStatus.RESOLVED,
        notified_at=NOW,
        notified_severity=Severity.WARNING,
        clear_since=NOW,
        version=2,
    )
    assert store.put(claimed, 1)
    assert not store.put(replace(claimed, version=3), 1)  # stale version: lost the race
    [read] = store.scan()
    assert read == claimed
    assert not store.delete(read.alert_id, 1)
    assert store.delete(read.alert_id, 2)
    assert store.scan() == []


def test_alert_store_faults_are_backend_unavailable():
    client = boto3.client("dynamodb", region_name="us-east-1")
    stub = Stubber(client)
    stub.add_client_error("put_item", "ProvisionedThroughputExceededException", "slow down")
    with stub, pytest.raises(BackendUnavailable, match="alerts table"):
        DynamoDBAlertStore(client, "alerts").put(record(), None)
    stub = Stubber(client)
    stub.add_client_error("update_item", "InternalServerError", "oops")
    with stub, pytest.raises(BackendUnavailable, match="hosts table"):
        DynamoDBHostStore(client, "hosts").mark_down("h", NOW)


def test_silences_round_trip(aws_services):
    store = aws_services.silence_store
    weekly = parse_silence(
        {
            "matchers": {"host": "web-*", "rule": "!disk-*"},
            "schedule": {
                "days": ["sat", "sun"],
                "start": "22:00",
                "end": "02:00",
                "timezone": "Europe/Paris",
            },
            "comment": "patching",
        },
        silence_id="abc",
        now=NOW,
        created_by="tok",
    )
    once = parse_silence(
        {"matchers": {"host": "*"}, "duration": "2h"},
        silence_id="def",
        now=NOW + timedelta(seconds=1),
    )
    store.put(weekly)
    store.put(once)
    assert store.list() == [weekly, once]
    assert store.delete("abc")
    assert not store.delete("abc")
    raw = aws_services.clients.get("dynamodb").scan(TableName=aws_services.settings.silences_table)
    assert [from_item(i)["silence_id"] for i in raw["Items"]] == ["def"]
