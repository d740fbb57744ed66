"""`fleetpulse notify test|routing`: check the delivery path, show and apply the routing."""

from __future__ import annotations

import argparse
import json
import time
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chalicelib.core.alert_message import AlertMessage, Severity
from chalicelib.core.notify import Channel, Delivery, Outcome
from fleetpulse.commands import common

if TYPE_CHECKING:
    from chalicelib.wiring import Services

DELIVERED_CHANNELS = (Channel.SLACK.value, Channel.PAGERDUTY.value)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("notify", help="test notification channels, show routing")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    test = actions.add_parser(
        "test",
        help="send a test alert through the real delivery path",
        description=(
            "Sends a Contract 2 alert marked as a test ([TEST] summary, label test=true, a"
            " unique dedup_key) through the notifier's own code, configuration and secrets,"
            " and records it in the ledger. PagerDuty also gets the resolve, so no incident"
            " stays open."
        ),
    )
    test.add_argument("--channel", required=True, choices=DELIVERED_CHANNELS)
    test.add_argument(
        "--severity",
        default=Severity.CRITICAL.value,
        choices=[s.value for s in Severity],
        help="severity of the test alert (default critical: PagerDuty pages at high urgency)",
    )
    test.add_argument(
        "--via-sns",
        action="store_true",
        help="publish on the alerts topic instead: every subscription whose routing takes the"
        " severity receives it (and then its resolve)",
    )
    test.add_argument(
        "--resolve-after",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="with --via-sns: wait this long before publishing the resolve (default 10)",
    )
    test.set_defaults(handler=send_test)

    routing = actions.add_parser(
        "routing",
        help="show the alerts topic's subscriptions and filter policies; --apply sets them",
    )
    routing.add_argument("--json", action="store_true", help="print the definitions as JSON")
    routing.add_argument(
        "--apply",
        action="store_true",
        help="set the filter policies on the topic's existing subscriptions (after chalice deploy)",
    )
    routing.set_defaults(handler=routing_command)


def make_test_alert(stage: str, channel: str, severity: str, now: datetime) -> AlertMessage:
    """A Contract 2 firing alert that says it is a test, with its own dedup_key."""
    from chalicelib.core.alert_message import parse_alert_message

    uid = uuid.uuid4().hex[:12]
    return parse_alert_message(
        {
            "version": 1,
            "alert_id": f"test-{uid}",
            "dedup_key": f"fleetpulse/{stage}/notify-test/{uid}",
            "status": "firing",
            "severity": severity,
            "kind": "event",
            "host": "fleetpulse-notify-test",
            "rule": "notify-test",
            "summary": f"[TEST] fleetpulse test notification to {channel} ({stage})",
            "description": (
                "Sent by `fleetpulse notify test` to check the delivery path. No action needed."
            ),
            "value": None,
            "threshold": None,
            "labels": {"test": "true"},
            "started_at": now.isoformat(),
            "resolved_at": None,
            "links": [],
        }
    )


def resolution(message: AlertMessage, now: datetime) -> AlertMessage:
    resolved = dict(message, status="resolved", resolved_at=now.isoformat())
    return resolved  # type: ignore[return-value]


def send_test(args: argparse.Namespace) -> int:
    svc = common.services(args)
    message = make_test_alert(svc.settings.stage, args.channel, args.severity, svc.clock())
    if args.via_sns:
        return _test_via_sns(args, message)
    channel = Channel(args.channel)
    _deliver(svc, channel, message, "trigger" if channel is Channel.PAGERDUTY else "message")
    if channel is Channel.PAGERDUTY:
        _deliver(svc, channel, resolution(message, svc.clock()), "resolve")
    print(f"dedup_key: {message['dedup_key']}")
    return 0


def _deliver(svc: Services, channel: Channel, message: AlertMessage, what: str) -> None:
    from chalicelib.services.notify import DeliveryIncomplete

    message_id = f"{message['alert_id']}-{message['status']}"
    try:
        with common.backend_errors("ledger table"):
            outcome = svc.notifications.deliver(Delivery(message_id, channel, message))
    except DeliveryIncomplete as exc:
        raise common.CommandError(f"{channel} {what} not delivered: {exc}") from None
    record = svc.ledger.delivery(message_id, channel) or {}
    attempts = int(record.get("attempts", 0))
    if outcome is Outcome.FAILED_PERMANENT:
        raise common.CommandError(
            f"{channel} {what} refused: {record.get('error')} (not retried; see"
            " docs/NOTIFICATIONS.md, Troubleshooting)"
        )
    print(
        f"{channel}: {what} {outcome} (HTTP {record.get('response_code')},"
        f" {attempts} attempt{'s' if attempts != 1 else ''})"
    )


def _test_via_sns(args: argparse.Namespace, message: AlertMessage) -> int:
    from chalicelib.adapters.sns import SNSAlertPublisher

    svc = common.services(args)
    routes = svc.settings.notify.routes
    with common.backend_errors("alerts topic"):
        topic_arn = _topic_arn(svc)
        publisher = SNSAlertPublisher(svc.clients.get("sns"), topic_arn, svc.clock)
        publisher.publish(message)
        takers = [c.value for c in Channel if Severity(message["severity"]) in routes.get(c, ())]
        print(f"published a {message['severity']} test alert on {topic_arn}")
        print(f"  routed to: {', '.join(takers) or 'no channel'} (see `fleetpulse notify routing`)")
        if args.resolve_after > 0:
            print(f"  publishing its resolve in {args.resolve_after:g} s...")
            time.sleep(args.resolve_after)
        publisher.publish(resolution(message, svc.clock()))
    print("published the resolve")
    print(f"dedup_key: {message['dedup_key']} (the ledger records each delivery)")
    return 0


def _topic_arn(svc: Services) -> str:
    """The alerts topic's ARN: configured, given as the topic, or found by name."""
    settings = svc.settings
    if settings.alerts_topic_arn:
        return str(settings.alerts_topic_arn)
    topic = settings.notify.alerts_topic
    if topic.startswith("arn:"):
        return str(topic)
    sns = svc.clients.get("sns")
    for page in sns.get_paginator("list_topics").paginate():
        for entry in page.get("Topics", []):
            if entry["TopicArn"].rsplit(":", 1)[-1] == topic:
                return str(entry["TopicArn"])
    raise common.CommandError(f"no SNS topic named {topic} (set FLEETPULSE_ALERTS_TOPIC_ARN)")


def routing_command(args: argparse.Namespace) -> int:
    from chalicelib.routing import subscription_attributes, subscriptions

    settings = common.settings(args)
    subs = subscriptions(settings)
    if args.json:
        print(
            json.dumps(
                [{**sub, "attributes": subscription_attributes(sub)} for sub in subs], indent=2
            )
        )
    elif not args.apply:
        rows = [("CHANNEL", "PROTOCOL", "ENDPOINT", "SEVERITIES")]
        for sub in subs:
            severities = sub["filter_policy"]["severity"]
            shown = ", ".join(s for s in severities if isinstance(s, str)) or "none"
            rows.append((sub["channel"], sub["protocol"], sub["endpoint"], shown))
        common.print_table(rows)
    if args.apply:
        return _apply_routing(args, subs)
    return 0


def _apply_routing(args: argparse.Namespace, subs: list[Any]) -> int:
    from fleetpulse.deploy import apply_routing

    svc = common.services(args)
    with common.backend_errors("alerts topic"):
        missing = apply_routing(svc.clients.get("sns"), _topic_arn(svc), subs, print)
    return 1 if missing else 0
