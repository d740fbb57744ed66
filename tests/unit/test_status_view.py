"""The status page's view: order, ages, silence windows; pure, time passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalicelib.core.alert_message import AlertKind, Severity
from chalicelib.core.alerts import AlertRecord, AlertState
from chalicelib.core.heartbeats import HostSnapshot, HostStatus
from chalicelib.core.hosts import HistoryPoint, HostState
from chalicelib.core.silences import SilenceState, parse_silence
from chalicelib.core.status import ago, clock_text, span, status_view

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # a Sunday
MIN = timedelta(minutes=1)


def snapshot(host, last_seen, state=HostState.UP, history=()):
    return HostSnapshot(host, state, last_seen, NOW - 60 * MIN, history=tuple(history))


def alert(alert_id, host, state, severity, since):
    return AlertRecord(
        alert_id=alert_id,
        kind=AlertKind.THRESHOLD,
        host=host,
        rule="disk-full",
        state=state,
        severity=severity,
        summary=f"disk on {host}",
        active_at=since - 2 * MIN,
        fired_at=since if state is AlertState.FIRING else None,
    )


def test_hosts_that_need_eyes_come_first_and_only_the_last_hour_is_drawn():
    ms = int(NOW.timestamp() * 1000)
    old = HistoryPoint(ms - 61 * 60_000, 50.0, 50.0)
    recent = [HistoryPoint(ms - k * 60_000, 10.0 + k, 20.0) for k in (3, 1, 2)]
    view = status_view(
        [
            snapshot("a-up", NOW - 10 * timedelta(seconds=1), history=[old, *recent]),
            snapshot("b-down", NOW - 10 * MIN),
            snapshot("c-late", NOW - 90 * timedelta(seconds=1)),
            snapshot("d-retired", NOW - MIN, HostState.RETIRED),
        ],
        lambda h: 2 * MIN,
        [],
        [],
        NOW,
    )
    assert [(h.host, h.status) for h in view.hosts] == [
        ("b-down", HostStatus.DOWN),
        ("c-late", HostStatus.LATE),
        ("a-up", HostStatus.UP),
        ("d-retired", HostStatus.RETIRED),
    ]
    assert [p.cpu for p in view.hosts[2].history] == [13.0, 12.0, 11.0]
    assert view.host_counts()[HostStatus.DOWN] == 1


def test_alerts_firing_first_worst_first_oldest_first_and_silences_are_marked():
    silence = parse_silence(
        {"matchers": {"host": "db-*"}, "duration": "1h"}, silence_id="s1", now=NOW - MIN
    )
    records = [
        alert("p", "web-1", AlertState.PENDING, Severity.CRITICAL, NOW - MIN),
        alert("w", "web-2", AlertState.FIRING, Severity.WARNING, NOW - 30 * MIN),
        alert("c2", "db-1", AlertState.FIRING, Severity.CRITICAL, NOW - 5 * MIN),
        alert("c1", "web-3", AlertState.FIRING, Severity.CRITICAL, NOW - 20 * MIN),
        alert("r", "web-4", AlertState.RESOLVED, Severity.CRITICAL, NOW - 50 * MIN),
    ]
    view = status_view([], lambda h: MIN, records, [silence], NOW)
    assert [(a.alert_id, a.silenced) for a in view.alerts] == [
        ("c1", False),
        ("c2", True),
        ("w", False),
        ("p", False),
    ]
    assert view.alerts[-1].since == NOW - 3 * MIN  # pending: since the condition began
    assert view.alert_counts() == {AlertState.FIRING: 3, AlertState.PENDING: 1}


def test_silences_say_when_they_end_or_next_start_and_expired_ones_are_gone():
    one_shot = parse_silence(
        {"matchers": {"host": "db-1"}, "duration": "2h"}, silence_id="a", now=NOW - MIN
    )
    weekly = parse_silence(
        {
            "matchers": {"role": "batch"},
            "schedule": {"days": ["sun"], "start": "11:00", "end": "13:00"},
        },
        silence_id="b",
        now=NOW - MIN,
    )
    later = parse_silence(
        {
            "matchers": {"role": "db"},
            "schedule": {"days": ["sat"], "start": "02:00", "end": "04:00"},
        },
        silence_id="c",
        now=NOW - MIN,
    )
    gone = parse_silence(
        {"matchers": {"host": "x"}, "duration": "1m"}, silence_id="d", now=NOW - 2 * MIN
    )
    view = status_view([], lambda h: MIN, [], [later, gone, weekly, one_shot], NOW)
    rows = {r.silence_id: r for r in view.silences}
    assert set(rows) == {"a", "b", "c"}
    assert rows["a"].state is SilenceState.ACTIVE
    assert rows["a"].ends_at == NOW + 119 * MIN
    assert rows["b"].ends_at == NOW + 60 * MIN  # the window's end
    assert rows["c"].state is SilenceState.PENDING
    assert rows["c"].starts_at == datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
    assert rows["c"].schedule == "sat 02:00-04:00 UTC"
    assert [r.silence_id for r in view.silences][-1] == "c"  # active ones first


def test_ages_read_like_a_person_says_them():
    assert ago(NOW - timedelta(seconds=12), NOW) == "12 s ago"
    assert ago(NOW - 5 * MIN, NOW) == "5 min ago"
    assert ago(NOW - 200 * MIN, NOW) == "3 h 20 min ago"
    assert ago(NOW - 120 * MIN, NOW) == "2 h ago"
    assert ago(NOW - timedelta(days=4), NOW) == "4 d ago"
    assert ago(NOW + 5 * MIN, NOW) == "in 5 min"
    assert span(timedelta(0)) == "0 s"
    assert clock_text(NOW + timedelta(seconds=9), NOW) == "12:00:09 UTC"
    assert clock_text(NOW - timedelta(days=1), NOW) == "Nov 21 12:00 UTC"
