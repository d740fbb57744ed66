"""The CPU and memory ring a post records on its host item: one slot per minute, last hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalicelib.core.hosts import (
    HISTORY_SLOTS,
    LATEST_MAX_AGE,
    HistoryPoint,
    history_slot,
    host_update,
    recent_history,
)
from chalicelib.core.models import HostReport, Point
from tests.support.memory import InMemoryHostStore

# 12:00:00 UTC: minute 0 of the hour, slot 0.
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def report(at: datetime, *, idle: float | None = 80.0, used: float | None = 40.0) -> HostReport:
    points = []
    if idle is not None:
        points.append(Point("cpu", ms(at), {"cpu": "total"}, {"idle": idle, "user": 5.0}, 0, "p0"))
    if used is not None:
        points.append(Point("memory", ms(at), {}, {"used_percent": used}, 1, "p1"))
    return HostReport(host="web-1", interval_s=60, points=points)


def test_a_post_records_busy_cpu_and_used_memory_in_the_slot_of_its_5_minutes():
    at = NOW + 17 * MIN + timedelta(seconds=42)
    update = host_update(report(at, idle=87.25, used=41.04), at)
    assert update.history == HistoryPoint(ms(at), 12.8, 41.0)
    assert update.history.slot == 3  # 12:15 to 12:20


def test_telegraf_field_names_count_too():
    at = NOW
    points = [
        Point("cpu", ms(at), {"cpu": "cpu-total"}, {"usage_idle": 70.0}, 0, "p0"),
        Point("mem", ms(at), {}, {"used_percent": 55.5}, 1, "p1"),
    ]
    update = host_update(HostReport(host="h", points=points), at)
    assert update.history == HistoryPoint(ms(at), 30.0, 55.5)


def test_one_of_the_two_is_enough_and_neither_records_nothing():
    assert host_update(report(NOW, used=None), NOW).history == HistoryPoint(ms(NOW), 20.0, None)
    assert host_update(report(NOW, idle=None), NOW).history == HistoryPoint(ms(NOW), None, 40.0)
    assert host_update(report(NOW, idle=None, used=None), NOW).history is None
    per_cpu = Point("cpu", ms(NOW), {"cpu": "cpu0"}, {"idle": 1.0}, 0, "p0")
    assert host_update(HostReport(host="h", points=[per_cpu]), NOW).history is None


def test_stale_and_future_points_are_ignored():
    stale = NOW - LATEST_MAX_AGE - timedelta(seconds=1)
    assert host_update(report(stale), NOW).history is None
    ahead = NOW + timedelta(minutes=2)
    assert host_update(report(ahead), NOW).history is None
    backlog = NOW - timedelta(minutes=5)  # a late batch lands in its own minute
    assert host_update(report(backlog), NOW).history.slot == history_slot(ms(backlog))


def test_values_are_kept_within_0_and_100():
    update = host_update(report(NOW, idle=-3.0, used=100.4), NOW)
    assert (update.history.cpu, update.history.mem) == (100.0, 100.0)


def test_the_ring_wraps_after_an_hour_and_never_holds_more_than_its_12_slots():
    store = InMemoryHostStore()
    # Three hours of posts every 20 seconds, CPU climbing by the minute.
    for i in range(3 * 60 * 3):
        at = NOW + i * timedelta(seconds=20)
        store.record(host_update(report(at, idle=100.0 - (i // 3) % 100), at))
    item = store.items["web-1"]
    assert sum(1 for k in item if k.startswith("h#")) == HISTORY_SLOTS
    last = NOW + (3 * 60 * 3 - 1) * timedelta(seconds=20)
    [snapshot] = store.scan(history=True)
    recent = recent_history(snapshot.history, last)
    assert len(recent) == HISTORY_SLOTS
    assert [p.time_ms for p in recent] == sorted(p.time_ms for p in recent)
    # Each step keeps the last post of its 5 minutes, and the newest step is the last one.
    assert recent[-1] == HistoryPoint(ms(last), float((3 * 60 * 3 - 1) // 3 % 100), 40.0)
    assert recent[0].time_ms > ms(last - 60 * MIN)


def test_leftovers_of_a_silent_hour_are_not_shown():
    store = InMemoryHostStore()
    store.record(host_update(report(NOW), NOW))
    later = NOW + 90 * MIN
    store.record(host_update(report(later), later))
    [snapshot] = store.scan(history=True)
    assert len(snapshot.history) == 2
    assert [p.time_ms for p in recent_history(snapshot.history, later)] == [ms(later)]


def test_the_ring_is_read_only_when_asked_for():
    store = InMemoryHostStore()
    store.record(host_update(report(NOW), NOW))
    assert store.scan()[0].history == ()
    assert len(store.scan(history=True)[0].history) == 1
