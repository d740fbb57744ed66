"""The Prometheus remote_write use-case: a WriteRequest in, stored like a JSON post.

Each host named in the write is heard (a heartbeat), with the sender as its
agent and the interval learned from its samples' spacing (`Cadence`, kept
for the container's life); token scopes, host items and latest values are
JSON ingest's, through `IngestService.store`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from chalicelib.core.instants import ms_of_instant
from chalicelib.core.limits import Limits
from chalicelib.core.remote_write import Cadence, parse_remote_write
from chalicelib.core.tokens import Principal
from chalicelib.services.ingest import IngestResult, IngestService

# The reply names this many refused samples, then counts the rest.
NAMED_REJECTIONS = 10


@dataclass(slots=True)
class RemoteWriteResult:
    result: IngestResult
    samples: int
    skipped: int


class RemoteWriteIngest:
    def __init__(self, ingest: IngestService, limits: Limits) -> None:
        self.ingest = ingest
        self.limits = limits
        self.cadence = Cadence()

    def write(
        self,
        principal: Principal,
        raw: bytes,
        content_type: str | None,
        content_encoding: str | None,
        *,
        user_agent: str | None,
        now: datetime,
    ) -> RemoteWriteResult:
        """Store the valid samples of one write. Raises IngestError (4xx) or BackendUnavailable."""
        decoded = parse_remote_write(
            raw,
            content_type,
            content_encoding,
            user_agent=user_agent,
            limits=self.limits,
            now_ms=ms_of_instant(now),
            cadence=self.cadence,
        )
        result = self.ingest.store(principal, decoded.parsed, now, silent=decoded.silent_hosts)
        return RemoteWriteResult(result, decoded.samples, decoded.skipped)


def rejection_message(result: IngestResult) -> str:
    """What a 400 after a partial write says: each refused sample or series and why."""
    refused = sorted(result.rejected, key=lambda r: r.index)
    named = "; ".join(r.reason for r in refused[:NAMED_REJECTIONS])
    more = len(refused) - NAMED_REJECTIONS
    if more > 0:
        named += f"; and {more} more"
    return (
        f"stored {result.accepted_points} points; refused {len(refused)} (not retryable): {named}"
    )
