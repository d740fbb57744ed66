"""Checks in the pure core: the schema, the schedule, results, and quorum deciding the alert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.adapters.checks_file import DEFAULT_CHECKS, load_checks
from chalicelib.core.alert_message import AlertKind, Severity
from chalicelib.core.alerts import AlertChange, AlertState, Confirm, Publish, Write
from chalicelib.core.checks import (
    CHECK_MEASUREMENT,
    Check,
    ChecksError,
    CheckType,
    LocationState,
    ProbeResult,
    advance,
    aligned_runs,
    batches,
    check_alert_id,
    check_changes,
    due_runs,
    observe,
    parse_check,
    parse_checks,
    parse_results,
    result_report,
    run_json,
    run_of_json,
)
from chalicelib.core.instants import ms_of_instant

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
MIN_EVERY_S = 10
EXAMPLE = Path(__file__).resolve().parents[2] / "chalicelib" / "checks" / "example.yaml"


def problems(data, location="us-east-1"):
    with pytest.raises(ChecksError) as caught:
        parse_checks(data, location, source="checks.yaml")
    return caught.value.problems


def test_the_example_file_loads_with_its_documented_meaning():
    api, db, resolver, cert = load_checks(EXAMPLE, "us-east-1")
    assert api.type is CheckType.HTTP
    assert api.expect_status == ((200, 200),)
    assert (api.failures, api.quorum, api.locations) == (2, 2, ("us-east-1", "eu-west-1"))
    assert api.target_host == "api.example.com"
    assert (db.host, db.port, db.locations, db.quorum) == ("db.internal", 5432, ("us-east-1",), 1)
    assert db.every == timedelta(seconds=60)
    assert (resolver.server, resolver.expect, resolver.target_host) == (
        "10.0.0.2:53",
        ("192.0.2.10",),
        "example.com",
    )
    assert (cert.warning_days, cert.critical_days) == (21, 7)
    assert load_checks(DEFAULT_CHECKS, "us-east-1") == ()


def test_defaults_are_a_2xx_or_3xx_status_the_region_and_a_majority():
    [check] = parse_checks(
        {"checks": [{"name": "a", "type": "http", "url": "http://x.example/"}]}, "eu-west-1"
    )
    assert check.expect_status == ((200, 399),)
    assert check.locations == ("eu-west-1",)
    [three] = parse_checks(
        {
            "checks": [
                {"name": "b", "type": "tcp", "host": "h", "port": 1, "locations": ["a", "b", "c"]}
            ]
        },
        "x",
    )
    assert three.quorum == 2


@pytest.mark.parametrize(
    ("check", "path", "words"),
    [
        (
            {"name": "db", "type": "tcp", "host": "db", "port": 70000},
            "checks[0] (db).port",
            "1..65535",
        ),
        ({"name": "db", "type": "tcp", "host": "db"}, "checks[0] (db).port", "port"),
        ({"name": "w", "type": "http", "url": "ftp://x"}, "checks[0] (w).url", "http"),
        (
            {"name": "w", "type": "http", "url": "http://x", "every": "5s"},
            "checks[0] (w).every",
            "10s",
        ),
        (
            {"name": "w", "type": "http", "url": "http://x", "every": "2h"},
            "checks[0] (w).every",
            "1h",
        ),
        (
            {"name": "w", "type": "http", "url": "http://x", "timeout": "2m"},
            "checks[0] (w).timeout",
            "60s",
        ),
        (
            {"name": "w", "type": "http", "url": "http://x", "expect_status": ["2xx"]},
            "checks[0] (w).expect_status[0]",
            "range",
        ),
        (
            {"name": "w", "type": "http", "url": "http://x", "body_regex": "("},
            "checks[0] (w).body_regex",
            "regular",
        ),
        (
            {"name": "w", "type": "http", "url": "http://x", "port": 1},
            "checks[0] (w).port",
            "unknown key",
        ),
        ({"name": "w", "type": "ping", "host": "x"}, "checks[0] (w).type", "http, tcp, dns, tls"),
        ({"name": "W!", "type": "tcp", "host": "x", "port": 1}, "checks[0] (W!).name", "lowercase"),
        (
            {"name": "d", "type": "dns", "query": "x.example", "record": "B"},
            "checks[0] (d).record",
            "one of",
        ),
        (
            {"name": "d", "type": "dns", "query": "x.example", "server": "a:b:c:d"},
            "checks[0] (d).server",
            "host:port",
        ),
        (
            {"name": "t", "type": "tls", "host": "x", "warning_days": 3, "critical_days": 7},
            "checks[0] (t).critical_days",
            "warning_days",
        ),
        (
            {
                "name": "q",
                "type": "tcp",
                "host": "x",
                "port": 1,
                "locations": ["a", "b"],
                "quorum": 3,
            },
            "checks[0] (q).quorum",
            "1 to 2",
        ),
        (
            {"name": "q", "type": "tcp", "host": "x", "port": 1, "summary": "{nope}"},
            "checks[0] (q).summary",
            "unknown name",
        ),
        (
            {"name": "q", "type": "tcp", "host": "x", "port": 1, "severity": "page"},
            "checks[0] (q).severity",
            "critical",
        ),
    ],
)
def test_a_bad_check_is_named_by_check_and_field(check, path, words):
    found = problems({"checks": [check]})
    assert any(p == path and words in m for p, m in found), found


def test_duplicate_names_and_every_problem_are_reported_at_once():
    found = problems(
        {
            "checks": [
                {"name": "a", "type": "tcp", "host": "x", "port": 1},
                {"name": "a", "type": "tcp", "host": "x", "port": 1},
                {"name": "b", "type": "tcp", "host": "", "port": 0},
            ]
        }
    )
    paths = [p for p, _ in found]
    assert paths == ["checks[1] (a).name", "checks[2] (b).host", "checks[2] (b).port"]
    assert str(ChecksError("checks.yaml", found)).startswith("checks.yaml: 3 problems")


def test_a_put_body_is_reported_by_json_path():
    with pytest.raises(ChecksError) as caught:
        parse_check({"name": "db", "type": "tcp", "host": "db", "port": "x"}, "us-east-1")
    assert caught.value.problems[0][0] == "port"


def test_a_check_round_trips_through_its_json():
    for check in load_checks(EXAMPLE, "us-east-1"):
        again = parse_check(check.as_json(), "elsewhere", source="file")
        assert again == check


def tcp(**kw) -> Check:
    base = {"name": "db", "type": "tcp", "host": "db.internal", "port": 5432}
    return parse_check({**base, **kw}, "us-east-1")


def state(at: datetime, fails: int, severity: str | None = "critical") -> LocationState:
    return {
        "at": ms_of_instant(at),
        "up": fails == 0,
        "fails": fails,
        "reason": "connect: connection refused" if fails else "ok",
        "severity": severity if fails else None,
    }


def test_due_runs_follow_every_and_spread_sub_minute_checks_over_the_window():
    slow = tcp(name="slow", every="5m")
    fast = tcp(name="fast", every="20s", timeout="5s")
    states = {"slow": {"us-east-1": state(T0 - timedelta(minutes=2), 0)}}
    runs = due_runs([slow, fast], states, frozenset({"us-east-1"}), T0)
    assert [(r.check.name, r.offset.total_seconds()) for r in runs] == [
        ("fast", 0),
        ("fast", 20),
        ("fast", 40),
    ]
    later = due_runs([slow], states, frozenset({"us-east-1"}), T0 + timedelta(minutes=3))
    assert [r.check.name for r in later] == ["slow"]


def test_a_location_runs_only_its_own_runs_unless_locations_are_simulated():
    check = tcp(locations=["us-east-1", "eu-west-1"])
    mine = due_runs([check], {}, frozenset({"eu-west-1"}), T0)
    assert [r.location for r in mine] == ["eu-west-1"]
    every = due_runs([check], {}, None, T0)
    assert sorted(r.location for r in every) == ["eu-west-1", "us-east-1"]


def test_batches_hold_at_most_their_size_and_spread_slow_timeouts():
    checks = [tcp(name=f"c{i}", timeout="30s" if i < 4 else "1s") for i in range(10)]
    runs = due_runs(checks, {}, None, T0)
    split = batches(runs, 3)
    assert [len(b) for b in split] == [3, 3, 2, 2]
    assert sorted(sum(r.check.timeout.total_seconds() >= 30 for r in b) for b in split) == [1] * 4
    again = run_of_json(run_json(split[0][0]), "us-east-1")
    assert again == split[0][0]


def result(check: Check, at: datetime, up: bool, location="us-east-1", **kw) -> ProbeResult:
    return ProbeResult(
        check=check.name,
        location=location,
        at=at,
        up=up,
        reason="ok" if up else "connect: connection refused (db.internal:5432)",
        latency_ms=12.5,
        severity=None if up else Severity.CRITICAL,
        **kw,
    )


def test_a_result_is_a_point_of_measurement_check_under_the_target_host():
    check = tcp()
    report = result_report(check, result(check, T0, False, fields={"status_code": 503}))
    assert report.host == "db.internal"
    [point] = report.points
    assert point.measurement == CHECK_MEASUREMENT
    assert point.tags == {"check": "db", "type": "tcp", "location": "us-east-1"}
    assert point.fields["up"] == 0
    assert point.fields["latency_ms"] == 12.5
    assert point.fields["status_code"] == 503
    assert point.time_ms == ms_of_instant(T0)


def test_consecutive_failures_count_up_and_reset_on_success():
    check = tcp()
    s1 = advance(None, result(check, T0, False))
    s2 = advance(s1, result(check, T0 + timedelta(minutes=1), False))
    s3 = advance(s2, result(check, T0 + timedelta(minutes=2), True))
    assert [s1["fails"], s2["fails"], s3["fails"]] == [1, 2, 0]


def apply(change: AlertChange, alerts: dict, seen: list) -> None:
    """Apply a change's steps in order, as the alerting service does: each Write and
    Confirm stores its record (None: deletes it), each Publish is seen."""
    for done in change.steps:
        if isinstance(done, Publish):
            seen.append(done.message)
        elif isinstance(done, Write) and done.after is None:
            alerts.pop(change.alert_id, None)
        else:
            assert isinstance(done, Write | Confirm)
            assert done.after is not None
            alerts[done.after.alert_id] = done.after


def walk(check: Check, minutes_of_states):
    """Run check_changes over successive minutes of states; the alert states after each."""
    alerts = {}
    seen = []
    at = T0
    for states in minutes_of_states:
        at += timedelta(minutes=1)
        stamped = {loc: state(at, fails) for loc, fails in states.items()}
        for change in check_changes([check], {check.name: stamped}, alerts, lambda r: False, at):
            apply(change, alerts, seen)
        current = alerts.get(check_alert_id(check.name))
        seen.append(current.state.value if current else "inactive")
    return seen


def test_pending_until_failures_in_a_row_then_firing_then_resolved_on_a_good_quorum():
    check = tcp(failures=2)
    seen = walk(check, [{"us-east-1": 1}, {"us-east-1": 2}, {"us-east-1": 3}, {"us-east-1": 0}])
    states = [s for s in seen if isinstance(s, str)]
    messages = [s for s in seen if isinstance(s, dict)]
    assert states == ["pending", "firing", "firing", "resolved"]
    assert [m["status"] for m in messages] == ["firing", "resolved"]
    assert messages[0]["kind"] == "check"
    assert messages[0]["host"] == "db.internal"
    assert messages[0]["rule"] == "db"
    assert messages[0]["dedup_key"] == messages[1]["dedup_key"]
    assert messages[0]["summary"] == ("db failing from 1 of 1: connect: connection refused")


def test_quorum_holds_back_one_failing_location():
    check = tcp(locations=["us-east-1", "eu-west-1", "ap-south-1"])  # quorum 2
    seen = walk(check, [{"us-east-1": 1, "eu-west-1": 0, "ap-south-1": 0}] * 3)
    assert seen == ["inactive"] * 3
    seen = walk(check, [{"us-east-1": 1, "eu-west-1": 1, "ap-south-1": 0}])
    assert [s["status"] for s in seen if isinstance(s, dict)] == ["firing"]


def test_too_few_fresh_results_keep_the_alert_as_it_is():
    check = tcp(locations=["us-east-1", "eu-west-1"])  # quorum 2
    obs, _, frozen = observe(check, {"us-east-1": state(T0, 0)}, T0)
    assert obs is None
    assert frozen
    old = {loc: state(T0 - timedelta(hours=1), 3) for loc in check.locations}
    assert observe(check, old, T0)[2] is True


def test_a_removed_check_resolves_its_alert():
    check = tcp()
    alerts = {}
    at = T0
    sent = []
    for change in check_changes(
        [check], {"db": {"us-east-1": state(at, 1)}}, alerts, lambda r: False, at
    ):
        apply(change, alerts, sent)
    assert alerts["check/db"].state is AlertState.FIRING
    assert alerts["check/db"].kind is AlertKind.CHECK
    assert [m["status"] for m in sent] == ["firing"]
    [change] = check_changes([], {}, alerts, lambda r: False, at + timedelta(minutes=1))
    write, publish, _ = change.steps
    assert isinstance(write, Write)
    assert write.after is not None
    assert write.after.state is AlertState.RESOLVED
    assert isinstance(publish, Publish)
    assert publish.message["status"] == "resolved"


def test_tls_warning_days_alert_as_warning():
    check = parse_check({"name": "cert", "type": "tls", "host": "x.example"}, "us-east-1")
    obs, _, _ = observe(check, {"us-east-1": state(T0, 1, severity="warning")}, T0)
    assert obs.severity is Severity.WARNING


def test_posted_results_are_validated_by_json_path():
    good = {
        "check": "db",
        "location": "eu-west-1",
        "time": ms_of_instant(T0),
        "up": False,
        "reason": "connect: timeout",
        "latency_ms": 5000,
        "fields": {"status_code": 0},
    }
    [parsed] = parse_results({"results": [good]}, T0)
    assert (parsed.up, parsed.severity, parsed.location) == (False, Severity.CRITICAL, "eu-west-1")
    for bad, path in [
        ({**good, "up": "no"}, "results[0].up"),
        ({**good, "time": 1}, "results[0].time"),
        ({**good, "location": "EU WEST"}, "results[0].location"),
        ({**good, "extra": 1}, "results[0].extra"),
        ({**good, "fields": {"answers": [1]}}, "results[0].fields.answers"),
    ]:
        with pytest.raises(ChecksError) as caught:
            parse_results({"results": [bad]}, T0)
        assert caught.value.problems[0][0] == path


def test_the_example_is_valid_yaml_for_a_put_too():
    body = yaml.safe_load(EXAMPLE.read_text())["checks"][0]
    assert parse_check(body, "us-east-1").name == "api-health"


def test_a_probe_away_from_home_runs_on_aligned_minutes_without_state():
    five = tcp(name="five", every="5m", locations=["eu-west-1"])
    half = tcp(name="half", every="30s", locations=["eu-west-1", "us-east-1"])
    home = tcp(name="home")
    starts = [T0 + timedelta(minutes=m) for m in range(10)]
    runs = {at: aligned_runs([five, half, home], "eu-west-1", at) for at in starts}
    assert [at.minute for at, rs in runs.items() if any(r.check.name == "five" for r in rs)] == [
        0,
        5,
    ]
    assert all(
        [r.offset.total_seconds() for r in rs if r.check.name == "half"] == [0, 30]
        for rs in runs.values()
    )
    assert not any(r.check.name == "home" for rs in runs.values() for r in rs)


CHECK_KEYS = sorted(
    {"name", "type", "every", "timeout", "failures", "severity", "locations", "quorum"}
    | {"labels", "summary", "url", "method", "expect_status", "body_contains", "body_regex"}
    | {"host", "port", "query", "record", "server", "expect", "warning_days", "critical_days"}
)
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.floats(allow_nan=True),
    st.sampled_from(["db", "tcp", "http", "dns", "tls", "http://x.example/", "30s", "A"]),
    st.text(max_size=12),
    st.lists(st.sampled_from(["us-east-1", "eu-west-1", 200, "200-299", "x"]), max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(CHECK_KEYS), VALUES, max_size=8))
def test_any_body_is_a_check_or_problems_by_field_never_a_crash(body):
    problems: list[tuple[str, str]] = []
    try:
        check = parse_check(body, "us-east-1")
    except ChecksError as exc:
        problems = exc.problems
    if problems:
        assert all(path.split(".")[0].split("[")[0] in CHECK_KEYS for path, _ in problems)
        return
    # Nothing invalid gets through: what was accepted survives its own round trip.
    assert parse_check(check.as_json(), "us-east-1") == check
    assert MIN_EVERY_S <= check.every.total_seconds() <= 3600
