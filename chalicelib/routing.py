"""Which alerts reach which channel: the alerts topic's subscriptions and their filter policies.

Routing is by the `severity` message attribute every alert message carries
(Contract 2). These definitions are the one source for the deploy step that
applies them (`fleetpulse notify routing --apply`), the infrastructure
template and the tests; the notifier Lambdas also check the same settings, so
a missing filter policy costs an invocation, never a wrong page.
"""

from __future__ import annotations

import json
from typing import Any, TypedDict

from chalicelib.core.alert_message import Severity
from chalicelib.core.notify import Channel
from chalicelib.settings import Settings

APP_NAME = "fleetpulse"
# The notifier Lambdas' handler names in app.py; chalice names a function
# <app>-<stage>-<handler>.
HANDLERS = {Channel.SLACK: "notify_slack", Channel.PAGERDUTY: "notify_pagerduty"}
FILTER_POLICY_SCOPE = "MessageAttributes"
# Lambda's asynchronous invocation settings for the notifiers: two retries
# (about 1 and 3 minutes later), then the on-failure queue keeps the event.
MAX_RETRY_ATTEMPTS = 2
MAX_EVENT_AGE_SECONDS = 6 * 3600


class Subscription(TypedDict):
    channel: str
    protocol: str  # "lambda" or "email"
    endpoint: str  # a function name, or an email address
    filter_policy: dict[str, Any]


def filter_policy(severities: frozenset[Severity]) -> dict[str, Any]:
    """The SNS filter policy that lets exactly `severities` through.

    No severity at all is written as "the attribute does not exist", which no
    alert message matches: the subscription stays, and receives nothing.
    """
    if not severities:
        return {"severity": [{"exists": False}]}
    return {"severity": [s.value for s in Severity if s in severities]}


def function_name(stage: str, channel: Channel) -> str:
    return f"{APP_NAME}-{stage}-{HANDLERS[channel]}"


def subscriptions(settings: Settings) -> list[Subscription]:
    """Every subscription the alerts topic should have, with its filter policy."""
    routes = settings.notify.routes
    subs = [
        Subscription(
            channel=channel.value,
            protocol="lambda",
            endpoint=function_name(settings.stage, channel),
            filter_policy=filter_policy(routes.get(channel, frozenset())),
        )
        for channel in HANDLERS
    ]
    email = routes.get(Channel.EMAIL, frozenset())
    if email:
        subs += [
            Subscription(
                channel=Channel.EMAIL.value,
                protocol="email",
                endpoint=address,
                filter_policy=filter_policy(email),
            )
            for address in settings.notify.alert_emails
        ]
    return subs


def subscription_attributes(subscription: Subscription) -> dict[str, str]:
    """The attributes to set on the subscription (SNS Subscribe / SetSubscriptionAttributes,
    or the FilterPolicy and FilterPolicyScope of an AWS::SNS::Subscription)."""
    return {
        "FilterPolicy": json.dumps(subscription["filter_policy"]),
        "FilterPolicyScope": FILTER_POLICY_SCOPE,
    }


def event_invoke_configs(settings: Settings, failure_queue_arn: str) -> list[dict[str, Any]]:
    """PutFunctionEventInvokeConfig requests for the notifier Lambdas: bounded retries,
    then the on-failure queue (`settings.notify.failure_queue`) keeps the event."""
    return [
        {
            "FunctionName": function_name(settings.stage, channel),
            "MaximumRetryAttempts": MAX_RETRY_ATTEMPTS,
            "MaximumEventAgeInSeconds": MAX_EVENT_AGE_SECONDS,
            "DestinationConfig": {"OnFailure": {"Destination": failure_queue_arn}},
        }
        for channel in HANDLERS
    ]
