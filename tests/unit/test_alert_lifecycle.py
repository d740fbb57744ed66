"""Threshold alerts through their lifecycle, with the time passed in."""

from __future__ import annotations

from datetime import timedelta

from chalicelib.core.alert_message import parse_alert_message
from chalicelib.core.models import ALERT_MEASUREMENT
from tests.support.alerting import DISK_RULE, T0, Fleet, rules

ALERT = "web-1/disk-full/mount=/"
MIN = timedelta(minutes=1)


def run(fleet: Fleet, values, start=T0, host="web-1"):
    """Post `values` one a minute, evaluating after each post."""
    at = start
    for value in values:
        fleet.post(host, at, disk=value)
        fleet.evaluate(at)
        at += MIN
    return at


def test_pending_until_for_has_held_then_firing_once():
    fleet = Fleet(status_url="https://status.example")
    run(fleet, [90] * 5)
    assert fleet.state(ALERT) == "pending"
    assert fleet.messages == []
    run(fleet, [90, 90, 90], start=T0 + 5 * MIN)
    assert fleet.state(ALERT) == "firing"
    [message] = fleet.messages
    assert parse_alert_message(message) == message
    assert message["status"] == "firing"
    assert message["severity"] == "warning"
    assert message["kind"] == "threshold"
    assert message["summary"] == "Disk / at 90% on web-1"
    assert (message["value"], message["threshold"]) == (90.0, 85.0)
    assert message["labels"] == {"mount": "/"}
    assert message["started_at"] == T0.isoformat()
    assert message["dedup_key"] == f"{ALERT}/{int(T0.timestamp())}"
    assert message["links"] == [
        {"href": "https://runbooks.example/disk", "text": "Runbook"},
        {"href": "https://status.example", "text": "Status page"},
        {"href": "https://status.example/hosts/web-1", "text": "Host history"},
    ]


def test_a_breach_shorter_than_for_never_notifies_and_leaves_nothing():
    fleet = Fleet()
    run(fleet, [90, 90, 90, 50])
    assert fleet.messages == []
    assert fleet.alerts.items == {}


def test_resolves_once_with_the_same_dedup_key():
    fleet = Fleet()
    run(fleet, [97] * 6 + [50, 50])
    firing, resolved = fleet.messages
    assert (firing["status"], resolved["status"]) == ("firing", "resolved")
    assert firing["severity"] == "critical"
    assert resolved["dedup_key"] == firing["dedup_key"]
    assert resolved["resolved_at"] == (T0 + 6 * MIN).isoformat()
    # A series that breaches nothing is not in the host item: the resolved notice
    # says what was last seen breaching (docs/ALERTING.md, Missing data).
    assert resolved["summary"] == "Disk / at 97% on web-1"


def test_severity_moves_within_one_alert_and_escalation_notifies_once():
    fleet = Fleet()
    run(fleet, [90] * 6 + [97, 90, 97, 90, 97])
    statuses = [(m["status"], m["severity"]) for m in fleet.messages]
    assert statuses == [("firing", "warning"), ("firing", "critical")]
    assert len({m["dedup_key"] for m in fleet.messages}) == 1
    assert fleet.alerts.items[ALERT].severity.value == "critical"


def test_keep_firing_for_rides_out_a_flap():
    fleet = Fleet(rules({**DISK_RULE, "for": "0s", "keep_firing_for": "3m"}))
    run(fleet, [90, 50, 90, 50, 50, 90])
    assert fleet.statuses(ALERT) == ["firing"]
    run(fleet, [50, 50, 50, 50], start=T0 + 6 * MIN)
    assert fleet.statuses(ALERT) == ["firing", "resolved"]


def test_recovery_level_holds_the_alert_until_crossed():
    fleet = Fleet(rules({**DISK_RULE, "for": "0s", "recovery": 80}))
    run(fleet, [90, 84, 83, 82])
    assert fleet.statuses(ALERT) == ["firing"]
    run(fleet, [79], start=T0 + 4 * MIN)
    assert fleet.statuses(ALERT) == ["firing", "resolved"]


def test_reminder_every_repeat_interval_with_the_same_dedup_key():
    fleet = Fleet(rules({**DISK_RULE, "for": "0s", "repeat_interval": "30m"}))
    run(fleet, [90] * 61)
    messages = fleet.messages
    assert [m["status"] for m in messages] == ["firing"] * 3  # at 0, 30 and 60 minutes
    assert len({m["dedup_key"] for m in messages}) == 1


def test_a_new_episode_gets_a_new_dedup_key():
    fleet = Fleet(rules({**DISK_RULE, "for": "0s"}))
    run(fleet, [90, 50, 90, 50])
    first, _, second, _ = fleet.messages
    assert first["dedup_key"] != second["dedup_key"]
    assert [m["status"] for m in fleet.messages] == ["firing", "resolved"] * 2


def test_a_series_that_stops_while_the_host_posts_resolves():
    fleet = Fleet(rules({**DISK_RULE, "for": "0s"}))
    run(fleet, [97])
    at = T0
    for _ in range(8):  # the host keeps posting, but no disk series
        at += MIN
        fleet.post("web-1", at)
        fleet.evaluate(at)
    assert fleet.statuses(ALERT) == ["firing", "resolved"]


def test_a_silent_host_keeps_its_threshold_alerts_as_they_are_and_quiet():
    fleet = Fleet(rules({**DISK_RULE, "for": "0s", "repeat_interval": "30m"}))
    run(fleet, [97])
    for minutes in range(1, 120):
        fleet.evaluate(T0 + minutes * MIN)
    assert fleet.state(ALERT) == "firing"
    assert fleet.statuses(ALERT) == ["firing"]  # no reminders: the heartbeat alert speaks
    assert fleet.statuses("web-1/heartbeat") == ["firing"]
    run(fleet, [97], start=T0 + 120 * MIN)  # back, still full: reminders resume
    assert fleet.statuses(ALERT) == ["firing", "firing"]
    assert fleet.statuses("web-1/heartbeat") == ["firing", "resolved"]


def test_a_storm_of_changes_stops_at_the_write_budget_and_the_next_run_finishes():
    fleet = Fleet(rules({**DISK_RULE, "for": "0s"}))
    for i in range(5):
        fleet.post(f"web-{i}", T0, disk=97)
    evaluation, report = fleet.service.plan(T0)
    report = fleet.service.apply(evaluation, report, deadline=0.0)
    assert (report.deferred, fleet.messages) == (5, [])
    fleet.evaluate(T0 + timedelta(seconds=1))
    assert len(fleet.messages) == 5


def test_removing_a_rule_resolves_its_alerts():
    fleet = Fleet(rules({**DISK_RULE, "for": "0s"}))
    at = run(fleet, [97])
    fleet.set_rules(rules())
    fleet.post("web-1", at, disk=97)
    fleet.evaluate(at)
    assert fleet.statuses(ALERT) == ["firing", "resolved"]


def test_a_resolved_record_is_dropped_after_the_retention():
    fleet = Fleet(rules({**DISK_RULE, "for": "0s"}), resolved_retention=timedelta(minutes=10))
    at = run(fleet, [97, 50])
    assert fleet.state(ALERT) == "resolved"
    fleet.post("web-1", at + 10 * MIN, disk=50)
    fleet.evaluate(at + 10 * MIN)
    assert fleet.state(ALERT) == "inactive"


def test_publish_failure_keeps_the_notification_and_the_next_run_sends_it_once():
    fleet = Fleet(rules({**DISK_RULE, "for": "0s"}))
    fleet.publisher.fail = 1
    fleet.post("web-1", T0, disk=97)
    report = fleet.evaluate(T0)
    assert (report.transitions, report.publish_failures) == (1, 1)
    assert fleet.messages == []
    assert fleet.alerts.items[ALERT].outbox is not None
    # Within the lease nothing is re-sent (another evaluator may be publishing).
    assert fleet.evaluate(T0 + timedelta(seconds=10)).notifications == 0
    report = fleet.evaluate(T0 + MIN)
    assert (report.transitions, report.notifications) == (0, 1)
    assert fleet.statuses(ALERT) == ["firing"]
    record = fleet.alerts.items[ALERT]
    assert record.outbox is None
    assert record.notified.value == "firing"
    assert fleet.evaluate(T0 + 2 * MIN).notifications == 0


def test_a_firing_never_sent_that_clears_before_the_retry_closes_quietly():
    fleet = Fleet(rules({**DISK_RULE, "for": "0s"}))
    fleet.publisher.fail = 1
    fleet.post("web-1", T0, disk=97)
    fleet.evaluate(T0)
    fleet.post("web-1", T0 + MIN, disk=50)
    fleet.evaluate(T0 + MIN)
    assert fleet.messages == []
    assert fleet.state(ALERT) == "resolved"


def test_a_resolved_notice_not_yet_delivered_goes_out_before_a_new_episode():
    fleet = Fleet(rules({**DISK_RULE, "for": "0s"}))
    run(fleet, [97])
    fleet.publisher.fail = 1
    run(fleet, [50], start=T0 + MIN)  # the resolved notice fails
    run(fleet, [97, 97], start=T0 + 2 * MIN)
    assert fleet.statuses(ALERT) == ["firing", "resolved", "firing"]
    first, resolved, second = fleet.messages
    assert resolved["dedup_key"] == first["dedup_key"] != second["dedup_key"]


def test_two_interleaved_evaluations_make_one_transition_and_one_notification():
    fleet = Fleet(rules({**DISK_RULE, "for": "0s"}))
    other = fleet.evaluator()
    fleet.post("web-1", T0, disk=97)
    plan_a = fleet.service.plan(T0)
    plan_b = other.plan(T0)
    report_a = fleet.service.apply(*plan_a)
    report_b = other.apply(*plan_b)
    assert (report_a.transitions, report_a.notifications) == (1, 1)
    assert (report_b.transitions, report_b.notifications, report_b.lost_races) == (0, 0, 1)
    assert fleet.statuses(ALERT) == ["firing"]


def test_each_transition_is_written_as_an_alert_point():
    fleet = Fleet()
    run(fleet, [90] * 6 + [50])
    points = [
        ({d["Name"]: d["Value"] for d in r["Dimensions"]}, r)
        for r in fleet.metrics.records.values()
        if r["MeasureName"] == ALERT_MEASUREMENT
    ]
    steps = sorted(
        (int(r["Time"]), {m["Name"]: m["Value"] for m in r["MeasureValues"]}["status"])
        for _, r in points
    )
    assert [s for _, s in steps] == ["pending", "firing", "resolved"]
    dims = points[0][0]
    assert dims["host"] == "web-1"
    assert dims["alert_id"] == ALERT
    assert dims["rule"] == "disk-full"
