"""Notifications, the pure part: channels, what a delivery may end as, what to send.

The pipeline itself (claim, decide, send, record) is in chalicelib/services/notify.py,
retrying by chalicelib/core/retry.py; the HTTP is in the Slack and PagerDuty adapters.
Time always comes in as an argument.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from chalicelib.core.alert_message import AlertMessage, AlertStatus
from chalicelib.core.errors import AttemptFailed


class Channel(enum.StrEnum):
    SLACK = "slack"
    PAGERDUTY = "pagerduty"
    EMAIL = "email"  # an SNS email subscription: routed, never delivered by our code


class DeliveryState(enum.StrEnum):
    """What the ledger records for one (SNS message, channel)."""

    CLAIMED = "claimed"  # a handler is delivering it now (until its lease runs out)
    SENT = "sent"
    FAILED_PERMANENT = "failed-permanent"  # the service refused it; retrying cannot help
    FAILED_TEMPORARY = "failed-temporary"  # retries ran out; Lambda will deliver it again
    SKIPPED_REMINDER = "skipped-reminder"  # the channel already has this episode open
    SKIPPED_STALE = "skipped-stale"  # the episode was already resolved on this channel

    @property
    def final(self) -> bool:
        """True when a second delivery of the same SNS message must do nothing."""
        return self not in (DeliveryState.CLAIMED, DeliveryState.FAILED_TEMPORARY)


class Outcome(enum.StrEnum):
    """What one handler invocation did with one SNS record (logged and counted)."""

    SENT = "sent"
    FAILED_PERMANENT = "failed-permanent"
    SKIPPED_REMINDER = "skipped-reminder"
    SKIPPED_STALE = "skipped-stale"
    DUPLICATE = "duplicate"  # this SNS message was already handled for this channel
    NOT_ROUTED = "not-routed"  # the channel's routing does not take this severity
    INVALID = "invalid"  # not a Contract 2 message: dropped, never retried


@dataclass(frozen=True, slots=True)
class Delivery:
    """One SNS message for one channel: the unit the ledger dedups and records."""

    message_id: str  # the SNS MessageId: SNS redelivers a message under the same one
    channel: Channel
    message: AlertMessage


class ClaimStatus(enum.StrEnum):
    CLAIMED = "claimed"  # this invocation delivers it
    DONE = "done"  # an earlier delivery of the same message finished: nothing to do
    BUSY = "busy"  # another invocation holds a live lease on it


@dataclass(frozen=True, slots=True)
class Claim:
    status: ClaimStatus
    claim_id: str = ""  # proves the lease when finishing
    previous: DeliveryState | None = None


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """How a claimed delivery ended, as the ledger records it."""

    state: DeliveryState
    attempts: int = 0  # HTTP attempts in this invocation
    response_code: int | None = None  # the last HTTP status received
    error: str | None = None  # never holds a secret


class DeliveryError(AttemptFailed):
    """A notifier could not deliver. `permanent` says whether trying again can help.

    The reason must never contain a secret (a webhook URL, a routing key):
    it is logged and stored in the ledger.
    """

    def __init__(
        self,
        reason: str,
        *,
        permanent: bool = False,
        status: int | None = None,
        retry_after: timedelta | None = None,
    ) -> None:
        super().__init__(reason, retryable=not permanent, retry_after=retry_after)
        self.permanent = permanent
        self.status = status


class SecretUnavailable(DeliveryError):
    """The webhook URL or routing key could not be read. Not permanent (an operator
    can fix it and the message is kept), but not worth retrying within the invocation."""

    @property
    def retryable(self) -> bool:
        return False


def classify_status(status: int) -> bool | None:
    """None for success; True when an HTTP status is a permanent failure; False for temporary.

    408, 429 and 5xx are worth retrying; every other 4xx (400 invalid payload,
    403 invalid token, 404 channel not found, 410 archived) and redirects are not.
    """
    if 200 <= status < 300:
        return None
    return not (status in (408, 429) or status >= 500)


@dataclass(frozen=True, slots=True)
class Episode:
    """What a channel has already been sent for one alert episode (one dedup_key)."""

    firing_sent: int = 0
    resolved_sent: int = 0


@dataclass(frozen=True, slots=True)
class Notification:
    """One alert message on its way to one channel, with the facts rendering needs."""

    message: AlertMessage
    now: datetime
    # How many firing notifications this channel already got for the episode:
    # 0 for the first one, 1 or more for reminders.
    reminder: int = 0

    @property
    def resolved(self) -> bool:
        return self.message["status"] == AlertStatus.RESOLVED

    @property
    def is_test(self) -> bool:
        return self.message["labels"].get("test") == "true"


def decide(channel: Channel, message: AlertMessage, episode: Episode) -> DeliveryState | None:
    """Whether to send `message` to `channel` given what the episode already got there.

    None means send. A firing message after the resolve went out is stale (SNS
    does not keep order and Lambda retries can delay a trigger by minutes): sending
    it would open an incident nothing will ever close. A repeated resolve is stale
    too. PagerDuty gets no reminders once its trigger was accepted: it re-notifies
    through its own escalation policies, and a trigger for an incident someone
    resolved by hand would open a new one.
    """
    if episode.resolved_sent:
        return DeliveryState.SKIPPED_STALE
    firing = message["status"] == AlertStatus.FIRING
    if firing and episode.firing_sent and channel is Channel.PAGERDUTY:
        return DeliveryState.SKIPPED_REMINDER
    return None
