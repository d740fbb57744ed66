"""The notify use-case: one SNS alert message to one channel, as a pipeline of small stages.

    parse → route → claim (dedup in the ledger) → decide → send (with retries) → record

`deliver` runs the last four as named stages, each a small method that hands
the delivery on or ends it (in the manner of Alertmanager's notify pipeline).

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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from chalicelib.core.alert_message import AlertStatus, Severity, parse_alert_message
from chalicelib.core.errors import AttemptFailed
from chalicelib.core.notify import (
    Channel,
    Claim,
    ClaimStatus,
    Delivery,
    DeliveryError,
    DeliveryRecord,
    DeliveryState,
    Notification,
    Outcome,
)
from chalicelib.core.notify import (
    decide as skip_reason,
)
from chalicelib.core.ports import DeliveryLedger, Notifier
from chalicelib.core.retry import GaveUp, Retrier, RetryPolicy

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
        """Run one delivery through the stages: claim, decide, send, record.

        Each stage either hands the delivery on or ends it with an Outcome
        (raising DeliveryIncomplete when it must be retried later).
        `fleetpulse notify test` calls this directly, with the handler's
        configuration and secrets. Raises BackendUnavailable when the ledger
        cannot be reached.
        """
        job = _Job(delivery)
        for stage in (self.claim, self.decide, self.send, self.record):
            outcome = stage(job)
            if outcome is not None:
                return outcome
        raise AssertionError("the record stage always ends a delivery")  # pragma: no cover

    def claim(self, job: _Job) -> Outcome | None:
        """Take the delivery in the ledger, with a lease; a repeat of a finished one ends here."""
        claim = self.ledger.claim(job.delivery, self.clock(), self.lease)
        if claim.status is ClaimStatus.DONE:
            logger.info(
                "already delivered: a repeat of this SNS message does nothing",
                extra={**job.context, "state": claim.previous},
            )
            return Outcome.DUPLICATE
        if claim.status is ClaimStatus.BUSY:
            raise DeliveryIncomplete(
                f"{job.delivery.channel} delivery of message {job.delivery.message_id} "
                "is in progress elsewhere"
            )
        job.claim = claim
        return None

    def decide(self, job: _Job) -> Outcome | None:
        """Whether to send, from what the channel already got for the episode (core.notify)."""
        message, channel = job.delivery.message, job.delivery.channel
        episode = self.ledger.episode(message["dedup_key"], channel)
        skip = skip_reason(channel, message, episode)
        if skip is not None:
            job.record = DeliveryRecord(skip)
            return None
        firing = message["status"] == AlertStatus.FIRING
        job.notification = Notification(
            message, self.clock(), reminder=episode.firing_sent if firing else 0
        )
        return None

    def send(self, job: _Job) -> Outcome | None:
        """Send with retries under the RetryPolicy; what happened becomes the job's record."""
        if job.notification is None:
            return None  # decided not to send
        notification = job.notification
        retrier = Retrier(self.policy, self.monotonic, self.sleep, self.jitter)

        def heard(attempt: int, error: AttemptFailed, wait: timedelta | None) -> None:
            logger.warning(
                "delivery attempt failed",
                extra={
                    **job.context,
                    "attempt": attempt,
                    "reason": error.reason,
                    "response_code": getattr(error, "status", None),
                    "permanent": getattr(error, "permanent", False),
                    "retry_in_s": wait.total_seconds() if wait is not None else None,
                },
            )

        try:
            notifier = self.notifiers[job.delivery.channel]()
            status, attempts = retrier.run(lambda left: notifier.send(notification, left), heard)
            job.record = DeliveryRecord(DeliveryState.SENT, attempts, status)
        except GaveUp as exc:
            error = exc.error
            permanent = isinstance(error, DeliveryError) and error.permanent
            job.record = DeliveryRecord(
                DeliveryState.FAILED_PERMANENT if permanent else DeliveryState.FAILED_TEMPORARY,
                exc.attempts,
                getattr(error, "status", None),
                error.reason,
            )
        except Exception as exc:
            # A bug, not a refusal: free the claim now so Lambda's retry can
            # take it, instead of waiting for the lease to run out.
            failed = DeliveryRecord(DeliveryState.FAILED_TEMPORARY, error=type(exc).__name__)
            self.ledger.finish(job.delivery, job.claimed, failed, self.clock())
            raise
        return None

    def record(self, job: _Job) -> Outcome:
        """Finish the claim with how the delivery ended; a temporary failure fails the
        invocation, so Lambda delivers the message again."""
        record = job.record
        assert record is not None
        self.ledger.finish(job.delivery, job.claimed, record, self.clock())
        context, channel = job.context, job.delivery.channel
        if record.state in (DeliveryState.SKIPPED_REMINDER, DeliveryState.SKIPPED_STALE):
            logger.info("not sent: " + record.state.value, extra=context)
            return Outcome(record.state.value)
        result = {**context, "attempts": record.attempts, "response_code": record.response_code}
        if record.state is DeliveryState.SENT:
            assert job.notification is not None
            logger.info(
                "notification sent", extra={**result, "reminder": job.notification.reminder}
            )
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


@dataclass(slots=True)
class _Job:
    """One delivery on its way through the stages: what each stage found so far."""

    delivery: Delivery
    claim: Claim | None = None
    notification: Notification | None = None  # None after decide: not to be sent
    record: DeliveryRecord | None = None  # how it ended, for the ledger

    @property
    def claimed(self) -> Claim:
        assert self.claim is not None
        return self.claim

    @property
    def context(self) -> dict[str, Any]:
        """What every log line about this delivery carries."""
        message = self.delivery.message
        return {
            "channel": self.delivery.channel.value,
            "message_id": self.delivery.message_id,
            "dedup_key": message["dedup_key"],
            "alert_status": message["status"],
            "severity": message["severity"],
        }
