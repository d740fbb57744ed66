"""The interfaces the use-cases need from the outside world; adapters implement them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from chalicelib.core.alert_message import AlertMessage
from chalicelib.core.hosts import HostUpdate
from chalicelib.core.models import HostReport, Rejection
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
