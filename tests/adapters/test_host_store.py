"""The HostStore contract, held by the in-memory fake and by DynamoDB (moto): what a post
records is what the scan reads, and every write that acts on a read is conditional on it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalicelib.core.heartbeats import HostSnapshot
from chalicelib.core.hosts import (
    CATALOG_KEEP,
    CATALOG_MIN_INTERVAL,
    CATALOG_REFRESH,
    CATALOG_SHAPES,
    HistoryPoint,
    HostState,
    HostUpdate,
    SeriesEntry,
    SeriesLatest,
    ServiceLatest,
    host_update,
)
from chalicelib.core.instants import instant_of_ms, ms_of_instant
from chalicelib.core.models import Event, EventStatus, HeartbeatState, HostReport, Point
from chalicelib.core.rules import parse_rules

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
ms = ms_of_instant


def update(**overrides) -> HostUpdate:
    base = {
        "host": "web-1",
        "seen_at": NOW,
        "state": HostState.UP,
        "interval_s": 60,
        "tags": {"role": "web"},
        "agent_name": "fleetpulse-agent",
        "agent_version": "0.1.0",
    }
    base.update(overrides)
    return HostUpdate(**base)


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


def hosts(store, **kwargs) -> dict[str, HostSnapshot]:
    return {h.host: h for h in store.scan(**kwargs)}


def test_the_first_post_creates_the_host_and_later_posts_update_it(stores):
    store = stores.hosts
    store.record(
        update(
            series={"cpu|cpu=total": SeriesLatest("cpu", {"cpu": "total"}, 1000, {"user": 3.25})},
            services={"backup": ServiceLatest("critical", 1000, 90_000, "disk full", 97.5)},
        )
    )
    store.record(
        update(
            seen_at=NOW + timedelta(minutes=1),
            interval_s=None,
            tags={},
            agent_name=None,
            series={"mem": SeriesLatest("mem", {}, 2000, {"used_percent": 41, "up": True})},
            services={"backup": ServiceLatest("ok", 2000, None, "", None)},
        )
    )
    assert hosts(store) == {
        "web-1": HostSnapshot(
            host="web-1",
            state=HostState.UP,
            last_seen_at=NOW + timedelta(minutes=1),
            first_seen_at=NOW,
            interval=timedelta(seconds=60),  # a post that does not say keeps what was said
            tags={"role": "web"},
            agent_name="fleetpulse-agent",
            agent_version="0.1.0",
            # The watched series are replaced by each post (cpu's value is long stale).
            series={"mem": SeriesLatest("mem", {}, 2000, {"used_percent": 41.0, "up": True})},
            services={"backup": ServiceLatest("ok", 2000, None, "", None)},
        )
    }


def test_one_host_is_read_by_its_key_as_the_scan_reads_it(stores):
    store = stores.hosts
    store.record(update(host="db-1"))
    store.record(
        update(series={"mem": SeriesLatest("mem", {}, 2000, {"used_percent": 41, "up": True})})
    )
    assert store.snapshot("web-1") == hosts(store)["web-1"]
    assert store.snapshot("db-1") == hosts(store)["db-1"]
    assert store.snapshot("web-2") is None


def test_a_shutdown_retires_the_host_and_its_next_post_brings_it_back(stores):
    store = stores.hosts
    store.record(host_update(report(NOW), NOW))
    store.record(host_update(HostReport("web-1", state=HeartbeatState.SHUTDOWN), NOW))
    retired = hosts(store)["web-1"]
    assert (retired.state, retired.retired_at) == (HostState.RETIRED, NOW)
    later = NOW + timedelta(hours=1)
    store.record(host_update(report(later), later))
    back = hosts(store)["web-1"]
    assert (back.state, back.retired_at, back.first_seen_at) == (HostState.UP, None, NOW)


def test_numbers_dynamodb_cannot_hold_are_left_out(stores):
    store = stores.hosts
    store.record(
        update(
            series={
                "m": SeriesLatest("m", {}, 1, {"ok": 1.5, "huge": 1e200, "tiny": 1e-200}),
                "gone": SeriesLatest("gone", {}, 1, {"huge": float("inf")}),
            },
            services={"svc": ServiceLatest("ok", 1, None, "", 1e200)},
        )
    )
    [web] = store.scan()
    assert web.series == {"m": SeriesLatest("m", {}, 1, {"ok": 1.5, "tiny": 0.0})}
    assert web.services == {"svc": ServiceLatest("ok", 1, None, "", None)}


def test_the_history_ring_is_read_only_when_asked_for(stores):
    store = stores.hosts
    t = ms(NOW) + 17 * 60_000
    store.record(update(history=HistoryPoint(t, 12.5, 40.0)))
    store.record(update(history=HistoryPoint(t + 5 * 60_000, None, 41.0)))
    store.record(update(history=HistoryPoint(t + 60 * 60_000, 7.0, 1e200)))  # h#3 again
    [plain] = store.scan()
    assert plain.history == ()
    [snapshot] = store.scan(history=True)
    assert sorted(snapshot.history, key=lambda p: p.time_ms) == [
        HistoryPoint(t + 5 * 60_000, None, 41.0),
        HistoryPoint(t + 60 * 60_000, 7.0, None),
    ]


def test_a_scan_for_some_fields_gives_at_least_those(stores):
    store = stores.hosts
    store.record(host_update(report(NOW), NOW))
    [web] = store.scan({"disk": frozenset({"used_percent", "absent"})})
    assert web.series["disk|mount=/"].fields["used_percent"] == 91.5
    assert "absent" not in web.series["disk|mount=/"].fields
    assert web.series["system"].time_ms == ms(NOW)  # every series keeps its time, for staleness


def test_mark_down_only_if_nothing_was_posted_since_the_read(stores):
    store = stores.hosts
    store.record(host_update(report(NOW), NOW))
    assert not store.mark_down("web-1", NOW - timedelta(seconds=1))  # a newer post landed
    assert hosts(store)["web-1"].state is HostState.UP
    assert store.mark_down("web-1", NOW)
    assert hosts(store)["web-1"].state is HostState.DOWN
    assert not store.mark_down("web-1", NOW)  # already down: nothing to do
    assert not store.mark_down("nobody", NOW)
    assert set(hosts(store)) == {"web-1"}  # a failed write creates nothing


def float_unfriendly_instant() -> datetime:
    """A post time whose epoch ms do not survive a float round trip through datetime
    (some do not, after 2038)."""
    n = 2**31 * 1000
    while int(instant_of_ms(n).timestamp() * 1000) == n:
        n += 1
    seen = instant_of_ms(n) + timedelta(microseconds=500)
    assert ms(seen) == n  # what the collector stores
    return seen


def test_mark_down_and_forget_send_back_exactly_the_time_they_read(stores):
    store = stores.hosts
    seen = float_unfriendly_instant()
    store.record(host_update(report(seen), seen))
    store.record(host_update(HostReport("db-1", state=HeartbeatState.SHUTDOWN), seen))
    read = {h.host: h.last_seen_at for h in store.scan()}
    assert store.mark_down("web-1", read["web-1"])
    assert store.forget("db-1", read["db-1"])


def test_pause_resume_and_unknown_hosts(stores):
    store = stores.hosts
    store.record(host_update(report(NOW), NOW))
    assert store.pause("web-1")
    assert hosts(store)["web-1"].state is HostState.PAUSED
    assert store.resume("web-1")
    assert hosts(store)["web-1"].state is HostState.UP
    assert store.resume("web-1")  # not paused: nothing to undo, but the host exists
    assert not store.pause("nobody")
    assert not store.resume("nobody")
    assert set(hosts(store)) == {"web-1"}  # a failed pause creates nothing


def test_forget_only_a_retired_host_as_it_was_read(stores):
    store = stores.hosts
    store.record(host_update(HostReport("web-1", state=HeartbeatState.SHUTDOWN), NOW))
    assert not store.forget("web-1", NOW - timedelta(seconds=1))
    assert store.forget("web-1", NOW)
    assert store.scan() == []
    assert not store.forget("web-1", NOW)
    store.record(host_update(report(NOW), NOW))
    assert not store.forget("web-1", NOW)  # up: kept
    assert set(hosts(store)) == {"web-1"}


def test_prune_removes_stale_services_unless_refreshed_meanwhile(stores):
    store = stores.hosts
    old = NOW - timedelta(days=8)
    store.record(host_update(report(old), old))
    store.record(host_update(report(NOW, points=[], events=[]), NOW))
    t_old = ms(old)
    assert not store.prune("web-1", {"backup": t_old - 1})  # not what was read
    assert set(hosts(store)["web-1"].services) == {"backup"}
    assert store.prune("web-1", {"backup": t_old})
    web = hosts(store)["web-1"]
    assert (web.series, web.services, web.last_seen_at) == ({}, {}, NOW)
    assert not store.prune("nobody", {"backup": t_old})


WATCH = parse_rules(
    {
        "rules": [
            {
                "name": "disk",
                "measurement": "disk",
                "field": "used_percent",
                "op": ">",
                "warning": 85,
            },
            {"name": "load", "measurement": "system", "field": "load5", "op": ">", "warning": 8},
        ]
    }
).by_measurement


def test_only_watched_series_are_kept_and_a_later_post_replaces_them(stores):
    store = stores.hosts
    store.record(host_update(report(NOW), NOW, watch=WATCH))
    web = hosts(store)["web-1"]
    assert web.series == {
        "disk|mount=/": SeriesLatest("disk", {"mount": "/"}, ms(NOW), {"used_percent": 91.5})
    }
    assert web.series_count == 2
    later = NOW + timedelta(minutes=1)
    fine = [Point("disk", ms(later), {"mount": "/"}, {"used_percent": 50.0})]
    store.record(host_update(report(later, points=fine), later, watch=WATCH))
    assert hosts(store)["web-1"].series == {}
    assert store.snapshot("web-1").series_count == 1


def test_a_watched_series_a_post_left_out_is_kept_while_fresh(stores):
    """A sender that splits its values over posts (collectd) keeps its breaching series."""
    store = stores.hosts
    store.record(host_update(report(NOW), NOW, watch=WATCH))
    later = NOW + timedelta(minutes=1)
    busy = [Point("system", ms(later), {}, {"load5": 9, "n_cpus": 2})]
    store.record(host_update(report(later, points=busy), later, watch=WATCH))
    assert set(hosts(store)["web-1"].series) == {"disk|mount=/", "system"}
    stale = NOW + timedelta(minutes=11)
    busy = [Point("system", ms(stale), {}, {"load5": 9, "n_cpus": 2})]
    store.record(host_update(report(stale, points=busy), stale, watch=WATCH))
    assert set(hosts(store)["web-1"].series) == {"system"}


def test_the_catalog_merges_what_posts_carried_and_forgets_what_stopped(stores):
    store = stores.hosts
    assert store.catalog("web-1") == []
    store.record(host_update(report(NOW), NOW, watch=WATCH))
    assert store.catalog("web-1") == [
        SeriesEntry("disk", {"mount": "/"}, ("used_percent",)),
        SeriesEntry("system", {}, ("load5", "n_cpus")),
    ]
    # Another shape (a sender that splits its posts, or shards a scrape): merged in.
    later = NOW + timedelta(minutes=1)
    mem = [Point("mem", ms(later), {}, {"used_percent": 40.0})]
    store.record(host_update(report(later, points=mem), later, watch=WATCH))
    assert [e.measurement for e in store.catalog("web-1")] == ["disk", "mem", "system"]

    def shape(i: int, at: datetime) -> None:
        points = [Point("m", ms(at), {"i": str(i)}, {"v": 1.0})]
        store.record(host_update(report(at, points=points), at, watch=WATCH))

    # Once CATALOG_SHAPES shapes are known, a new one waits for CATALOG_MIN_INTERVAL.
    for i in range(CATALOG_SHAPES - 2):
        shape(i, later + (i + 1) * timedelta(minutes=1))
    full = later + (CATALOG_SHAPES - 2) * timedelta(minutes=1)
    shape(100, full + timedelta(minutes=1))
    assert "100" not in [e.tags.get("i") for e in store.catalog("web-1")]
    shape(100, full + CATALOG_MIN_INTERVAL)
    assert "100" in [e.tags.get("i") for e in store.catalog("web-1")]
    # A known shape refreshes its series every CATALOG_REFRESH; what no post wrote for
    # CATALOG_KEEP goes with the next write.
    at = full + CATALOG_MIN_INTERVAL
    while at < NOW + CATALOG_KEEP + CATALOG_REFRESH:
        at += timedelta(hours=1)
        shape(100, at)
    assert [e.tags for e in store.catalog("web-1")] == [{"i": "100"}]
