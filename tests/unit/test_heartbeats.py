"""Host and service heartbeats, retirement, pausing and the ingest-outage guard."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.core.heartbeats import HostSnapshot, HostStatus, host_status
from chalicelib.core.hosts import HostState
from tests.support.alerting import T0, Fleet, event, rules

S = timedelta(seconds=1)
MIN = timedelta(minutes=1)
HB = "web-1/heartbeat"


def status(fleet: Fleet, host: str, at) -> HostStatus:
    [snapshot] = [h for h in fleet.hosts.scan() if h.host == host]
    return host_status(snapshot, at, fleet.policy.grace_for(snapshot))


def test_a_host_is_late_after_its_period_and_down_after_period_plus_grace():
    fleet = Fleet(default_grace=timedelta(minutes=2))
    fleet.post("web-1", T0 - MIN)
    fleet.post("web-1", T0)
    assert status(fleet, "web-1", T0 + 59 * S) is HostStatus.UP
    assert status(fleet, "web-1", T0 + 61 * S) is HostStatus.LATE
    fleet.evaluate(T0 + 61 * S)
    assert fleet.messages == []  # late is not an alert
    fleet.evaluate(T0 + 3 * MIN)
    assert fleet.messages == []  # exactly period + grace: not yet
    report = fleet.evaluate(T0 + 3 * MIN + S)
    assert (report.transitions, report.notifications, report.host_writes) == (1, 1, 1)
    [message] = fleet.messages
    assert message["kind"] == "heartbeat"
    assert message["severity"] == "critical"
    assert message["rule"] == "heartbeat"
    assert message["summary"] == "web-1 stopped reporting: silent for 3m1s (expected every 1m)"
    assert (message["value"], message["threshold"]) == (181.0, 180.0)
    assert fleet.hosts.items["web-1"]["state"] == "down"


def test_a_down_host_that_posts_again_is_up_and_its_alert_resolves():
    fleet = Fleet()
    fleet.post("web-1", T0)
    fleet.evaluate(T0 + 10 * MIN)
    fleet.post("web-1", T0 + 11 * MIN)
    assert fleet.hosts.items["web-1"]["state"] == "up"
    fleet.evaluate(T0 + 11 * MIN)
    assert fleet.statuses(HB) == ["firing", "resolved"]


def test_the_first_post_makes_a_host_known_and_new():
    fleet = Fleet()
    fleet.post("web-1", T0)
    assert status(fleet, "web-1", T0 + S) is HostStatus.NEW
    fleet.post("web-1", T0 + MIN)
    assert status(fleet, "web-1", T0 + MIN) is HostStatus.UP


@pytest.mark.parametrize(("interval", "grace"), [(1, "5s"), (86400, "1h")])
def test_any_interval_from_a_second_to_a_day(interval, grace):
    fleet = Fleet(rules(heartbeat={"grace": grace}))
    period = timedelta(seconds=interval)
    fleet.post("web-1", T0, interval=interval)
    fleet.evaluate(T0 + period)
    fleet.evaluate(T0 + period + fleet.policy.grace_for(fleet.hosts.scan()[0]))
    assert fleet.messages == []
    fleet.evaluate(T0 + period + fleet.policy.grace_for(fleet.hosts.scan()[0]) + S)
    assert fleet.statuses(HB) == ["firing"]


def test_grace_comes_from_the_host_tag_then_a_matching_override_then_the_file_then_settings():
    ruleset = rules(
        heartbeat={"grace": "5m", "overrides": [{"match": {"role": "batch"}, "grace": "30m"}]}
    )
    fleet = Fleet(ruleset, default_grace=timedelta(minutes=2))
    fleet.post("a", T0, tags={"role": "batch", "heartbeat_grace": "1h"})
    fleet.post("b", T0, tags={"role": "batch"})
    fleet.post("c", T0, tags={"role": "web"})
    fleet.post("d", T0, tags={"heartbeat_grace": "soon"})  # unreadable: ignored
    graces = {h.host: fleet.policy.grace_for(h) for h in fleet.hosts.scan()}
    assert graces == {
        "a": timedelta(hours=1),
        "b": timedelta(minutes=30),
        "c": timedelta(minutes=5),
        "d": timedelta(minutes=5),
    }
    plain = Fleet(default_grace=timedelta(minutes=2))
    plain.post("c", T0)
    assert plain.policy.grace_for(plain.hosts.scan()[0]) == timedelta(minutes=2)


def test_graceful_shutdown_retires_quietly_and_a_retired_host_is_forgotten_later():
    fleet = Fleet(retired_retention=timedelta(days=7))
    fleet.post("web-1", T0)
    fleet.post("web-1", T0 + MIN, shutdown=True)
    fleet.evaluate(T0 + timedelta(days=1))
    assert fleet.messages == []
    assert status(fleet, "web-1", T0 + timedelta(days=1)) is HostStatus.RETIRED
    fleet.evaluate(T0 + timedelta(days=7, minutes=2))
    assert "web-1" not in fleet.hosts.items


def test_a_retired_host_that_posts_again_is_up():
    fleet = Fleet()
    fleet.post("web-1", T0, shutdown=True)
    fleet.post("web-1", T0 + timedelta(hours=5))
    assert status(fleet, "web-1", T0 + timedelta(hours=5)) is HostStatus.UP
    assert "retired_at" not in fleet.hosts.items["web-1"]


def test_retiring_resolves_what_the_host_had_open():
    fleet = Fleet(
        rules({"name": "disk", "measurement": "disk", "field": "used_percent", "critical": 90})
    )
    fleet.post("web-1", T0, disk=97)
    fleet.evaluate(T0)
    fleet.post("web-1", T0 + MIN, shutdown=True)
    fleet.evaluate(T0 + MIN)
    assert fleet.statuses("web-1/disk/mount=/") == ["firing", "resolved"]


def test_a_paused_host_is_not_paged_and_the_next_post_resumes_it():
    fleet = Fleet()
    fleet.post("web-1", T0)
    fleet.service.set_paused("web-1", True)
    fleet.evaluate(T0 + timedelta(hours=2))
    assert fleet.messages == []
    assert status(fleet, "web-1", T0 + timedelta(hours=2)) is HostStatus.PAUSED
    fleet.post("web-1", T0 + timedelta(hours=3))
    assert status(fleet, "web-1", T0 + timedelta(hours=3)) is HostStatus.UP


def test_pausing_a_down_host_resolves_its_alert():
    fleet = Fleet()
    fleet.post("web-1", T0)
    fleet.evaluate(T0 + 10 * MIN)
    fleet.service.set_paused("web-1", True)
    fleet.evaluate(T0 + 11 * MIN)
    assert fleet.statuses(HB) == ["firing", "resolved"]
    fleet.service.set_paused("web-1", False)  # resumed while still silent: down again
    fleet.evaluate(T0 + 12 * MIN)
    assert fleet.statuses(HB) == ["firing", "resolved", "firing"]


def test_a_post_between_read_and_write_keeps_the_host_up_and_unpaged():
    fleet = Fleet()
    fleet.post("web-1", T0)
    plan = fleet.service.plan(T0 + 10 * MIN)
    fleet.post("web-1", T0 + 10 * MIN)  # lands after the read
    report = fleet.service.apply(*plan)
    assert report.transitions == 0
    assert fleet.messages == []
    assert fleet.hosts.items["web-1"]["state"] == "up"


def test_a_service_event_with_a_ttl_not_refreshed_alerts_for_that_host_and_service():
    fleet = Fleet()
    alert = "web-1/service/backup"
    fleet.post("web-1", T0, events=[event("backup", "ok", T0, ttl=timedelta(minutes=5))])
    for minutes in range(1, 6):
        fleet.post("web-1", T0 + minutes * MIN)
        fleet.evaluate(T0 + minutes * MIN)
    assert fleet.messages == []
    fleet.post("web-1", T0 + 6 * MIN)
    fleet.evaluate(T0 + 6 * MIN)
    [message] = fleet.messages
    assert (message["kind"], message["rule"], message["severity"]) == (
        "heartbeat",
        "service",
        "critical",
    )
    assert message["labels"] == {"service": "backup"}
    assert message["summary"] == "backup on web-1 stopped reporting (last event 6m ago)"
    fleet.post("web-1", T0 + 7 * MIN, events=[event("backup", "ok", T0 + 7 * MIN)])
    fleet.evaluate(T0 + 7 * MIN)
    assert fleet.statuses(alert) == ["firing", "resolved"]


def test_service_expiry_is_held_back_while_the_host_itself_is_silent():
    fleet = Fleet()
    fleet.post("web-1", T0, events=[event("backup", "ok", T0, ttl=timedelta(seconds=30))])
    fleet.evaluate(T0 + 10 * MIN)
    assert [m["alert_id"] for m in fleet.messages] == [HB]


def test_event_status_raises_and_ok_resolves_and_unknown_changes_nothing():
    fleet = Fleet()
    alert = "web-1/service/nginx"
    steps = [("warning", "5xx 3%"), ("critical", "5xx 12%"), ("unknown", ""), ("ok", "")]
    for i, (state, text) in enumerate(steps):
        at = T0 + i * MIN
        fleet.post("web-1", at, events=[event("nginx", state, at, description=text)])
        fleet.evaluate(at)
    assert [(m["status"], m["severity"], m["kind"]) for m in fleet.messages] == [
        ("firing", "warning", "event"),
        ("firing", "critical", "event"),
        ("resolved", "critical", "event"),
    ]
    assert fleet.messages[0]["summary"] == "nginx on web-1 is warning: 5xx 3%"
    assert fleet.state(alert) == "resolved"


def hosts_reporting(fleet: Fleet, names, at):
    for name in names:
        fleet.post(name, at)


def test_many_hosts_silent_at_once_page_once_as_an_ingest_outage():
    fleet = Fleet()
    names = [f"web-{i}" for i in range(10)]
    hosts_reporting(fleet, names, T0)
    for minutes in range(1, 4):
        hosts_reporting(fleet, names[:6], T0 + minutes * MIN)  # 4 of 10 stop
        fleet.evaluate(T0 + minutes * MIN)
    hosts_reporting(fleet, names[:6], T0 + 4 * MIN)
    report = fleet.evaluate(T0 + 4 * MIN)
    assert report.outage
    [message] = fleet.messages
    assert (message["host"], message["rule"], message["severity"]) == (
        "fleetpulse",
        "ingest-outage",
        "critical",
    )
    assert message["value"] == 0.4
    assert fleet.hosts.items["web-9"]["state"] == "up"  # not marked down one by one
    hosts_reporting(fleet, names, T0 + 5 * MIN)
    fleet.evaluate(T0 + 5 * MIN)
    assert fleet.statuses("fleetpulse/ingest-outage") == ["firing", "resolved"]
    assert len(fleet.messages) == 2


def test_hosts_dying_one_by_one_are_paged_one_by_one():
    fleet = Fleet()
    names = [f"web-{i}" for i in range(10)]
    for minutes in range(0, 30):
        alive = names[: 10 - minutes // 10]  # one host stops every ten minutes
        hosts_reporting(fleet, alive, T0 + minutes * MIN)
        fleet.evaluate(T0 + minutes * MIN)
    assert sorted(m["host"] for m in fleet.messages) == ["web-8", "web-9"]


def test_a_small_fleet_under_the_minimum_pages_per_host():
    fleet = Fleet(outage_min_hosts=3)
    hosts_reporting(fleet, ["a", "b", "c"], T0)
    hosts_reporting(fleet, ["c"], T0 + 2 * MIN)
    fleet.evaluate(T0 + 4 * MIN)
    assert sorted(m["host"] for m in fleet.messages) == ["a", "b"]


def test_the_host_item_watches_only_series_a_rule_acts_on_and_forgets_them_on_its_own():
    fleet = Fleet()
    fleet.post("web-1", T0, disk=90, mount="/old")
    assert set(fleet.hosts.items["web-1"]["w"]) == {"disk|mount=/old"}
    # A later post without it keeps it while it is fresh (a sender may split its values
    # over posts); a series that breaches nothing is never in the item.
    fleet.post("web-1", T0 + MIN, disk=50)
    assert set(fleet.hosts.items["web-1"]["w"]) == {"disk|mount=/old"}
    fleet.post("web-1", T0 + 11 * MIN, disk=50)
    assert "w" not in fleet.hosts.items["web-1"]
    assert fleet.hosts.items["web-1"]["series_n"] == 1
    report = fleet.evaluate(T0 + 11 * MIN)
    assert report.host_writes == 0  # nothing to prune: the posts replace what is watched


def test_host_status_is_derived_not_stored():
    snapshot = HostSnapshot("h", HostState.UP, T0, T0 - MIN, interval=timedelta(seconds=10))
    grace = timedelta(seconds=20)
    assert host_status(snapshot, T0 + 5 * S, grace) is HostStatus.UP
    assert host_status(snapshot, T0 + 11 * S, grace) is HostStatus.LATE
    assert host_status(snapshot, T0 + 31 * S, grace) is HostStatus.DOWN
