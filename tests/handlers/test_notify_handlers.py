"""The Slack and PagerDuty Lambdas end to end: chalice's test client with generated SNS
events, a DynamoDB ledger and SSM secrets on moto, and real local HTTP servers."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest

from chalicelib.core.notify import Channel, Notification, Outcome
from chalicelib.core.render import pagerduty_event, slack_message
from chalicelib.services.notify import DeliveryIncomplete
from tests.support.alerts import alert, resolved, sns_event
from tests.support.notify import (
    NOW,
    ROUTING_KEY,
    SLACK_SECRET_PATH,
    FakeTime,
    build_services,
    notify_settings,
)
from tests.support.webhooks import (
    PAGERDUTY_INVALID,
    PAGERDUTY_THROTTLED,
    SERVER_ERROR,
    SLACK_INVALID_PAYLOAD,
    SLACK_NO_CHANNEL,
    SLACK_RATE_LIMITED,
    Reply,
)

# Sending


def test_slack_receives_the_block_kit_message_on_the_secret_webhook(rig):
    rig.invoke("notify_slack", sns_event(alert(), "m-1"))

    [request] = rig.slack.received
    assert request.path == SLACK_SECRET_PATH
    assert request.headers["Content-Type"] == "application/json"
    assert request.json == slack_message(Notification(alert(), NOW))
    assert request.json["text"] == "[CRITICAL] Disk / at 97% on web-1"
    assert set(request.json) == {"text", "blocks"}
    record = rig.delivery("m-1", "slack")
    assert record["state"] == "sent"
    assert record["attempts"] == 1
    assert record["response_code"] == 200
    assert record["dedup_key"] == "fleetpulse/web-1/disk-full/1"
    assert record["expires_at"] == int(NOW.timestamp()) + 30 * 86400


def test_pagerduty_receives_a_trigger_with_the_routing_key_from_ssm(rig):
    rig.invoke("notify_pagerduty", sns_event(alert(), "m-1"))

    [request] = rig.pagerduty.received
    assert request.path == "/v2/enqueue"
    assert request.json == pagerduty_event(Notification(alert(), NOW), ROUTING_KEY)
    assert request.json["routing_key"] == ROUTING_KEY
    assert request.json["event_action"] == "trigger"
    assert request.json["dedup_key"] == "fleetpulse/web-1/disk-full/1"
    assert request.json["payload"]["severity"] == "critical"
    assert request.json["client"] == "fleetpulse"
    assert rig.delivery("m-1", "pagerduty")["response_code"] == 202


def test_resolved_alert_resolves_the_pagerduty_incident_and_reads_as_resolved_on_slack(rig):
    rig.invoke("notify_pagerduty", sns_event(alert(), "m-1"))
    rig.invoke("notify_pagerduty", sns_event(resolved(), "m-2"))
    rig.invoke("notify_slack", sns_event(resolved(), "m-2"))

    trigger, resolve = rig.pagerduty.bodies()
    assert resolve == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": trigger["dedup_key"],
    }
    [posted] = rig.slack.bodies()
    assert posted["text"].startswith("[RESOLVED]")
    assert posted["blocks"][0]["text"]["text"].startswith(":white_check_mark: [RESOLVED]")


# At least once in, once out


@pytest.mark.parametrize("function", ["notify_slack", "notify_pagerduty"])
def test_a_duplicate_sns_delivery_posts_once(rig, function):
    event = sns_event(alert(), "same-message-id")
    rig.invoke(function, event)
    rig.invoke(function, event)

    server = rig.slack if function == "notify_slack" else rig.pagerduty
    assert len(server.received) == 1
    channel = "slack" if function == "notify_slack" else "pagerduty"
    assert rig.delivery("same-message-id", channel)["claims"] == 1


def test_concurrent_copies_of_a_message_post_once(rig):
    rig.slack.script(Reply(200, "ok", hang=0.3))
    event = sns_event(alert(), "racing")
    errors: list[Exception] = []

    def deliver() -> None:
        try:
            rig.services.notifications.handle_sns_event(event, Channel.SLACK)
        except DeliveryIncomplete as exc:
            errors.append(exc)

    # The second copy arrives while the first is waiting for Slack's reply.
    # (DynamoDB makes the conditional claim atomic; moto does not serialise
    # truly simultaneous requests, so the test does not race them.)
    first = threading.Thread(target=deliver)
    first.start()
    deadline = time.monotonic() + 5
    while not rig.slack.received and time.monotonic() < deadline:
        time.sleep(0.01)
    deliver()
    first.join()

    assert len(rig.slack.received) == 1
    # The copy that found the delivery in progress fails, so Lambda retries it
    # later; by then the ledger says "sent" and the retry does nothing.
    assert len(errors) == 1
    assert "in progress" in str(errors[0])
    rig.invoke("notify_slack", event)
    assert len(rig.slack.received) == 1


def test_a_reminder_reposts_to_slack_but_never_opens_a_second_incident(rig):
    first, reminder = sns_event(alert(), "m-1"), sns_event(alert(), "m-2")
    for event in (first, reminder):
        rig.invoke("notify_slack", event)
        rig.invoke("notify_pagerduty", event)

    [trigger] = rig.pagerduty.bodies()
    assert trigger["event_action"] == "trigger"
    assert rig.delivery("m-2", "pagerduty")["state"] == "skipped-reminder"
    original, again = rig.slack.bodies()
    assert "still firing" in again["blocks"][0]["text"]["text"]
    assert "(reminder 1)" in again["blocks"][1]["text"]["text"]
    assert "still firing" not in original["blocks"][0]["text"]["text"]

    rig.invoke("notify_pagerduty", sns_event(resolved(), "m-3"))
    assert [b["dedup_key"] for b in rig.pagerduty.bodies()] == [trigger["dedup_key"]] * 2


def test_a_reminder_triggers_pagerduty_when_the_first_trigger_never_got_through(rig):
    rig.pagerduty.script(PAGERDUTY_INVALID)
    rig.invoke("notify_pagerduty", sns_event(alert(), "m-1"))
    rig.invoke("notify_pagerduty", sns_event(alert(), "m-2"))

    first, second = rig.pagerduty.bodies()
    assert first["dedup_key"] == second["dedup_key"]
    assert rig.delivery("m-2", "pagerduty")["state"] == "sent"


def test_a_trigger_that_arrives_after_the_resolve_is_not_sent(rig):
    rig.invoke("notify_pagerduty", sns_event(alert(), "m-1"))
    rig.invoke("notify_pagerduty", sns_event(resolved(), "m-3"))
    rig.invoke("notify_pagerduty", sns_event(alert(), "m-2"))  # late (delayed by retries)

    assert [b["event_action"] for b in rig.pagerduty.bodies()] == ["trigger", "resolve"]
    assert rig.delivery("m-2", "pagerduty")["state"] == "skipped-stale"


# Temporary and permanent failures


def test_slack_429_is_retried_after_the_retry_after_it_asked_for(rig):
    rig.slack.script(SLACK_RATE_LIMITED)
    rig.invoke("notify_slack", sns_event(alert(), "m-1"))

    assert len(rig.slack.received) == 2
    assert rig.slack.received[0].json == rig.slack.received[1].json
    assert rig.time.slept == [2.0]
    assert rig.delivery("m-1", "slack")["attempts"] == 2


@pytest.mark.parametrize(
    ("function", "failure"),
    [
        ("notify_slack", SERVER_ERROR),
        ("notify_pagerduty", SERVER_ERROR),
        ("notify_pagerduty", PAGERDUTY_THROTTLED),
    ],
)
def test_server_errors_and_throttling_are_retried_with_backoff(rig, function, failure):
    server = rig.slack if function == "notify_slack" else rig.pagerduty
    server.script(failure, failure)
    rig.invoke(function, sns_event(alert(), "m-1"))

    assert len(server.received) == 3
    # Exponential (1 s, 2 s) with jitter at its middle (0.75 of the backoff).
    assert rig.time.slept == [0.75, 1.5]


@pytest.mark.parametrize(
    ("function", "refusal", "code"),
    [
        ("notify_slack", SLACK_INVALID_PAYLOAD, 400),
        ("notify_slack", SLACK_NO_CHANNEL, 404),
        ("notify_pagerduty", PAGERDUTY_INVALID, 400),
    ],
)
def test_permanent_refusals_are_logged_recorded_and_not_retried(
    rig, caplog, function, refusal, code
):
    server = rig.slack if function == "notify_slack" else rig.pagerduty
    channel = "slack" if function == "notify_slack" else "pagerduty"
    server.script(refusal)
    event = sns_event(alert(), "m-1")
    rig.invoke(function, event)  # returns: Lambda must not retry it
    rig.invoke(function, event)  # an SNS redelivery does not retry it either

    assert len(server.received) == 1
    assert rig.time.slept == []
    record = rig.delivery("m-1", channel)
    assert record["state"] == "failed-permanent"
    assert record["response_code"] == code
    assert f"HTTP {code}" in record["error"]
    [logged] = [r for r in caplog.records if r.getMessage().startswith("notification refused")]
    assert logged.levelno == logging.ERROR
    assert f"HTTP {code}" in logged.reason


def test_when_retries_run_out_the_handler_fails_and_a_lambda_retry_delivers(rig):
    rig.slack.script(*[SERVER_ERROR] * 5)
    event = sns_event(alert(), "m-1")
    with pytest.raises(DeliveryIncomplete, match="HTTP 500"):
        rig.invoke("notify_slack", event)
    assert len(rig.slack.received) == 5
    record = rig.delivery("m-1", "slack")
    assert record["state"] == "failed-temporary"
    assert record["attempts"] == 5

    rig.invoke("notify_slack", event)  # Lambda's asynchronous retry: same event
    assert len(rig.slack.received) == 6
    record = rig.delivery("m-1", "slack")
    assert record["state"] == "sent"
    assert record["attempts"] == 6
    assert record["claims"] == 2
    assert "error" not in record


def test_a_retry_after_past_the_deadline_fails_now_instead_of_waiting(rig):
    rig.slack.script(Reply(429, "rate_limited", {"Retry-After": "60"}))
    with pytest.raises(DeliveryIncomplete):
        rig.invoke("notify_slack", sns_event(alert(), "m-1"))
    assert len(rig.slack.received) == 1
    assert rig.time.slept == []


def test_a_server_that_hangs_times_out_within_the_deadline(aws, slack, pagerduty):
    settings = notify_settings(
        pagerduty.url,
        FLEETPULSE_NOTIFY_READ_TIMEOUT_SECONDS="0.2",
        FLEETPULSE_NOTIFY_DEADLINE_SECONDS="3",
    )
    fake = FakeTime(real=True)  # real time passes in the timeouts, waits are recorded
    services = build_services(settings, fake, slack.url)
    slack.script(*[Reply(200, "ok", hang=5)] * 10)

    with pytest.raises(DeliveryIncomplete, match="timed out for a reply"):
        services.notifications.handle_sns_event(sns_event(alert(), "m-1"), Channel.SLACK)
    # Timed out at 0.2 s, waited 0.75 s, timed out again at 1.15 s; a third
    # attempt after a 1.5 s wait could not finish inside the 3 s deadline.
    assert len(slack.received) == 2
    assert fake.slept == [0.75]
    record = services.ledger.delivery("m-1", Channel.SLACK)
    assert record["error"] == "Slack: timed out for a reply (0.2 s)"


def test_an_unreachable_server_is_a_temporary_failure(rig):
    rig.slack.stop()
    with pytest.raises(DeliveryIncomplete, match="ConnectionError"):
        rig.invoke("notify_slack", sns_event(alert(), "m-1"))
    assert rig.delivery("m-1", "slack")["state"] == "failed-temporary"


# Bad input, routing, configuration


@pytest.mark.parametrize("body", ["not json", json.dumps({"version": 2}), json.dumps([1, 2])])
def test_a_message_that_is_not_an_alert_is_dropped_not_retried(rig, caplog, body):
    rig.invoke("notify_slack", sns_event(body, "m-1"))
    assert rig.slack.received == []
    [logged] = [r for r in caplog.records if r.getMessage().startswith("dropping a message")]
    assert logged.message_id == "m-1"
    assert rig.delivery("m-1", "slack") is None


def test_pagerduty_ignores_severities_it_is_not_routed(rig):
    for severity in ("warning", "info"):
        outcome = rig.services.notifications.handle_sns_event(
            sns_event(alert(severity=severity)), Channel.PAGERDUTY
        )
        assert outcome == [Outcome.NOT_ROUTED]
    assert rig.pagerduty.received == []
    rig.invoke("notify_slack", sns_event(alert(severity="info")))
    assert len(rig.slack.received) == 1


def test_a_missing_secret_fails_the_invocation_and_keeps_the_message(rig, caplog):
    import boto3

    boto3.client("ssm").delete_parameter(Name="/fleetpulse/dev/pagerduty-routing-key")
    with pytest.raises(
        DeliveryIncomplete, match="/fleetpulse/dev/pagerduty-routing-key does not exist"
    ):
        rig.invoke("notify_pagerduty", sns_event(alert(), "m-1"))
    assert rig.pagerduty.received == []
    assert rig.time.slept == []
    assert rig.delivery("m-1", "pagerduty")["state"] == "failed-temporary"


def test_secrets_are_read_once_per_container(rig):
    calls = []
    ssm = rig.services.clients.get("ssm")
    ssm.meta.events.register(
        "provide-client-params.ssm.GetParameter", lambda params, **kw: calls.append(params["Name"])
    )
    for n in range(3):
        rig.invoke("notify_slack", sns_event(alert(), f"s-{n}"))
        rig.invoke("notify_pagerduty", sns_event(resolved(), f"p-{n}"))
    assert sorted(calls) == [
        "/fleetpulse/dev/pagerduty-routing-key",
        "/fleetpulse/dev/slack-webhook-url",
    ]


def test_secrets_never_reach_the_logs_or_the_ledger(rig, caplog):
    caplog.set_level(logging.DEBUG)
    echo = Reply(404, f"no_service for {SLACK_SECRET_PATH}")
    rig.slack.script(echo, Reply(500, f"oops at {SLACK_SECRET_PATH}"))
    rig.pagerduty.script(Reply(400, json.dumps({"errors": [f"bad key {ROUTING_KEY}"]})))
    rig.invoke("notify_slack", sns_event(alert(), "a"))
    rig.invoke("notify_slack", sns_event(alert(), "b"))
    rig.invoke("notify_pagerduty", sns_event(alert(), "c"))
    rig.slack.stop()  # connection refused: the exception text names the URL
    with pytest.raises(DeliveryIncomplete):
        rig.invoke("notify_slack", sns_event(alert(), "d"))

    # moto intercepts `requests` with the `responses` library, which logs each
    # URL it lets through; that logger exists only under the test harness.
    logged = "\n".join(
        r.getMessage() + json.dumps(r.__dict__, default=str)
        for r in caplog.records
        if r.name != "responses"
    )
    assert "no_service" in logged  # the refusals were logged...
    for secret in (SLACK_SECRET_PATH, ROUTING_KEY, "s3cr3tW3bh00k"):
        assert secret not in logged  # ...without the secrets
    stored = json.dumps(
        [
            rig.delivery(m, c)
            for m, c in [("a", "slack"), ("b", "slack"), ("c", "pagerduty"), ("d", "slack")]
        ],
        default=str,
    )
    assert "[redacted]" in stored
    assert "s3cr3tW3bh00k" not in stored
    assert ROUTING_KEY not in stored


def test_an_unexpected_error_frees_the_claim_for_lambdas_retry(rig):
    class Broken:
        channel = Channel.SLACK

        def send(self, notification, budget):
            raise RuntimeError("a bug")

    working = rig.services.notifications.notifiers
    rig.services.notifications.notifiers = {Channel.SLACK: Broken}
    event = sns_event(alert(), "m-1")
    with pytest.raises(RuntimeError):
        rig.invoke("notify_slack", event)
    assert rig.delivery("m-1", "slack")["state"] == "failed-temporary"
    assert rig.delivery("m-1", "slack")["error"] == "RuntimeError"

    rig.services.notifications.notifiers = working
    rig.invoke("notify_slack", event)  # the retry, right away: no lease in the way
    assert len(rig.slack.received) == 1
