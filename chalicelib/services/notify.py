"""The notify use-case: one SNS alert message to one channel, as a pipeline of small stages.

    parse → route → dedup (claim in the ledger) → decide → deliver with retries → record

A message that is not Contract 2 is logged and dropped: retrying cannot fix
it. A permanent refusal (400, 403, 404, 410) is logged and recorded, not
retried. A temporary failure that outlasts the retries raises
DeliveryIncomplete, so the Lambda invocation fails and Lambda's asynchronous
retries (then the on-failure queue) keep the message.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from chalicelib.core.alert_message import AlertStatus, Severity, parse_alert_message
from chalicelib.core.notify import (
    Channel,
    ClaimStatus,
    Delivery,
    DeliveryError,
    DeliveryRecord,
    DeliveryState,
    Notification,
    Outcome,
    RetryPolicy,
    decide,
)
from chalicelib.core.ports import DeliveryLedger, Notifier

logger = Logger(child=True)

LOGGED_MESSAGE_MAX = 500


class DeliveryIncomplete(Exception):
    """The message must be delivered again later: the invocation fails on purpose."""


class NotifyService:
    def __init__(
        self,
        ledger: DeliveryLedger,
        notifiers: Mapping[Channel, Callable[[], Notifier]],
        routes: Mapping[Channel, frozenset[Severity]],
        policy: RetryPolicy,
        *,
        lease: timedelta,
        clock: Callable[[], datetime],
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.ledger = ledger
        self.notifiers = notifiers
        self.routes = routes
        self.policy = policy
        self.lease = lease
        self.clock = clock
        self.sleep = sleep
        self.monotonic = monotonic
        self.jitter = jitter

    def handle_sns_event(self, event: Mapping[str, Any], channel: Channel) -> list[Outcome]:
        """Deliver each record of an SNS → Lambda event to `channel`.

        Every record is tried; then DeliveryIncomplete is raised if any must be
        retried (the ones that went out are no-ops on the retry).
        """
        outcomes: list[Outcome] = []
        incomplete: list[DeliveryIncomplete] = []
        for record in event.get("Records") or []:
            try:
                outcomes.append(self.handle_sns_record(record.get("Sns") or {}, channel))
            except DeliveryIncomplete as exc:
                incomplete.append(exc)
        if incomplete:
            raise incomplete[0]
        return outcomes

    def handle_sns_record(self, sns: Mapping[str, Any], channel: Channel) -> Outcome:
        message_id = sns.get("MessageId")
        raw = sns.get("Message")
        try:
            if not isinstance(message_id, str) or not message_id:
                raise ValueError("the SNS record has no MessageId")
            if not isinstance(raw, str):
                raise ValueError("the SNS record has no Message")
            message = parse_alert_message(json.loads(raw))
        except ValueError as exc:  # JSONDecodeError and InvalidAlertMessage included
            logger.error(
                "dropping a message that is not an alert message (Contract 2)",
                extra={
                    "channel": channel.value,
                    "message_id": message_id,
                    "reason": str(exc),
                    "message_start": str(raw)[:LOGGED_MESSAGE_MAX],
                },
            )
            return Outcome.INVALID
        if Severity(message["severity"]) not in self.routes.get(channel, frozenset()):
            # The subscription's filter policy should have kept it away; this
            # guard holds when the policy is missing or being changed.
            logger.info(
                "severity not routed to this channel",
                extra={
                    "channel": channel.value,
                    "message_id": message_id,
                    "severity": message["severity"],
                },
            )
            return Outcome.NOT_ROUTED
        return self.deliver(Delivery(message_id, channel, message))

    def deliver(self, delivery: Delivery) -> Outcome:
        """Claim, decide, send with retries and record one delivery.

        `fleetpulse notify test` calls this directly, with the handler's
        configuration and secrets. Raises DeliveryIncomplete when it must be
        retried later, BackendUnavailable when the ledger cannot be reached.
        """
        message, channel = delivery.message, delivery.channel
        context = {
            "channel": channel.value,
            "message_id": delivery.message_id,
            "dedup_key": message["dedup_key"],
            "alert_status": message["status"],
            "severity": message["severity"],
        }
        claim = self.ledger.claim(delivery, self.clock(), self.lease)
        if claim.status is ClaimStatus.DONE:
            logger.info(
                "already delivered: a repeat of this SNS message does nothing",
                extra={**context, "state": claim.previous},
            )
            return Outcome.DUPLICATE
        if claim.status is ClaimStatus.BUSY:
            raise DeliveryIncomplete(
                f"{channel} delivery of message {delivery.message_id} is in progress elsewhere"
            )

        episode = self.ledger.episode(message["dedup_key"], channel)
        skip = decide(channel, message, episode)
        if skip is not None:
            self.ledger.finish(delivery, claim, DeliveryRecord(skip), self.clock())
            logger.info("not sent: " + skip.value, extra=context)
            return Outcome(skip.value)

        firing = message["status"] == AlertStatus.FIRING
        notification = Notification(
            message, self.clock(), reminder=episode.firing_sent if firing else 0
        )
        try:
            record = self._send_with_retries(self.notifiers[channel](), notification, context)
        except Exception as exc:
            # A bug, not a refusal: free the claim now so Lambda's retry can
            # take it, instead of waiting for the lease to run out.
            failed = DeliveryRecord(DeliveryState.FAILED_TEMPORARY, error=type(exc).__name__)
            self.ledger.finish(delivery, claim, failed, self.clock())
            raise
        self.ledger.finish(delivery, claim, record, self.clock())
        result = {**context, "attempts": record.attempts, "response_code": record.response_code}
        if record.state is DeliveryState.SENT:
            logger.info("notification sent", extra={**result, "reminder": notification.reminder})
            return Outcome.SENT
        if record.state is DeliveryState.FAILED_PERMANENT:
            logger.error(
                "notification refused; not retrying (fix the cause, see docs/NOTIFICATIONS.md)",
                extra={**result, "reason": record.error},
            )
            return Outcome.FAILED_PERMANENT
        logger.error(
            "notification failed; failing the invocation so Lambda retries it",
            extra={**result, "reason": record.error},
        )
        raise DeliveryIncomplete(f"{channel}: {record.error}")

    def _send_with_retries(
        self, notifier: Notifier, notification: Notification, context: dict[str, Any]
    ) -> DeliveryRecord:
        started = self.monotonic()

        def elapsed() -> timedelta:
            return timedelta(seconds=self.monotonic() - started)

        attempt = 0
        while True:
            attempt += 1
            try:
                status = notifier.send(notification, self.policy.deadline - elapsed())
            except DeliveryError as exc:
                wait = self.policy.wait_before_retry(attempt, exc, elapsed(), self.jitter())
                logger.warning(
                    "delivery attempt failed",
                    extra={
                        **context,
                        "attempt": attempt,
                        "reason": exc.reason,
                        "response_code": exc.status,
                        "permanent": exc.permanent,
                        "retry_in_s": wait.total_seconds() if wait is not None else None,
                    },
                )
                if wait is None:
                    state = (
                        DeliveryState.FAILED_PERMANENT
                        if exc.permanent
                        else DeliveryState.FAILED_TEMPORARY
                    )
                    return DeliveryRecord(state, attempt, exc.status, exc.reason)
                self.sleep(wait.total_seconds())
                continue
            return DeliveryRecord(DeliveryState.SENT, attempt, status)
