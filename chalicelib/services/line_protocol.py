"""The InfluxDB-compatible write use-case: line protocol in, stored like a JSON post.

Each line's `host` tag makes it a heartbeat for that host, and the same
token scopes, host items and latest values apply: the validated request
goes through `IngestService.store`.
"""

from __future__ import annotations

from datetime import datetime

from chalicelib.core.errors import InvalidPayload
from chalicelib.core.instants import ms_of_instant
from chalicelib.core.limits import Limits
from chalicelib.core.line_protocol import parse_line_protocol
from chalicelib.core.models import InfluxApi
from chalicelib.core.tokens import Principal
from chalicelib.services.ingest import IngestResult, IngestService

# A partial-write message names this many refused lines, then counts the rest.
NAMED_REJECTIONS = 10


class LineProtocolIngest:
    def __init__(self, ingest: IngestService, limits: Limits) -> None:
        self.ingest = ingest
        self.limits = limits

    def write(
        self,
        principal: Principal,
        raw: bytes,
        content_encoding: str | None,
        *,
        precision: str | None,
        api: InfluxApi,
        now: datetime,
    ) -> IngestResult:
        """Store the valid lines of one write. Raises IngestError (4xx) or BackendUnavailable."""
        parsed = parse_line_protocol(
            raw,
            content_encoding,
            precision=precision,
            api=api,
            limits=self.limits,
            now_ms=ms_of_instant(now),
        )
        if api is InfluxApi.V2 and not parsed.reports and not parsed.rejected:
            raise InvalidPayload("writing requires points")  # InfluxDB 2.x's answer to no lines
        return self.ingest.store(principal, parsed, now)


def partial_write_message(result: IngestResult) -> str:
    """InfluxDB's partial-write message, naming each refused line and why."""
    refused = sorted(result.rejected, key=lambda r: r.index)
    named = "; ".join(r.reason for r in refused[:NAMED_REJECTIONS])
    more = len(refused) - NAMED_REJECTIONS
    if more > 0:
        named += f"; and {more} more"
    return f"partial write: {named} dropped={len(refused)}"
