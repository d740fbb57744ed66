"""The interfaces the use-cases need from the outside world; adapters implement them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the ports only name these types; importing them costs cold start
    from collections.abc import Mapping, Sequence
    from datetime import datetime, timedelta

    from chalicelib.core.alert_message import AlertMessage
    from chalicelib.core.alerts import AlertRecord
    from chalicelib.core.heartbeats import HostSnapshot
    from chalicelib.core.hosts import HostState, HostUpdate, SeriesEntry
    from chalicelib.core.models import HostReport, Rejection
    from chalicelib.core.notify import (
        Channel,
        Claim,
        Delivery,
        DeliveryRecord,
        Episode,
        Notification,
    )
    from chalicelib.core.series import Series, SeriesQuery
    from chalicelib.core.silences import Silence
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

    def put(self, record: TokenRecord) -> bool:
        """Store a new token; False when its id is taken (nothing is overwritten)."""
        ...

    def list(self) -> list[TokenRecord]: ...

    def revoke(self, token_id: str, at: datetime) -> bool:
        """Mark the token revoked; False when there is no such token."""
        ...

    def touch(self, token_id: str, at: datetime) -> None:
        """Record that the token was used (best effort)."""
        ...


class HostStore(Protocol):
    def record(self, update: HostUpdate) -> None:
        """Apply one post's heartbeat facts, latest values and history slot to the host's
        item."""
        ...

    def scan(
        self, fields: Mapping[str, frozenset[str]] | None = None, *, history: bool = False
    ) -> list[HostSnapshot]:
        """Every host, read in as few requests as the store allows (one paginated scan).

        `fields`: measurement -> the only fields the caller will look at (None:
        everything); a store may leave the others out. `history`: also decode
        the CPU and memory ring (HostSnapshot.history, any order).
        """
        ...

    def snapshot(self, host: str) -> HostSnapshot | None:
        """One host, read by its key (no Scan); None when there is no such host."""
        ...

    def catalog(self, host: str) -> list[SeriesEntry]:
        """Every series the host's recent posts carried (with their numeric fields), by
        series key; empty for an unknown host."""
        ...

    def mark_down(self, host: str, last_seen_at: datetime) -> bool:
        """Set state `down` if it is still `up` and last seen at `last_seen_at`.

        False when a post landed since the read (or another evaluator got there).
        """
        ...

    def pause(self, host: str) -> bool:
        """Pause the host's heartbeat until it posts again; False when there is no such host."""
        ...

    def resume(self, host: str) -> bool:
        """Undo a pause; False when there is no such host."""
        ...

    def forget(self, host: str, last_seen_at: datetime) -> bool:
        """Delete a retired host if it is still retired and last seen at `last_seen_at`."""
        ...

    def prune(self, host: str, services: dict[str, int]) -> bool:
        """Remove stale services if they still carry the times read (name -> time_ms)."""
        ...


class InstanceDirectory(Protocol):
    """Hosts by EC2 instance id (the `instance_id` host tag), for lifecycle events."""

    def hosts_of(self, instance_id: str) -> list[str]:
        """The hosts whose latest post carried this instance id, in one request (no Scan)."""
        ...

    def end(self, host: str, instance_id: str, state: HostState, reason: str, at: datetime) -> bool:
        """Set the host's state (retired or paused, at `at`) with the reason, if it still
        belongs to the instance; False when it does not (another instance took the name)."""
        ...


class AlertStore(Protocol):
    """Alert records; every write is a compare-and-swap on `version`."""

    def scan(self) -> list[AlertRecord]:
        """Every stored alert (open, and resolved within the retention), strongly consistent."""
        ...

    def put(self, record: AlertRecord, expected_version: int | None) -> bool:
        """Write `record` if the stored version is `expected_version` (None: absent).

        False when it is not: another evaluator won. Raises BackendUnavailable.
        """
        ...

    def delete(self, alert_id: str, expected_version: int) -> bool:
        """Delete the record if its version is still `expected_version`."""
        ...


class SilenceStore(Protocol):
    def list(self) -> list[Silence]: ...

    def put(self, silence: Silence) -> bool:
        """Store a new silence; False when its id is taken (nothing is overwritten)."""
        ...

    def delete(self, silence_id: str) -> bool:
        """False when there is no such silence."""
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


class MetricReader(Protocol):
    """History read back: InfluxQL for InfluxDB, Query SQL for Timestream."""

    def read(self, query: SeriesQuery) -> list[Series]:
        """The series `query` asks for, oldest point first, one per tag set (or host).

        Raises BackendUnavailable when the store cannot answer, and InvalidPayload
        (TooManySeries) when the answer would hold more than MAX_SERIES series.
        """
        ...
