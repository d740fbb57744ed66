"""SNSAlertPublisher against moto: JSON for machines, text for email, filterable attributes."""

from __future__ import annotations

import json

import pytest

from chalicelib.adapters.sns import SNSAlertPublisher, email_text
from chalicelib.core.alert_message import InvalidAlertMessage, parse_alert_message
from tests.support.alerts import raw_alert


def message(**overrides):
    return raw_alert(**overrides)


def test_publishes_contract_2_with_filter_attributes(aws):
    import boto3

    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="reader")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    SNSAlertPublisher(sns, topic).publish(parse_alert_message(message()))

    [received] = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    envelope = json.loads(received["Body"])
    assert json.loads(envelope["Message"]) == message()
    assert envelope["Subject"] == "[CRITICAL] Disk / at 97% on web-1"
    attributes = {k: v["Value"] for k, v in envelope["MessageAttributes"].items()}
    assert attributes == {"severity": "critical", "status": "firing", "host": "web-1"}


def test_email_text_reads_as_a_message_not_json():
    subject, body = email_text(
        parse_alert_message(message(status="resolved", resolved_at="2026-11-21T12:30:00+00:00"))
    )
    assert subject == "[RESOLVED] Disk / at 97% on web-1"
    assert "Resolved: 2026-11-21 12:30 UTC" in body
    assert "(it fired for 30m)" in body
    assert "Runbook: https://runbooks.example/disk" in body
    assert "{" not in body
    long_subject, _ = email_text(parse_alert_message(message(summary="x" * 300)))
    assert len(long_subject) <= 100


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"version": 2}, "version must be 1"),
        ({"status": "open"}, "status must be one of firing, resolved"),
        ({"dedup_key": ""}, "dedup_key must be a non-empty string"),
        ({"value": float("nan")}, "value must be a finite number or null"),
        ({"labels": {"a": 1}}, "labels must be an object of strings"),
        ({"links": [{"text": "no href"}]}, "links must be a list"),
    ],
)
def test_messages_that_are_not_contract_2_are_named(change, complaint):
    with pytest.raises(InvalidAlertMessage, match=complaint):
        parse_alert_message(message(**change))
