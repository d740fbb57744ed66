"""The collectd write_http use-case: value lists in, stored like a JSON post.

Rates of derive and counter values need each series' previous value: the
`RateMemo` lives for the container's life, and learns a post's values only
once its points are stored, so a post retried after a 503 computes the
same rates again (chalicelib/core/collectd.py says why a memo per container
is sound).
"""

from __future__ import annotations

from datetime import datetime

from chalicelib.core.collectd import RateMemo, parse_collectd
from chalicelib.core.instants import ms_of_instant
from chalicelib.core.limits import Limits
from chalicelib.core.tokens import Principal
from chalicelib.services.ingest import IngestResult, IngestService


class CollectdIngest:
    def __init__(self, ingest: IngestService, limits: Limits) -> None:
        self.ingest = ingest
        self.limits = limits
        self.memo = RateMemo()

    def write(
        self,
        principal: Principal,
        raw: bytes,
        content_type: str | None,
        content_encoding: str | None,
        *,
        user_agent: str | None,
        now: datetime,
    ) -> IngestResult:
        """Store one post's valid values. Raises IngestError (4xx) or BackendUnavailable."""
        post = parse_collectd(
            raw,
            content_type,
            content_encoding,
            user_agent=user_agent,
            limits=self.limits,
            now_ms=ms_of_instant(now),
            memo=self.memo,
        )
        result = self.ingest.store(principal, post.parsed, now)
        self.memo.update(post.memo_changes)
        return result
