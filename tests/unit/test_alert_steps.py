"""The alert path as data: evaluate returns observations and ordered steps; the service applies them."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from chalicelib.core.alert_message import AlertMessage, Severity
from chalicelib.core.alerts import Confirm, Publish, Write
from tests.support.alerting import DISK_RULE, T0, Fleet, rules

ALERT = "web-1/disk-full/mount=/"
MIN = timedelta(minutes=1)


def fleet_owing_a_resolved_notice() -> Fleet:
    """Fired and was told; cleared, but the resolved notice failed to publish."""
    fleet = Fleet(rules({**DISK_RULE, "for": "0s"}))
    fleet.post("web-1", T0, disk=97)
    fleet.evaluate(T0)
    fleet.publisher.fail = 1
    fleet.post("web-1", T0 + MIN, disk=50)
    fleet.evaluate(T0 + MIN)
    assert fleet.statuses(ALERT) == ["firing"]
    return fleet


def test_a_resolved_notice_then_a_new_episode_is_one_ordered_list_of_steps():
    fleet = fleet_owing_a_resolved_notice()
    at = T0 + 2 * MIN
    fleet.post("web-1", at, disk=97)
    evaluation, report = fleet.service.plan(at)
    [change] = evaluation.alerts
    assert change.alert_id == ALERT
    assert [type(s) for s in change.steps] == [Write, Publish, Confirm, Write, Publish, Confirm]
    w1, p1, c1, w2, p2, c2 = change.steps
    assert isinstance(p1, Publish)
    assert isinstance(p2, Publish)
    assert (p1.message["status"], p2.message["status"]) == ("resolved", "firing")
    assert p1.message["dedup_key"] != p2.message["dedup_key"]
    # Each compare-and-swap expects the version the step before it wrote.
    assert isinstance(w1, Write)
    assert isinstance(c1, Confirm)
    assert isinstance(w2, Write)
    assert isinstance(c2, Confirm)
    assert w1.after is not None
    assert (c1.sent, w2.before, c2.sent) == (w1.after, c1.after, w2.after)
    assert w2.expected_version == c1.after.version == w1.after.version + 1
    # Nothing is written by planning; applying sends both, in order.
    assert fleet.statuses(ALERT) == ["firing"]
    report = fleet.service.apply(evaluation, report)
    assert fleet.statuses(ALERT) == ["firing", "resolved", "firing"]
    assert report.notifications == 2
    assert fleet.alerts.items[ALERT] == c2.after


def test_evaluate_returns_what_it_observed_and_changes_none_of_its_inputs():
    fleet = Fleet(rules({**DISK_RULE, "for": "0s"}))
    fleet.post("web-1", T0, disk=97)
    fleet.post("db-1", T0, disk=10)
    fleet.evaluate(T0)
    before = dict(fleet.alerts.items)
    at = T0 + MIN
    fleet.post("web-1", at, disk=99)
    first, _ = fleet.service.plan(at)
    again, _ = fleet.service.plan(at)
    assert first.alerts == again.alerts  # same input, same output
    assert fleet.alerts.items == before
    seen = first.observed[ALERT]
    assert (seen.severity, seen.value) == (Severity.CRITICAL, 99.0)
    assert "db-1/disk-full/mount=/" not in first.observed  # nothing breached, no alert
    assert first.frozen == frozenset()


def test_a_silent_host_s_alerts_are_reported_frozen():
    fleet = Fleet(rules({**DISK_RULE, "for": "0s"}))
    fleet.post("web-1", T0, disk=97)
    fleet.evaluate(T0)
    evaluation, _ = fleet.service.plan(T0 + 2 * MIN)  # late: past its 60 s interval
    assert ALERT in evaluation.frozen
    assert ALERT not in evaluation.observed


class ConfirmingElsewhere:
    """A publisher during whose publish another evaluator confirms the same notice."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.sent: list[AlertMessage] = []

    def publish(self, message: AlertMessage) -> None:
        self.sent.append(message)
        record = self.fleet.alerts.items[message["alert_id"]]
        self.fleet.alerts.items[record.alert_id] = replace(
            record, outbox=None, version=record.version + 1
        )


def test_losing_the_confirm_race_ends_the_alert_s_steps_there():
    fleet = fleet_owing_a_resolved_notice()
    at = T0 + 2 * MIN
    fleet.post("web-1", at, disk=97)
    racing = ConfirmingElsewhere(fleet)
    service = fleet.evaluator()
    service._publisher = lambda: racing
    report = service.evaluate(at)
    # The resolved notice went out; the confirm lost, so the new episode was not
    # started from a record this evaluator no longer holds: the next run does it.
    assert [m["status"] for m in racing.sent] == ["resolved"]
    assert (report.notifications, report.write_failures) == (1, 0)
    assert fleet.state(ALERT) == "resolved"
