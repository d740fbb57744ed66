"""The app's Lambdas, run in-process for the local stack: moto runs no Lambda.

The scheduled `evaluate` handler is invoked with an EventBridge "Scheduled Event", and
each notifier handler with SNS events built from what the alerts topic delivered to an
SQS queue subscribed with that notifier's filter policy (chalicelib/routing.py). So a
local alert takes the path it takes in AWS: the same handlers, the same routing.

A notifier invocation that raises is Lambda's "retry": the message stays on its queue
and comes back after the queue's visibility timeout; after MAX_RETRY_ATTEMPTS retries
the queue's redrive policy moves it to the failure queue, as Lambda's on-failure
destination would. A message is deleted only after its handler returned.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.core.notify import Channel
from chalicelib.routing import (
    HANDLERS,
    MAX_RETRY_ATTEMPTS,
    function_name,
    subscription_attributes,
    subscriptions,
)
from chalicelib.settings import Settings

LOCAL_ACCOUNT = "123456789012"  # the embedded AWS's account
EVALUATE = "evaluate"


def scheduled_event(rule_arn: str, region: str, now: datetime) -> dict[str, Any]:
    """What EventBridge sends a function on a `rate(...)` schedule."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": LOCAL_ACCOUNT,
        "time": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


def sns_record(envelope: dict[str, Any], subscription_arn: str) -> dict[str, Any]:
    """One record of an SNS → Lambda event, from the JSON envelope SNS gives an SQS (or
    HTTP) subscriber. The two spell the certificate and unsubscribe keys differently."""
    return {
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": subscription_arn,
        "Sns": {
            "Type": envelope.get("Type", "Notification"),
            "MessageId": envelope.get("MessageId"),
            "TopicArn": envelope.get("TopicArn"),
            "Subject": envelope.get("Subject"),
            "Message": envelope.get("Message"),
            "Timestamp": envelope.get("Timestamp"),
            "SignatureVersion": envelope.get("SignatureVersion", "1"),
            "Signature": envelope.get("Signature", ""),
            "SigningCertUrl": envelope.get("SigningCertURL", ""),
            "UnsubscribeUrl": envelope.get("UnsubscribeURL", ""),
            "MessageAttributes": envelope.get("MessageAttributes", {}),
        },
    }


class LocalLambdas:
    """Calls a handler of the chalice app the way the Lambda runtime would: the handler's
    own entry point, an event and a context."""

    def __init__(self, app: Any, stage: str) -> None:
        self.app = app
        self.stage = stage

    def invoke(self, handler: str, event: dict[str, Any], timeout_s: int = 30) -> Any:
        from chalice.local import LambdaContext

        context = LambdaContext(
            f"fleetpulse-{self.stage}-{handler}", memory_size=512, max_runtime_ms=timeout_s * 1000
        )
        return self.app.handler_map[handler](event, context)


@dataclass(frozen=True, slots=True)
class NotifierQueue:
    """An SQS queue standing in for one notifier Lambda's subscription to the topic."""

    channel: Channel
    handler: str
    queue_url: str
    subscription_arn: str


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: list[str] = field(default_factory=list)


def subscribe_notifier_queues(
    settings: Settings, clients: Any, retry_after_s: int
) -> list[NotifierQueue]:
    """One queue per notifier, subscribed to the alerts topic with that notifier's filter
    policy; failed messages come back after `retry_after_s` and, after Lambda's number of
    retries, go to the failure queue (`settings.notify.failure_queue`)."""
    assert settings.alerts_topic_arn, "the local stack always has an alerts topic"
    sqs, sns = clients.get("sqs"), clients.get("sns")
    failure_url = sqs.create_queue(QueueName=settings.notify.failure_queue)["QueueUrl"]
    failure_arn = _queue_arn(sqs, failure_url)
    queues = []
    for sub in subscriptions(settings):
        if sub["protocol"] != "lambda":
            continue  # email: the embedded AWS sends no mail
        channel = Channel(sub["channel"])
        url = sqs.create_queue(
            QueueName=function_name(settings.stage, channel),
            Attributes={
                "VisibilityTimeout": str(retry_after_s),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": failure_arn, "maxReceiveCount": MAX_RETRY_ATTEMPTS + 1}
                ),
            },
        )["QueueUrl"]
        subscription = sns.subscribe(
            TopicArn=settings.alerts_topic_arn,
            Protocol="sqs",
            Endpoint=_queue_arn(sqs, url),
            Attributes=subscription_attributes(sub),
            ReturnSubscriptionArn=True,
        )
        queues.append(
            NotifierQueue(channel, HANDLERS[channel], url, subscription["SubscriptionArn"])
        )
    return queues


def _queue_arn(sqs: Any, url: str) -> str:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])


def deliver(
    sqs: Any,
    queue: NotifierQueue,
    lambdas: LocalLambdas,
    on_failure: Callable[[NotifierQueue, int, Exception], None] | None = None,
) -> DeliveryReport:
    """Invoke the queue's notifier for every message waiting on it, one SNS event each
    (Lambda gives an SNS-triggered function one record per invocation)."""
    report = DeliveryReport()
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue.queue_url,
            MaxNumberOfMessages=10,
            AttributeNames=["ApproximateReceiveCount"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not messages:
            return report
        for m in messages:
            try:
                envelope = json.loads(m["Body"])
                event = {"Records": [sns_record(envelope, queue.subscription_arn)]}
                lambdas.invoke(queue.handler, event)
            except Exception as exc:
                # Left on the queue: it is received again once its visibility timeout ends.
                attempt = int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
                report.failed.append(f"{queue.handler}: {exc}")
                if on_failure is not None:
                    on_failure(queue, attempt, exc)
                continue
            sqs.delete_message(QueueUrl=queue.queue_url, ReceiptHandle=m["ReceiptHandle"])
            report.delivered += 1


@dataclass(frozen=True, slots=True)
class EventRuleQueue:
    """An SQS queue standing in for one EventBridge rule's Lambda target."""

    handler: str
    rule: str
    queue_url: str


def route_event_rules(
    app: Any, stage: str, clients: Any, retry_after_s: int
) -> list[EventRuleQueue]:
    """For each `on_cw_event` handler of the app, the rule chalice would make on the default
    bus (same pattern), with a queue as its target: what is put on the bus reaches the
    queue, and `deliver_events` hands it to the handler."""
    from chalice.app import CloudWatchEventConfig

    events, sqs = clients.get("events"), clients.get("sqs")
    routes = []
    for source in app.event_sources:
        if not isinstance(source, CloudWatchEventConfig):
            continue
        rule = f"fleetpulse-{stage}-{source.name}"
        url = sqs.create_queue(
            QueueName=f"{rule}-events", Attributes={"VisibilityTimeout": str(retry_after_s)}
        )["QueueUrl"]
        events.put_rule(Name=rule, EventPattern=json.dumps(source.event_pattern), State="ENABLED")
        events.put_targets(Rule=rule, Targets=[{"Id": "local", "Arn": _queue_arn(sqs, url)}])
        routes.append(EventRuleQueue(source.name, rule, url))
    return routes


def deliver_events(
    sqs: Any,
    route: EventRuleQueue,
    lambdas: LocalLambdas,
    on_failure: Callable[[str, Exception], None] | None = None,
) -> DeliveryReport:
    """Invoke the rule's handler with every event waiting on its queue, one each (EventBridge
    invokes a target once per event). A failed one comes back after the visibility timeout."""
    report = DeliveryReport()
    while True:
        messages = sqs.receive_message(
            QueueUrl=route.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            return report
        for m in messages:
            try:
                # moto leaves out `account`, which EventBridge always sets (chalice reads it).
                event = {"account": LOCAL_ACCOUNT, **json.loads(m["Body"])}
                lambdas.invoke(route.handler, event)
            except Exception as exc:
                report.failed.append(f"{route.handler}: {exc}")
                if on_failure is not None:
                    on_failure(route.handler, exc)
                continue
            sqs.delete_message(QueueUrl=route.queue_url, ReceiptHandle=m["ReceiptHandle"])
            report.delivered += 1
