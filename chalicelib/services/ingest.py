"""The ingest use-case: validate, authorize, store points, record heartbeats."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from chalicelib.core.errors import Forbidden, Problem
from chalicelib.core.hosts import Tracking, host_update
from chalicelib.core.ingest import ParsedRequest, parse_ingest
from chalicelib.core.instants import ms_of_instant
from chalicelib.core.limits import Limits
from chalicelib.core.models import HostReport, Rejection, Shape
from chalicelib.core.ports import HostStore, MetricStore
from chalicelib.core.rules import ThresholdRule
from chalicelib.core.tokens import Principal

# Threshold rules by measurement: what decides which series a host item watches.
Watch = Mapping[str, tuple[ThresholdRule, ...]]


@dataclass(slots=True)
class IngestResult:
    shape: Shape
    hosts: list[str]
    accepted_points: int
    accepted_events: int
    rejected: list[Rejection] = field(default_factory=list)
    untracked_series: int = 0
    untracked_services: int = 0

    @property
    def accepted(self) -> int:
        return self.accepted_points + self.accepted_events

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "accepted": self.accepted,
            "rejected": [r.as_json() for r in sorted(self.rejected, key=lambda r: r.index)],
        }
        if self.untracked_series or self.untracked_services:
            # Stored, but past what one post may add to its host's item (no latest value).
            out["untracked"] = {
                "series": self.untracked_series,
                "services": self.untracked_services,
            }
        return out


class IngestService:
    def __init__(
        self,
        metrics: MetricStore,
        hosts: HostStore,
        limits: Limits,
        tracking: Tracking | None = None,
        watch: Callable[[], Watch] | None = None,
    ) -> None:
        self.metrics = metrics
        self.hosts = hosts
        self.limits = limits
        self.tracking = tracking  # None: a host item keeps every series and service
        # The rules file's thresholds, read on the first post (None: every series is watched).
        self.watch = watch

    def ingest(
        self,
        principal: Principal,
        raw: bytes,
        content_type: str | None,
        content_encoding: str | None,
        now: datetime,
    ) -> IngestResult:
        """Accept one post. Raises an IngestError (4xx) or BackendUnavailable (503).

        Points go to the metric store first and the host item second: if the
        second fails the agent retries the whole post, and the identical
        resend of the points is harmless.
        """
        parsed = parse_ingest(raw, content_type, content_encoding, self.limits, ms_of_instant(now))
        return self.store(principal, parsed, now)

    def store(
        self,
        principal: Principal,
        parsed: ParsedRequest,
        now: datetime,
        silent: Collection[str] = (),
    ) -> IngestResult:
        """Authorize and store an already validated request (any body shape).

        Hosts in `silent` get their points stored but are not recorded as heard
        (a Prometheus target that is down still has its `up` sample sent).
        """
        refused = [
            Problem(
                "host",
                f"token {principal.token_id} ({principal.scope}) may not post for {r.host!r}",
            )
            for r in parsed.reports
            if not principal.scope.may_post_for(r.host)
        ]
        if refused:
            raise Forbidden("token not allowed for this host", refused)
        rejected = list(parsed.rejected)
        stored_rejections = self.metrics.write(parsed.reports)
        rejected.extend(stored_rejections)
        refused_paths = {r.path for r in stored_rejections}
        tracking = self.tracking
        watch = self.watch() if self.watch is not None else None
        untracked_series = untracked_services = 0
        for report in parsed.reports:
            if report.host in silent:
                continue
            update = host_update(_without(report, refused_paths), now, tracking, watch)
            untracked_series += update.untracked_series
            untracked_services += update.untracked_services
            self.hosts.record(update)
        event_paths = {e.path for r in parsed.reports for e in r.events}
        refused_events = sum(1 for r in stored_rejections if r.path in event_paths)
        points = parsed.accepted_points - (len(stored_rejections) - refused_events)
        events = parsed.accepted_events - refused_events
        return IngestResult(
            shape=parsed.shape,
            hosts=[r.host for r in parsed.reports],
            accepted_points=points,
            accepted_events=events,
            rejected=rejected,
            untracked_series=untracked_series,
            untracked_services=untracked_services,
        )


def _without(report: HostReport, paths: set[str]) -> HostReport:
    """The report minus what the store refused: refused values are not the host's state."""
    if not paths:
        return report
    return HostReport(
        host=report.host,
        tags=report.tags,
        agent=report.agent,
        interval_s=report.interval_s,
        state=report.state,
        points=[p for p in report.points if p.path not in paths],
        events=[e for e in report.events if e.path not in paths],
    )
