"""The interfaces the use-cases need from the outside world; adapters implement them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from chalicelib.core.alert_message import AlertMessage
from chalicelib.core.hosts import HostUpdate
from chalicelib.core.models import HostReport, Rejection
from chalicelib.core.notify import Channel, Claim, Delivery, DeliveryRecord, Episode, Notification
from chalicelib.core.tokens import TokenRecord


class BackendUnavailable(Exception):
    """A store failed in a way a retry may cure: the collector answers 503."""


class MetricStore(Protocol):
    """Where points go: Timestream by default, InfluxDB as the second backend."""

    def write(self, reports: Sequence[HostReport]) -> list[Rejection]:
        """Store every point and event of `reports`; return those the store refused.

        A repeat of an identical point is success. Raises BackendUnavailable
        when nothing can be said about what was stored (the caller retries all).
        """
        ...


class TokenStore(Protocol):
    def get(self, token_id: str) -> TokenRecord | None: ...

    def put(self, record: TokenRecord) -> None: ...

    def list(self) -> list[TokenRecord]: ...

    def revoke(self, token_id: str, at: datetime) -> bool:
        """Mark the token revoked; False when there is no such token."""
        ...

    def touch(self, token_id: str, at: datetime) -> None:
        """Record that the token was used (best effort)."""
        ...


class HostStore(Protocol):
    def record(self, update: HostUpdate) -> None:
        """Apply one post's heartbeat facts and latest values to the host's item."""
        ...


class AlertPublisher(Protocol):
    def publish(self, message: AlertMessage) -> None:
        """Publish one alert transition (Contract 2). Raises BackendUnavailable on failure."""
        ...


class Notifier(Protocol):
    """Delivers a notification to one channel (Slack, PagerDuty)."""

    @property
    def channel(self) -> Channel: ...

    def send(self, notification: Notification, budget: timedelta) -> int:
        """Deliver within `budget`; return the HTTP status of the accepted request.

        Raises DeliveryError saying whether the failure is permanent; its
        reason never contains the channel's secret.
        """
        ...


class DeliveryLedger(Protocol):
    """Every notification, per (SNS message id, channel), and what each episode was sent.

    SNS delivers at least once; claiming a delivery makes the second copy of
    a message a no-op, and two concurrent copies post once.
    """

    def claim(self, delivery: Delivery, now: datetime, lease: timedelta) -> Claim:
        """Claim the delivery for `lease`. An expired lease (a crashed invocation) or
        a temporary failure can be claimed again; a finished delivery cannot.
        Raises BackendUnavailable when the ledger cannot be reached."""
        ...

    def finish(
        self, delivery: Delivery, claim: Claim, record: DeliveryRecord, now: datetime
    ) -> None:
        """Record how the delivery ended and release the lease; when it was sent,
        count it on the episode (firing or resolved)."""
        ...

    def episode(self, dedup_key: str, channel: Channel) -> Episode:
        """What `channel` has already been sent for the episode `dedup_key`."""
        ...

    def delivery(self, message_id: str, channel: Channel) -> dict[str, Any] | None:
        """The recorded delivery as plain values (state, attempts, response_code, error...)."""
        ...
