"""Silences and maintenance windows: validation, windows, and notifications across boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.core.errors import InvalidPayload
from chalicelib.core.silences import SilenceState, parse_silence
from tests.support.alerting import DISK_RULE, T0, Fleet, rules

MIN = timedelta(minutes=1)
ALERT = "web-1/disk-full/mount=/"


def iso(at: datetime) -> str:
    return at.isoformat()


def problems(body) -> dict[str, str]:
    with pytest.raises(InvalidPayload) as caught:
        parse_silence(body, silence_id="x", now=T0)
    return {p.path: p.message for p in caught.value.details}


def test_a_one_shot_silence_by_duration_or_end():
    s = parse_silence({"matchers": {"host": "web-*"}, "duration": "2h"}, silence_id="a", now=T0)
    assert (s.starts_at, s.ends_at) == (T0, T0 + timedelta(hours=2))
    assert s.active_at(T0)
    assert s.active_at(T0 + timedelta(minutes=119))
    assert not s.active_at(T0 + timedelta(hours=2))
    later = parse_silence(
        {
            "matchers": {"rule": "disk-*"},
            "starts_at": "2026-11-23T00:00:00Z",
            "ends_at": "2026-11-23T01:00:00+00:00",
        },
        silence_id="b",
        now=T0,
    )
    assert later.state_at(T0) is SilenceState.PENDING
    assert later.state_at(datetime(2026, 11, 23, 0, 30, tzinfo=UTC)) is SilenceState.ACTIVE
    assert later.state_at(datetime(2026, 11, 23, 1, 0, tzinfo=UTC)) is SilenceState.EXPIRED


def test_bad_silences_are_refused_with_each_path_named():
    assert problems({}) == {
        "matchers": 'is required, like {"host": "web-*"}',
        "ends_at": "a one-shot silence needs ends_at or duration",
    }
    assert "matchers" in problems({"matchers": {}, "duration": "1h"})
    assert problems({"matchers": {"host": 5.5j}, "duration": "1h"}) == {
        "matchers.host": "must be a non-empty glob pattern"
    }
    assert problems({"matchers": {"host": "*"}, "ends_at": "tomorrow"})["ends_at"].startswith(
        "must be an ISO-8601 time"
    )
    assert (
        "UTC offset"
        in problems({"matchers": {"host": "*"}, "ends_at": "2026-11-23T00:00:00"})["ends_at"]
    )
    assert problems({"matchers": {"host": "*"}, "ends_at": iso(T0 - MIN)}) == {
        "ends_at": "must be after starts_at"
    }
    assert problems({"matchers": {"host": "*"}, "duration": "1h", "until": 1}) == {
        "until": "unknown key (known: comment, created_by, duration, ends_at, matchers, schedule, starts_at)"
    }
    weekly = problems(
        {
            "matchers": {"host": "*"},
            "schedule": {
                "days": ["sunday", "funday"],
                "start": "25:00",
                "end": "04:00",
                "timezone": "Mars/Olympus",
            },
        }
    )
    assert weekly == {
        "schedule.days[1]": "unknown day 'funday' (use mon, tue, wed, thu, fri, sat, sun)",
        "schedule.start": "must be HH:MM (24 h), got '25:00'",
        "schedule.timezone": "unknown timezone 'Mars/Olympus'",
    }


def sunday_window(**schedule):
    body = {
        "matchers": {"host": "*"},
        "schedule": {"days": ["sun"], "start": "02:00", "end": "04:00", **schedule},
    }
    return parse_silence(body, silence_id="w", now=T0 - timedelta(days=7))


def test_a_weekly_window_every_sunday_two_to_four_utc():
    s = sunday_window()
    sunday = datetime(2026, 11, 22, tzinfo=UTC)
    assert not s.active_at(sunday + timedelta(hours=1, minutes=59))
    assert s.active_at(sunday + timedelta(hours=2))
    assert s.active_at(sunday + timedelta(hours=3, minutes=59))
    assert not s.active_at(sunday + timedelta(hours=4))
    assert not s.active_at(sunday + timedelta(days=1, hours=3))  # monday
    assert s.active_at(sunday + timedelta(days=7, hours=3))
    assert s.state_at(sunday + timedelta(hours=5)) is SilenceState.PENDING


def test_a_window_past_midnight_belongs_to_the_day_it_starts():
    s = sunday_window(start="23:00", end="01:00")
    sunday = datetime(2026, 11, 22, tzinfo=UTC)
    assert s.active_at(sunday + timedelta(hours=23, minutes=30))
    assert s.active_at(sunday + timedelta(days=1, minutes=30))  # monday 00:30
    assert not s.active_at(sunday + timedelta(minutes=30))  # sunday 00:30: saturday's window


def test_a_window_in_a_local_timezone_follows_daylight_saving():
    s = sunday_window(timezone="Europe/Paris")
    winter = datetime(2027, 1, 3, 1, 30, tzinfo=UTC)  # sunday 02:30 in Paris (UTC+1)
    summer = datetime(2027, 7, 4, 0, 30, tzinfo=UTC)  # sunday 02:30 in Paris (UTC+2)
    assert s.active_at(winter)
    assert s.active_at(summer)
    assert not s.active_at(datetime(2027, 7, 4, 2, 30, tzinfo=UTC))  # 04:30 local


def test_a_bounded_weekly_schedule_expires():
    body = {
        "matchers": {"host": "*"},
        "schedule": {"days": "*", "start": "02:00", "end": "03:00"},
        "ends_at": iso(T0 + timedelta(days=2)),
    }
    s = parse_silence(body, silence_id="w", now=T0)
    assert s.state_at(T0 + timedelta(hours=13)) is SilenceState.PENDING
    assert s.state_at(T0 + timedelta(days=1, hours=14, minutes=30)) is SilenceState.ACTIVE
    assert s.state_at(T0 + timedelta(days=1, hours=23)) is SilenceState.EXPIRED


def firing_fleet():
    return Fleet(rules({**DISK_RULE, "for": "0s"}))


def test_a_silenced_alert_keeps_its_state_and_is_notified_when_the_silence_ends():
    fleet = firing_fleet()
    fleet.silence(T0, matchers={"host": "web-*", "rule": "disk-full"}, duration="10m")
    for minutes in range(10):
        fleet.post("web-1", T0 + minutes * MIN, disk=97)
        fleet.evaluate(T0 + minutes * MIN)
    assert fleet.state(ALERT) == "firing"
    assert fleet.messages == []
    fleet.post("web-1", T0 + 10 * MIN, disk=97)
    fleet.evaluate(T0 + 10 * MIN)  # the silence ended at exactly this instant
    [message] = fleet.messages
    assert message["status"] == "firing"
    assert message["started_at"] == T0.isoformat()


def test_an_alert_that_cleared_under_a_silence_closes_without_a_word():
    fleet = firing_fleet()
    fleet.silence(T0, matchers={"severity": "critical"}, duration="10m")
    for minutes, value in enumerate([97, 97, 50, 50]):
        fleet.post("web-1", T0 + minutes * MIN, disk=value)
        fleet.evaluate(T0 + minutes * MIN)
    for minutes in range(10, 15):
        fleet.post("web-1", T0 + minutes * MIN, disk=50)
        fleet.evaluate(T0 + minutes * MIN)
    assert fleet.messages == []
    assert fleet.state(ALERT) == "resolved"


def test_an_alert_told_before_the_silence_still_gets_its_resolved_notice():
    fleet = firing_fleet()
    fleet.post("web-1", T0, disk=97)
    fleet.evaluate(T0)
    fleet.silence(T0 + MIN, matchers={"mount": "/"}, duration="1h")
    fleet.post("web-1", T0 + 2 * MIN, disk=50)
    fleet.evaluate(T0 + 2 * MIN)
    assert fleet.statuses(ALERT) == ["firing", "resolved"]


def test_no_reminders_under_a_silence_and_one_when_it_ends_if_overdue():
    fleet = Fleet(rules({**DISK_RULE, "for": "0s", "repeat_interval": "30m"}))
    fleet.post("web-1", T0, disk=97)
    fleet.evaluate(T0)
    fleet.silence(T0 + MIN, matchers={"host": "web-1"}, duration="1h")
    for minutes in range(1, 62):
        fleet.post("web-1", T0 + minutes * MIN, disk=97)
        fleet.evaluate(T0 + minutes * MIN)
    assert fleet.statuses(ALERT) == ["firing", "firing"]  # the first, then the overdue one at 61m


def test_a_silence_matching_nothing_changes_nothing():
    fleet = firing_fleet()
    fleet.silence(T0, matchers={"host": "db-*"}, duration="1h")
    fleet.post("web-1", T0, disk=97)
    fleet.evaluate(T0)
    assert fleet.statuses(ALERT) == ["firing"]


def test_a_negated_matcher():
    fleet = firing_fleet()
    fleet.silence(T0, matchers={"host": "!db-*"}, duration="1h")
    fleet.post("web-1", T0, disk=97)
    fleet.evaluate(T0)
    assert fleet.messages == []


def test_a_weekly_maintenance_window_holds_pages_back_until_it_closes():
    fleet = firing_fleet()
    sunday_2am = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
    fleet.silence(
        sunday_2am - timedelta(days=1),
        matchers={"host": "*"},
        schedule={"days": ["sun"], "start": "02:00", "end": "04:00"},
    )
    for minutes in range(0, 125, 5):
        at = sunday_2am + minutes * MIN
        fleet.post("web-1", at, disk=97)
        fleet.evaluate(at)
    [message] = fleet.messages
    assert message["status"] == "firing"
    assert message["started_at"] == sunday_2am.isoformat()
    assert fleet.alerts.items[ALERT].notified_at == sunday_2am + 120 * MIN
