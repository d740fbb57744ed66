"""`fleetpulse notify test|routing` against moto and the local Slack and PagerDuty servers."""

from __future__ import annotations

import json

import pytest

from chalicelib.core.notify import Channel
from fleetpulse.cli import main
from fleetpulse.resources import create_all
from tests.support.notify import ROUTING_KEY, SLACK_SECRET_PATH, notify_settings, put_secrets
from tests.support.webhooks import SLACK_NO_CHANNEL


@pytest.fixture
def deployed(aws, slack, pagerduty, monkeypatch):
    """What `notify test` needs in an account: the ledger table and the two secrets."""
    monkeypatch.setenv("FLEETPULSE_PAGERDUTY_URL", pagerduty.url + "/v2/enqueue")
    settings = notify_settings(pagerduty.url)
    from chalicelib.adapters.aws import AwsClients

    create_all(settings, AwsClients(region="us-east-1"))
    put_secrets(settings, slack.url)
    return settings


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


def ledger_item(message_id: str, channel: str) -> dict:
    import boto3

    item = boto3.client("dynamodb").get_item(
        TableName="fleetpulse-dev-ledger",
        Key={"id": {"S": "msg#" + message_id}, "channel": {"S": channel}},
    )
    return item.get("Item", {})


def test_slack_test_alert_goes_through_the_real_path_and_says_it_is_a_test(deployed, slack, capsys):
    status, out, _ = run(capsys, "notify", "test", "--channel", "slack")

    assert status == 0
    [request] = slack.received
    assert request.path == SLACK_SECRET_PATH  # the webhook URL came from SSM
    body = request.json
    assert body["text"].startswith("[CRITICAL] [TEST] fleetpulse test notification to slack (dev)")
    context = body["blocks"][-1]["elements"]
    assert context[0]["text"].startswith("Test notification")
    assert "`test=true`" in context[1]["text"]
    assert "slack: message sent (HTTP 200, 1 attempt)" in out
    dedup_key = out.split("dedup_key: ")[1].strip()
    assert dedup_key.startswith("fleetpulse/dev/notify-test/")
    alert_id = "test-" + dedup_key.rsplit("/", 1)[1]
    assert ledger_item(f"{alert_id}-firing", "slack")["state"] == {"S": "sent"}


def test_pagerduty_test_alert_is_triggered_then_resolved(deployed, pagerduty, capsys):
    status, out, _ = run(capsys, "notify", "test", "--channel", "pagerduty", "--severity", "info")
    run(capsys, "notify", "test", "--channel", "pagerduty")

    assert status == 0
    trigger, resolve, second_trigger, _ = pagerduty.bodies()
    assert trigger["event_action"] == "trigger"
    assert trigger["routing_key"] == ROUTING_KEY
    assert trigger["payload"]["summary"].startswith("[TEST] ")
    assert trigger["payload"]["severity"] == "info"
    assert trigger["payload"]["custom_details"]["labels"] == {"test": "true"}
    assert resolve == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": trigger["dedup_key"],
    }
    assert second_trigger["dedup_key"] != trigger["dedup_key"]  # every test is its own incident
    assert "pagerduty: trigger sent (HTTP 202, 1 attempt)" in out
    assert "pagerduty: resolve sent (HTTP 202, 1 attempt)" in out
    assert ROUTING_KEY not in out


def test_a_refused_test_alert_fails_the_command_with_the_reason(deployed, slack, capsys):
    slack.script(SLACK_NO_CHANNEL)
    status, _, err = run(capsys, "notify", "test", "--channel", "slack")
    assert status == 1
    assert "slack message refused: Slack answered HTTP 404: channel_not_found" in err
    assert "s3cr3t" not in err


def test_a_missing_secret_is_named(deployed, capsys):
    import boto3

    boto3.client("ssm").delete_parameter(Name="/fleetpulse/dev/slack-webhook-url")
    status, _, err = run(capsys, "notify", "test", "--channel", "slack")
    assert status == 1
    assert "SSM parameter /fleetpulse/dev/slack-webhook-url does not exist" in err


def sqs_reader(topic_arn: str):
    import boto3

    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    queue = sqs.create_queue(QueueName="reader")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)

    def read() -> list[dict]:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
        return [json.loads(json.loads(m["Body"])["Message"]) for m in messages]

    return read


def test_via_sns_publishes_the_test_alert_and_its_resolve_on_the_topic(deployed, capsys, slack):
    import boto3

    topic = boto3.client("sns").create_topic(Name="fleetpulse-dev-alerts")["TopicArn"]
    read = sqs_reader(topic)
    status, out, _ = run(
        capsys,
        "notify",
        "test",
        "--channel",
        "slack",
        "--severity",
        "warning",
        "--via-sns",
        "--resolve-after",
        "0",
    )

    assert status == 0
    firing, resolved = sorted(read(), key=lambda m: m["status"])
    assert firing["status"] == "firing"
    assert resolved["status"] == "resolved"
    assert firing["dedup_key"] == resolved["dedup_key"]
    assert firing["labels"] == {"test": "true"}
    assert firing["summary"].startswith("[TEST]")
    assert "routed to: slack, email" in out
    assert slack.received == []  # the topic delivers it, not the command


def test_routing_apply_sets_the_filter_policies_after_deploy(aws, capsys, monkeypatch):
    import boto3

    monkeypatch.setenv("FLEETPULSE_ALERT_EMAILS", "ops@example.com")
    sns = boto3.client("sns")
    topic = sns.create_topic(Name="fleetpulse-dev-alerts")["TopicArn"]
    function = "arn:aws:lambda:us-east-1:123456789012:function:fleetpulse-dev-{}"
    # What `chalice deploy` leaves: subscriptions without a filter policy.
    for handler in ("notify_slack", "notify_pagerduty"):
        sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=function.format(handler))

    status, out, _ = run(capsys, "notify", "routing", "--apply")

    assert status == 1  # the email subscription is not there yet
    assert "not subscribed yet: email email ops@example.com" in out
    policies = {}
    for sub in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]:
        attributes = sns.get_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"])
        policies[sub["Endpoint"].rsplit("-", 1)[1]] = (
            json.loads(attributes["Attributes"]["FilterPolicy"]),
            attributes["Attributes"]["FilterPolicyScope"],
        )
    assert policies == {
        "notify_slack": ({"severity": ["critical", "warning", "info"]}, "MessageAttributes"),
        "notify_pagerduty": ({"severity": ["critical"]}, "MessageAttributes"),
    }


def test_routing_shows_what_goes_where(capsys, monkeypatch):
    monkeypatch.setenv("FLEETPULSE_ROUTE_PAGERDUTY", "critical,warning")
    status, out, _ = run(capsys, "notify", "routing")
    assert status == 0
    assert "pagerduty  lambda    fleetpulse-dev-notify_pagerduty  critical, warning" in out
    _, out, _ = run(capsys, "notify", "routing", "--json")
    [slack, pagerduty] = json.loads(out)
    assert pagerduty["attributes"] == {
        "FilterPolicy": '{"severity": ["critical", "warning"]}',
        "FilterPolicyScope": "MessageAttributes",
    }
    assert slack["channel"] == Channel.SLACK
