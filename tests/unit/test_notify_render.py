"""What Slack, PagerDuty and email are sent, with every documented limit, and when to retry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.core.notify import (
    Channel,
    DeliveryError,
    DeliveryState,
    Episode,
    Notification,
    SecretUnavailable,
    classify_status,
    decide,
)
from chalicelib.core.render import (
    EMAIL_SUBJECT_MAX,
    PAGERDUTY_DEDUP_KEY_MAX,
    PAGERDUTY_SUMMARY_MAX,
    SLACK_FIELD_MAX,
    SLACK_HEADER_MAX,
    SLACK_MAX_BLOCKS,
    SLACK_SECTION_TEXT_MAX,
    email_text,
    format_duration,
    pagerduty_dedup_key,
    pagerduty_event,
    slack_message,
)
from chalicelib.core.retry import RetryPolicy, parse_retry_after
from tests.support.alerts import alert, resolved

NOW = datetime(2026, 11, 21, 12, 12, tzinfo=UTC)


def blocks_of(body, kind):
    return [b for b in body["blocks"] if b["type"] == kind]


def _texts(block) -> list[str]:
    out = [block["text"]["text"]] if "text" in block else []
    out += [f["text"] for f in block.get("fields", []) + block.get("elements", [])]
    return out


def all_text(body) -> str:
    return str(body)


# Slack


def test_slack_firing_message_shows_severity_host_rule_value_duration_and_links():
    body = slack_message(Notification(alert(), NOW), "https://status.example/status")
    assert body["text"] == "[CRITICAL] Disk / at 97% on web-1"
    [header] = blocks_of(body, "header")
    assert header["text"] == {
        "type": "plain_text",
        "text": ":red_circle: [CRITICAL] Disk / at 97% on web-1",
        "emoji": True,
    }
    fields = [f["text"] for b in blocks_of(body, "section") for f in b.get("fields", [])]
    assert "*Host*\nweb-1" in fields
    assert "*Rule*\ndisk-full" in fields
    assert "*Value*\n97.1 (threshold 95)" in fields
    assert "*Firing for*\n12m" in fields
    texts = [b["text"]["text"] for b in blocks_of(body, "section") if "text" in b]
    assert "above 95 for 5m" in texts
    assert (
        "<https://runbooks.example/disk|Runbook>  ·  <https://status.example/status|Status page>"
        in texts
    )
    assert "actions" not in {b["type"] for b in body["blocks"]}


@pytest.mark.parametrize(
    ("severity", "icon"),
    [
        ("critical", ":red_circle:"),
        ("warning", ":large_orange_circle:"),
        ("info", ":large_blue_circle:"),
    ],
)
def test_slack_severity_is_seen_at_a_glance(severity, icon):
    body = slack_message(Notification(alert(severity=severity), NOW))
    assert blocks_of(body, "header")[0]["text"]["text"].startswith(f"{icon} [{severity.upper()}]")


def test_slack_resolved_message_reads_as_a_resolution():
    body = slack_message(Notification(resolved(), NOW))
    assert body["text"].startswith("[RESOLVED] ")
    header = blocks_of(body, "header")[0]["text"]["text"]
    assert header == ":white_check_mark: [RESOLVED] Disk / at 97% on web-1"
    lead = blocks_of(body, "section")[0]["text"]["text"]
    assert lead == "*Resolved* on *web-1* after 32m (was critical)."
    fields = [f["text"] for b in blocks_of(body, "section") for f in b.get("fields", [])]
    assert "*Fired for*\n32m" in fields
    assert "*Resolved at*\n2026-11-21 12:32 UTC" in fields
    assert "red_circle" not in all_text(body)


def test_slack_reminder_says_still_firing():
    body = slack_message(Notification(alert(), NOW, reminder=2))
    assert blocks_of(body, "header")[0]["text"]["text"].startswith(
        ":red_circle: [CRITICAL, still firing]"
    )
    assert "(reminder 2)" in blocks_of(body, "section")[0]["text"]["text"]


def test_slack_escapes_mrkdwn_in_user_text():
    body = slack_message(Notification(alert(host="<!channel> & co", description="a < b"), NOW))
    mrkdwn = [body["text"]] + [
        t for b in body["blocks"] if b["type"] != "header" for t in _texts(b)
    ]
    assert all("<!channel>" not in t for t in mrkdwn)
    assert body["text"] == "[CRITICAL] Disk / at 97% on web-1 (&lt;!channel&gt; &amp; co)"
    fields = [f["text"] for b in blocks_of(body, "section") for f in b.get("fields", [])]
    assert "*Host*\n&lt;!channel&gt; &amp; co" in fields


def test_slack_respects_block_kit_limits_whatever_the_input():
    huge = alert(
        summary="s" * 5000,
        description="d" * 10000,
        host="h" * 3000,
        rule="r" * 3000,
        labels={f"k{i}": "v" * 200 for i in range(100)},
        links=[
            {"href": f"https://example.com/{'x' * 200}/{i}", "text": "t" * 100} for i in range(100)
        ],
    )
    body = slack_message(Notification(huge, NOW), "https://status.example")
    assert len(body["blocks"]) <= SLACK_MAX_BLOCKS
    header = blocks_of(body, "header")[0]["text"]["text"]
    assert len(header) == SLACK_HEADER_MAX
    assert header.endswith("…")
    for block in blocks_of(body, "section"):
        if "text" in block:
            assert len(block["text"]["text"]) <= SLACK_SECTION_TEXT_MAX
        for field in block.get("fields", []):
            assert len(field["text"]) <= SLACK_FIELD_MAX
        assert len(block.get("fields", [])) <= 10
    for element in blocks_of(body, "context")[0]["elements"]:
        assert len(element["text"]) <= 3000
    assert len(body["text"]) <= 3000


def test_slack_marks_test_notifications():
    body = slack_message(Notification(alert(summary="[TEST] hello", labels={"test": "true"}), NOW))
    context = blocks_of(body, "context")[0]["elements"]
    assert context[0]["text"].startswith("Test notification")


# PagerDuty


def test_pagerduty_trigger_has_every_documented_field():
    event = pagerduty_event(
        Notification(alert(labels={"role": "web"}), NOW), "R0UT1NG", "https://s.example/status"
    )
    assert event == {
        "routing_key": "R0UT1NG",
        "event_action": "trigger",
        "dedup_key": "fleetpulse/web-1/disk-full/1",
        "payload": {
            "summary": "Disk / at 97% on web-1",
            "source": "web-1",
            "severity": "critical",
            "timestamp": "2026-11-21T12:00:00+00:00",
            "component": "disk-full",
            "group": "web",
            "class": "threshold",
            "custom_details": {
                "rule": "disk-full",
                "host": "web-1",
                "kind": "threshold",
                "alert_id": "a-1",
                "started_at": "2026-11-21T12:00:00+00:00",
                "description": "above 95 for 5m",
                "value": 97.1,
                "threshold": 95.0,
                "labels": {"role": "web"},
                "firing_for": "12m",
            },
        },
        "client": "fleetpulse",
        "client_url": "https://s.example/status",
        "links": [
            {"href": "https://runbooks.example/disk", "text": "Runbook"},
            {"href": "https://s.example/status", "text": "Status page"},
        ],
    }


@pytest.mark.parametrize(
    ("ours", "theirs"), [("critical", "critical"), ("warning", "warning"), ("info", "info")]
)
def test_pagerduty_severity_mapping(ours, theirs):
    assert (
        pagerduty_event(Notification(alert(severity=ours), NOW), "k")["payload"]["severity"]
        == theirs
    )


def test_pagerduty_resolve_carries_only_what_finds_the_alert():
    assert pagerduty_event(Notification(resolved(), NOW), "R0UT1NG") == {
        "routing_key": "R0UT1NG",
        "event_action": "resolve",
        "dedup_key": "fleetpulse/web-1/disk-full/1",
    }


def test_pagerduty_summary_is_cut_to_1024_with_an_ellipsis():
    summary = pagerduty_event(Notification(alert(summary="x" * 5000), NOW), "k")["payload"][
        "summary"
    ]
    assert len(summary) == PAGERDUTY_SUMMARY_MAX
    assert summary == "x" * 1023 + "…"


def test_long_dedup_keys_fit_and_stay_distinct_and_stable():
    a, b = "k" * 300 + "a", "k" * 300 + "b"
    assert len(pagerduty_dedup_key(a)) == PAGERDUTY_DEDUP_KEY_MAX
    assert pagerduty_dedup_key(a) != pagerduty_dedup_key(b)
    trigger = pagerduty_event(Notification(alert(dedup_key=a), NOW), "k")
    resolve = pagerduty_event(Notification(resolved(dedup_key=a), NOW), "k")
    assert trigger["dedup_key"] == resolve["dedup_key"] == pagerduty_dedup_key(a)
    assert pagerduty_dedup_key("short") == "short"


def test_pagerduty_omits_what_is_unknown():
    event = pagerduty_event(
        Notification(
            alert(
                value=None,
                threshold=None,
                description="",
                labels={},
                links=[],
                started_at="garbage",
            ),
            NOW,
        ),
        "k",
    )
    assert "timestamp" not in event["payload"]
    assert "links" not in event
    assert "client_url" not in event
    assert set(event["payload"]["custom_details"]) == {
        "rule",
        "host",
        "kind",
        "alert_id",
        "started_at",
    }


# Email


def test_email_reads_as_a_message():
    subject, body = email_text(alert(), NOW)
    assert subject == "[CRITICAL] Disk / at 97% on web-1"
    assert body.splitlines()[0] == "CRITICAL alert firing on web-1 for 12m."
    assert "Value:    97.1 (threshold 95)" in body
    assert "Started:  2026-11-21 12:00 UTC" in body
    assert "  Runbook: https://runbooks.example/disk" in body
    assert "{" not in body


def test_email_resolved_says_so_and_for_how_long():
    subject, body = email_text(resolved())
    assert subject == "[RESOLVED] Disk / at 97% on web-1"
    assert (
        body.splitlines()[0]
        == "RESOLVED: this alert on web-1 is no longer firing (it fired for 32m)."
    )
    assert "Resolved: 2026-11-21 12:32 UTC" in body


def test_email_subject_is_ascii_one_line_and_under_100():
    subject, _ = email_text(alert(summary="Température 45 °C\non café-1 " + "x" * 300))
    assert subject.isascii()
    assert "\n" not in subject
    assert len(subject) <= EMAIL_SUBJECT_MAX
    assert subject.startswith("[CRITICAL] Temperature 45 ?C on cafe-1 x")
    assert subject.endswith("...")


# Decisions and retries


def test_decide_sends_first_and_skips_what_would_mislead():
    firing, done = alert(), resolved()
    assert decide(Channel.SLACK, firing, Episode()) is None
    assert decide(Channel.PAGERDUTY, firing, Episode()) is None
    # Reminders: Slack re-posts, PagerDuty already has the incident open.
    assert decide(Channel.SLACK, firing, Episode(firing_sent=1)) is None
    assert (
        decide(Channel.PAGERDUTY, firing, Episode(firing_sent=1)) is DeliveryState.SKIPPED_REMINDER
    )
    # A late trigger after the resolve would open an incident nothing closes.
    assert decide(Channel.PAGERDUTY, firing, Episode(1, 1)) is DeliveryState.SKIPPED_STALE
    assert decide(Channel.SLACK, firing, Episode(1, 1)) is DeliveryState.SKIPPED_STALE
    assert decide(Channel.PAGERDUTY, done, Episode(1, 0)) is None
    assert decide(Channel.PAGERDUTY, done, Episode(0, 0)) is None
    assert decide(Channel.SLACK, done, Episode(1, 1)) is DeliveryState.SKIPPED_STALE


@pytest.mark.parametrize(
    ("status", "permanent"),
    [
        (200, None),
        (202, None),
        (204, None),
        (301, True),
        (400, True),
        (403, True),
        (404, True),
        (410, True),
        (408, False),
        (429, False),
        (500, False),
        (502, False),
        (503, False),
    ],
)
def test_which_statuses_are_worth_retrying(status, permanent):
    assert classify_status(status) is permanent


def test_retry_after_in_seconds_or_as_a_date():
    assert parse_retry_after("30", NOW) == timedelta(seconds=30)
    assert parse_retry_after("Sat, 21 Nov 2026 12:12:05 GMT", NOW) == timedelta(seconds=5)
    assert parse_retry_after("Sat, 21 Nov 2026 12:00:00 GMT", NOW) == timedelta(0)
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None


def test_retry_policy_backs_off_within_the_deadline():
    policy = RetryPolicy(
        max_attempts=5, first_backoff=timedelta(seconds=1), max_backoff=timedelta(seconds=4)
    )
    temporary = DeliveryError("HTTP 500", status=500)
    waits = [policy.wait_before_retry(n, temporary, timedelta(0), 0.999999) for n in (1, 2, 3, 4)]
    assert [round(w.total_seconds(), 3) for w in waits if w] == [1.0, 2.0, 4.0, 4.0]
    low = policy.wait_before_retry(3, temporary, timedelta(0), 0.0)
    assert low == timedelta(seconds=2)  # never under half the backoff
    assert policy.wait_before_retry(5, temporary, timedelta(0), 0.5) is None
    assert (
        policy.wait_before_retry(1, DeliveryError("HTTP 404", permanent=True), timedelta(0), 0.5)
        is None
    )
    assert policy.wait_before_retry(1, SecretUnavailable("no parameter"), timedelta(0), 0.5) is None
    # Nothing starts that cannot finish inside the deadline.
    assert policy.wait_before_retry(1, temporary, timedelta(seconds=18.5), 0.5) is None


def test_retry_after_is_honoured_unless_it_passes_the_deadline():
    policy = RetryPolicy()
    asked = DeliveryError("HTTP 429", status=429, retry_after=timedelta(seconds=3))
    assert policy.wait_before_retry(1, asked, timedelta(0), 0.9) == timedelta(seconds=3)
    too_long = DeliveryError("HTTP 429", status=429, retry_after=timedelta(seconds=60))
    assert policy.wait_before_retry(1, too_long, timedelta(0), 0.9) is None


@given(st.integers(min_value=1, max_value=10), st.floats(min_value=0, max_value=0.999))
def test_total_waits_never_pass_the_deadline(attempts, jitter):
    policy = RetryPolicy(max_attempts=attempts)
    elapsed, attempt = timedelta(0), 1
    error = DeliveryError("HTTP 503", status=503)
    while (wait := policy.wait_before_retry(attempt, error, elapsed, jitter)) is not None:
        elapsed += wait + policy.min_attempt
        attempt += 1
    assert elapsed <= policy.deadline
    assert attempt <= attempts


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5s"),
        (60, "1m"),
        (750, "12m"),
        (3600, "1h"),
        (11100, "3h 5m"),
        (86400 * 2 + 3600 * 4, "2d 4h"),
    ],
)
def test_durations_read_like_people_write_them(seconds, text):
    assert format_duration(timedelta(seconds=seconds)) == text
