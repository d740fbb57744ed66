"""Errors the ingest path raises, each naming what is wrong and where; and a failed attempt
at an outside call (what chalicelib.core.retry retries)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import timedelta


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a request, located by its JSON path (`points[3].fields.user`)."""

    path: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class IngestError(Exception):
    """A request the collector refuses as a whole. Never a server fault: always a 4xx."""

    status = 400

    def __init__(self, error: str, details: list[Problem] | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.details = details or []

    def as_json(self) -> dict[str, object]:
        body: dict[str, object] = {"error": self.error}
        if self.details:
            body["details"] = [p.as_json() for p in self.details]
        return body


class InvalidPayload(IngestError):
    status = 400


class PayloadTooLarge(IngestError):
    status = 413


class UnsupportedMediaType(IngestError):
    status = 415


class Unauthorized(IngestError):
    status = 401


class Forbidden(IngestError):
    status = 403


class NotFound(IngestError):
    status = 404


class AttemptFailed(Exception):
    """One attempt failed. `retryable` False: another attempt cannot help, stop now.
    `retry_after`: the wait the server asked for, if it said."""

    def __init__(
        self, reason: str, *, retryable: bool = True, retry_after: timedelta | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self._retryable = retryable
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self._retryable
