"""Jobs' pure core: definitions, derived status (period and cron with DST), pings, alerts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.core.alert_message import AlertKind, AlertStatus
from chalicelib.core.alerts import AlertState, Confirm, Publish, Timing, Write
from chalicelib.core.errors import InvalidPayload
from chalicelib.core.jobs import (
    MAX_OPEN_RUNS,
    PING_BURST,
    JobSpec,
    JobStatus,
    Ping,
    PingKind,
    apply_ping,
    job_alert_changes,
    job_status,
    new_job,
    next_expected,
    parse_action,
    parse_rid,
    parse_spec,
)

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
ID = "0b7f5f0e-2a4c-4b8e-9d3f-6c1a2b3c4d5e"


def job(**raw: object):
    return new_job(parse_spec("backup", raw), ID, T0)


def pinged(j, kind=PingKind.SUCCESS, at=T0, *, code=None, rid=None, body=""):
    result = apply_ping(j, Ping(kind, at, code, rid, body))
    assert result.job is not None
    return result.job


@pytest.mark.parametrize(
    ("suffix", "expected"),
    [
        (None, (PingKind.SUCCESS, None)),
        ("start", (PingKind.START, None)),
        ("fail", (PingKind.FAIL, None)),
        ("log", (PingKind.LOG, None)),
        ("0", (PingKind.SUCCESS, 0)),
        ("1", (PingKind.FAIL, 1)),
        ("255", (PingKind.FAIL, 255)),
        ("256", None),
        ("-1", None),
        ("0001", None),
        ("stop", None),
    ],
)
def test_the_url_suffix_names_the_ping(suffix, expected):
    assert parse_action(suffix) == expected


def test_a_rid_must_be_a_uuid():
    assert (
        parse_rid("1B4E28BA-2FA1-41D2-883F-0016D3CCA427") == "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
    )
    with pytest.raises(ValueError, match="badly formed"):
        parse_rid("run-7")


def test_a_period_job_goes_up_grace_down_and_a_new_one_is_never_judged():
    j = job(period="1h", grace="10m")
    assert job_status(j, T0 + timedelta(days=30)).status is JobStatus.NEW
    j = pinged(j)
    assert job_status(j, T0 + timedelta(minutes=60)).status is JobStatus.UP
    assert job_status(j, T0 + timedelta(minutes=61)).status is JobStatus.GRACE
    assert job_status(j, T0 + timedelta(minutes=70)).status is JobStatus.GRACE
    assert job_status(j, T0 + timedelta(minutes=70, seconds=1)).status is JobStatus.DOWN


def test_a_one_second_period_is_judged_to_the_second():
    j = pinged(job(period="1s", grace="0s"))
    assert job_status(j, T0 + timedelta(seconds=1)).status is JobStatus.UP
    assert job_status(j, T0 + timedelta(seconds=2)).status is JobStatus.DOWN


def test_cron_in_a_time_zone_follows_dst_as_cron_does():
    s = parse_spec("nightly", {"schedule": "30 2 * * *", "tz": "Europe/Berlin"})
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST; the skipped 02:30 runs at 03:00 (01:00 UTC).
    before = datetime(2026, 3, 28, 1, 30, tzinfo=UTC)  # 02:30 CET
    assert next_expected(s, before) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    # 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 comes twice and the job runs
    # once, at the first (CEST, 00:30 UTC): not expected again at the second.
    before = datetime(2026, 10, 24, 0, 30, tzinfo=UTC)  # 02:30 CEST
    assert next_expected(s, before) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    after = datetime(2026, 10, 25, 0, 30, 5, tzinfo=UTC)
    assert next_expected(s, after) == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)  # 02:30 CET


def test_failed_hung_and_short_runs_are_derived_and_cleared_by_a_good_run():
    j = job(period="1d", max_duration="30m", min_duration="1m")
    j = pinged(j, PingKind.FAIL, code=2, body="boom")
    verdict = job_status(j, T0)
    assert verdict.status is JobStatus.FAILED
    assert "exit status 2" in verdict.reason
    j = pinged(j, PingKind.START, T0 + timedelta(minutes=1))
    assert job_status(j, T0 + timedelta(minutes=31)).status is JobStatus.FAILED
    assert job_status(j, T0 + timedelta(minutes=32)).status is JobStatus.HUNG
    j = pinged(j, PingKind.SUCCESS, T0 + timedelta(minutes=1, seconds=5))
    assert job_status(j, T0 + timedelta(minutes=2)).status is JobStatus.SHORT
    j = pinged(j, PingKind.START, T0 + timedelta(minutes=3))
    j = pinged(j, PingKind.SUCCESS, T0 + timedelta(minutes=10))
    assert job_status(j, T0 + timedelta(minutes=11)).status is JobStatus.UP
    assert j.last_run is not None
    assert j.last_run.duration == timedelta(minutes=7)


def test_open_runs_are_capped_oldest_first():
    j = job()
    for i in range(MAX_OPEN_RUNS + 5):
        rid = f"00000000-0000-4000-8000-{i:012d}"
        j = pinged(j, PingKind.START, T0 + timedelta(seconds=i), rid=rid)
    assert len(j.runs) == MAX_OPEN_RUNS
    assert min(j.runs.values()) == T0 + timedelta(seconds=5)


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"period": "500ms"}, "period"),
        ({"schedule": "* * *"}, "schedule"),
        ({"tz": "Nowhere/City"}, "tz"),
        ({"labels": {"bad-name": "x"}}, "labels.bad-name"),
        ({"summary": ""}, "summary"),
        ({"slug": "other"}, "slug"),
    ],
)
def test_a_bad_definition_names_the_field(raw, path):
    with pytest.raises(InvalidPayload) as caught:
        parse_spec("backup", raw)
    assert path in [p.path for p in caught.value.details]


def test_a_bad_slug_is_named():
    with pytest.raises(InvalidPayload) as caught:
        parse_spec("Back Up", {})
    assert [p.path for p in caught.value.details] == ["slug"]


def test_the_definition_round_trips_through_its_json():
    s = parse_spec(
        "backup",
        {"schedule": "0 3 * * 1-5", "tz": "Asia/Tokyo", "grace": "90s", "labels": {"a": "b"}},
    )
    assert parse_spec("backup", s.as_json()) == s


kinds = st.sampled_from(list(PingKind))
steps = st.lists(
    st.tuples(kinds, st.integers(0, 3_600_000), st.sampled_from([None, ID])), max_size=40
)


@given(steps)
def test_the_bucket_stays_between_empty_and_full_and_refusals_write_nothing(pings):
    j = job()
    at = T0
    for kind, gap_ms, rid in pings:
        at += timedelta(milliseconds=gap_ms)
        result = apply_ping(j, Ping(kind, at, None, rid))
        if result.limited:
            assert result.job is None
            continue
        assert result.job is not None
        j = result.job
        assert 0 <= j.bucket <= PING_BURST
        assert len(j.runs) <= MAX_OPEN_RUNS
        assert job_status(j, at) == job_status(j, at)  # same input, same output


@given(steps, st.integers(0, 10 * 86_400_000))
def test_a_good_run_always_ends_an_alerting_status(pings, later_ms):
    j = job(period="1h", max_duration="2h", min_duration="1s")
    at = T0
    for kind, gap_ms, rid in pings:
        at += timedelta(milliseconds=gap_ms)
        j = apply_ping(j, Ping(kind, at, None, rid)).job or j
    j = replace(j, bucket=PING_BURST, runs={})
    at += timedelta(milliseconds=later_ms)
    j = pinged(j, PingKind.START, at, rid=ID)
    j = pinged(j, PingKind.SUCCESS, at + timedelta(seconds=5), rid=ID)
    assert job_status(j, at + timedelta(seconds=6)).status is JobStatus.UP


def test_a_failing_job_pages_once_then_resolves():
    j = pinged(job(), PingKind.FAIL, body="out of disk")
    kwargs = {
        "timing": Timing(),
        "lease": timedelta(seconds=30),
        "retention": timedelta(hours=24),
        "status_url": None,
    }
    [change] = job_alert_changes([j], {}, lambda r: False, T0, **kwargs)
    write, publish, confirm = change.steps
    assert isinstance(publish, Publish)
    assert publish.message["status"] == AlertStatus.FIRING
    assert publish.message["kind"] == AlertKind.JOB
    assert publish.message["description"].endswith("out of disk")
    assert isinstance(write, Write)
    assert write.after is not None
    assert write.after.state is AlertState.FIRING
    assert write.after.outbox == publish.message
    assert isinstance(confirm, Confirm)
    assert confirm.after.notified is AlertStatus.FIRING
    assert confirm.after.outbox is None
    records = {confirm.after.alert_id: confirm.after}
    later = T0 + timedelta(minutes=5)
    assert job_alert_changes([j], records, lambda r: False, later, **kwargs) == []
    ok = pinged(j, PingKind.SUCCESS, later)
    [resolved] = job_alert_changes([ok], records, lambda r: False, later, **kwargs)
    write, publish, _ = resolved.steps
    assert isinstance(write, Write)
    assert write.after is not None
    assert write.after.state is AlertState.RESOLVED
    assert isinstance(publish, Publish)
    assert publish.message["status"] == AlertStatus.RESOLVED


def test_a_new_job_and_a_spec_default_say_nothing():
    assert (
        job_alert_changes(
            [new_job(JobSpec("fresh"), ID, T0)],
            {},
            lambda r: False,
            T0,
            timing=Timing(),
            lease=timedelta(seconds=30),
            retention=timedelta(hours=1),
            status_url=None,
        )
        == []
    )


def test_a_ping_scope_pings_and_does_nothing_else():
    from chalicelib.core.tokens import Scope, ScopeKind

    scope = Scope.parse("ping")
    assert scope.kind is ScopeKind.PING
    assert scope.may_ping
    assert not scope.is_admin
    assert not scope.may_post_for("web-1")
    assert str(scope) == "ping"
    assert not Scope.parse("fleet").may_ping
    assert not Scope.parse("admin").may_ping


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
definition_values = {
    "period": st.sampled_from(["1s", "5m", "1d", "0s", "366d", 30, -1, "x"]) | json_values,
    "schedule": st.sampled_from(["0 3 * * *", "@daily", "*/5 * * * 1-5", "99 * * * *", "* *"])
    | json_values,
    "tz": st.sampled_from(["UTC", "Europe/Paris", "../etc", "", "Mars/Base"]) | json_values,
    "grace": st.sampled_from(["1h", "0s", 0]) | json_values,
    "severity": st.sampled_from(["critical", "info", "fatal"]) | json_values,
    "labels": st.dictionaries(st.text(max_size=10), json_values, max_size=3) | json_values,
    "max_duration": json_values,
    "min_duration": json_values,
    "summary": json_values,
    "runbook": st.sampled_from(["https://r.example/x"]) | json_values,
}


@given(st.fixed_dictionaries({}, optional=definition_values))
def test_any_definition_is_accepted_or_refused_by_field_never_crashes(raw):
    problems: list = []
    try:
        spec = parse_spec("backup", raw)
    except InvalidPayload as exc:
        problems = exc.details
    if problems:
        assert {p.path.split(".")[0] for p in problems} <= set(definition_values) | {"slug"}
        return
    assert (spec.period is None) != (spec.schedule is None)
    assert parse_spec("backup", spec.as_json()) == spec  # what is stored reads back the same
