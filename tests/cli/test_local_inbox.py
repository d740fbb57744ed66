"""The local inbox answers like Slack and PagerDuty; SNS envelopes become Lambda SNS events."""

from __future__ import annotations

import json

import pytest
import requests

from fleetpulse.inbox import LocalInbox
from fleetpulse.lambdas import scheduled_event, sns_record


@pytest.fixture
def inbox(tmp_path):
    lines = []
    box = LocalInbox(tmp_path / "inbox.jsonl", lines.append)
    box.start()
    box.lines = lines
    yield box
    box.stop()


def trigger(summary="Disk / at 97% on web-1", dedup="web-1/disk-full/mount=//1763726400"):
    return {
        "routing_key": "k" * 32,
        "event_action": "trigger",
        "dedup_key": dedup,
        "payload": {"summary": summary, "source": "web-1", "severity": "critical"},
    }


def test_pagerduty_events_are_accepted_like_the_events_api(inbox):
    response = requests.post(inbox.pagerduty_url, json=trigger(), timeout=5)
    assert response.status_code == 202
    assert response.json() == {
        "status": "success",
        "message": "Event processed",
        "dedup_key": "web-1/disk-full/mount=//1763726400",
    }
    resolve = {
        "routing_key": "k" * 32,
        "event_action": "resolve",
        "dedup_key": trigger()["dedup_key"],
    }
    assert requests.post(inbox.pagerduty_url, json=resolve, timeout=5).status_code == 202
    assert inbox.lines == [
        "inbox  pagerduty trigger  critical Disk / at 97% on web-1",
        "inbox  pagerduty resolve  critical Disk / at 97% on web-1",
    ]
    records = [json.loads(line) for line in inbox.jsonl.read_text().splitlines()]
    assert [r["body"]["event_action"] for r in records] == ["trigger", "resolve"]
    assert {r["channel"] for r in records} == {"pagerduty"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({**trigger(), "routing_key": ""}, "'routing_key' is missing or blank"),
        ({**trigger(), "event_action": "page"}, "'event_action' must be one of"),
        ({**trigger(), "payload": {"summary": "x", "source": "h", "severity": "bad"}}, "severity"),
        ({"routing_key": "k", "event_action": "resolve"}, "'dedup_key' is required"),
    ],
)
def test_pagerduty_refuses_what_the_events_api_refuses(inbox, body, error):
    response = requests.post(inbox.pagerduty_url, json=body, timeout=5)
    assert response.status_code == 400
    assert response.json()["status"] == "invalid event"
    assert any(error in e for e in response.json()["errors"])
    assert inbox.notices == []


def test_slack_messages_are_printed_from_their_text_and_fields(inbox):
    body = {
        "text": "[WARNING] CPU 5% idle on web-1",
        "blocks": [
            {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Host*\nweb-1"}]},
        ],
    }
    response = requests.post(inbox.slack_url, json=body, timeout=5)
    assert (response.status_code, response.text) == (200, "ok")
    resolved = {
        "text": "[RESOLVED] CPU 5% idle on web-1",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "*Resolved* (was warning)."}}
        ],
    }
    requests.post(inbox.slack_url, json=resolved, timeout=5)
    assert [(n.status, n.severity, n.host) for n in inbox.notices] == [
        ("firing", "warning", "web-1"),
        ("resolved", "warning", ""),
    ]
    assert inbox.lines[0] == "inbox  slack     firing   warning  CPU 5% idle on web-1"


def test_slack_refuses_an_empty_message_and_unknown_paths_are_404(inbox):
    response = requests.post(inbox.slack_url, json={}, timeout=5)
    assert (response.status_code, response.text) == (400, "no_text")
    assert requests.post(inbox.url + "/elsewhere", json={}, timeout=5).status_code == 404


def test_a_printed_line_carries_no_terminal_control_sequences(inbox):
    requests.post(inbox.pagerduty_url, json=trigger(summary="evil\x1b[2J host"), timeout=5)
    assert inbox.lines == ["inbox  pagerduty trigger  critical evil?[2J host  [web-1]"]


def test_an_sns_envelope_becomes_the_record_lambda_gets():
    envelope = {
        "Type": "Notification",
        "MessageId": "m-1",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:fleetpulse-local-alerts",
        "Subject": "subject",
        "Message": '{"version": 1}',
        "Timestamp": "2026-11-21T12:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": "sig",
        "SigningCertURL": "https://cert",
        "UnsubscribeURL": "https://unsub",
        "MessageAttributes": {"severity": {"Type": "String", "Value": "critical"}},
    }
    record = sns_record(envelope, "arn:sub")
    assert record["EventSource"] == "aws:sns"
    assert record["EventSubscriptionArn"] == "arn:sub"
    sns = record["Sns"]
    assert sns["MessageId"] == "m-1"
    assert sns["Message"] == '{"version": 1}'
    assert sns["SigningCertUrl"] == "https://cert"
    assert sns["UnsubscribeUrl"] == "https://unsub"
    assert sns["MessageAttributes"] == {"severity": {"Type": "String", "Value": "critical"}}


def test_a_scheduled_event_names_its_rule():
    from datetime import UTC, datetime

    event = scheduled_event("arn:rule", "us-east-1", datetime(2026, 11, 21, 12, 0, 1, tzinfo=UTC))
    assert event["detail-type"] == "Scheduled Event"
    assert event["resources"] == ["arn:rule"]
    assert event["time"] == "2026-11-21T12:00:01Z"
