"""The routing filter policies, delivered through moto SNS to SQS queues standing in for
each channel: every severity goes where docs/NOTIFICATIONS.md says."""

from __future__ import annotations

import json

import boto3
import pytest

from chalicelib.adapters.sns import SNSAlertPublisher
from chalicelib.core.alert_message import Severity
from chalicelib.routing import (
    event_invoke_configs,
    filter_policy,
    subscription_attributes,
    subscriptions,
)
from chalicelib.settings import Settings
from tests.support.alerts import alert, resolved


def route_through_sns(settings: Settings) -> dict[str, set[tuple[str, str]]]:
    """Publish every severity, firing and resolved; return what each subscription received."""
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="fleetpulse-dev-alerts")["TopicArn"]
    queues = {}
    for n, sub in enumerate(subscriptions(settings)):
        url = sqs.create_queue(QueueName=f"{sub['channel']}-{n}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(
            TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes=subscription_attributes(sub)
        )
        queues[f"{sub['channel']}:{sub['endpoint']}"] = url
    publisher = SNSAlertPublisher(sns, topic)
    for severity in Severity:
        publisher.publish(alert(severity=severity.value))
        publisher.publish(resolved(severity=severity.value))
    received: dict[str, set[tuple[str, str]]] = {}
    for name, url in queues.items():
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        bodies = [json.loads(json.loads(m["Body"])["Message"]) for m in messages]
        received[name] = {(b["severity"], b["status"]) for b in bodies}
    return received


def both(*severities: str) -> set[tuple[str, str]]:
    return {(s, status) for s in severities for status in ("firing", "resolved")}


def test_default_routing_pages_critical_and_tells_slack_everything(aws):
    settings = Settings.from_env({"FLEETPULSE_ALERT_EMAILS": "ops@example.com,sre@example.com"})
    assert route_through_sns(settings) == {
        "slack:fleetpulse-dev-notify_slack": both("critical", "warning", "info"),
        "pagerduty:fleetpulse-dev-notify_pagerduty": both("critical"),
        "email:ops@example.com": both("critical", "warning"),
        "email:sre@example.com": both("critical", "warning"),
    }


def test_routing_follows_the_settings(aws):
    settings = Settings.from_env(
        {
            "FLEETPULSE_ROUTE_SLACK": "warning,info",
            "FLEETPULSE_ROUTE_PAGERDUTY": "none",
            "FLEETPULSE_ROUTE_EMAIL": "critical",
            "FLEETPULSE_ALERT_EMAILS": "ops@example.com",
        }
    )
    assert route_through_sns(settings) == {
        "slack:fleetpulse-dev-notify_slack": both("warning", "info"),
        "pagerduty:fleetpulse-dev-notify_pagerduty": set(),
        "email:ops@example.com": both("critical"),
    }


def test_no_email_subscription_without_addresses_or_severities():
    assert [s["channel"] for s in subscriptions(Settings.from_env({}))] == ["slack", "pagerduty"]
    muted = Settings.from_env(
        {"FLEETPULSE_ALERT_EMAILS": "a@example.com", "FLEETPULSE_ROUTE_EMAIL": "none"}
    )
    assert [s["channel"] for s in subscriptions(muted)] == ["slack", "pagerduty"]


@pytest.mark.parametrize(
    ("severities", "policy"),
    [
        ({Severity.INFO, Severity.CRITICAL}, {"severity": ["critical", "info"]}),
        (set(), {"severity": [{"exists": False}]}),
    ],
)
def test_filter_policies_are_stable(severities, policy):
    assert filter_policy(frozenset(severities)) == policy


def test_notifier_retries_end_in_the_failure_queue():
    arn = "arn:aws:sqs:us-east-1:123456789012:fleetpulse-prod-notify-failures"
    configs = event_invoke_configs(Settings.from_env({"FLEETPULSE_STAGE": "prod"}), arn)
    assert [c["FunctionName"] for c in configs] == [
        "fleetpulse-prod-notify_slack",
        "fleetpulse-prod-notify_pagerduty",
    ]
    assert all(c["DestinationConfig"] == {"OnFailure": {"Destination": arn}} for c in configs)
    assert all(c["MaximumRetryAttempts"] == 2 for c in configs)
