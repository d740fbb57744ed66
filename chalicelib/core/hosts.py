"""What each accepted post records about its host: heartbeat facts and latest values.

Only facts are stored (last seen, interval, latest value of each series);
whether a host is late is derived from them at evaluation time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from chalicelib.core.models import HeartbeatState, HostReport

DEFAULT_INTERVAL_S = 60
# A point older than this when it arrives is history (a backlog being
# delivered), not the host's current state: it must not move thresholds.
LATEST_MAX_AGE = timedelta(minutes=10)


class HostState(enum.StrEnum):
    NEW = "new"
    UP = "up"
    DOWN = "down"
    RETIRED = "retired"
    PAUSED = "paused"


@dataclass(frozen=True, slots=True)
class SeriesLatest:
    """The newest values of one series (a measurement and its tags) on a host."""

    measurement: str
    tags: dict[str, str]
    time_ms: int
    fields: dict[str, float | int | bool]


@dataclass(frozen=True, slots=True)
class ServiceLatest:
    """The newest status a service on the host reported."""

    status: str
    time_ms: int
    ttl_ms: int | None
    description: str
    value: float | None


@dataclass(slots=True)
class HostUpdate:
    """Everything one post changes on the host's item, applied in one write."""

    host: str
    seen_at: datetime
    state: HostState
    interval_s: int | None
    tags: dict[str, str]
    agent_name: str | None
    agent_version: str | None
    series: dict[str, SeriesLatest] = field(default_factory=dict)
    services: dict[str, ServiceLatest] = field(default_factory=dict)


def series_key(measurement: str, tags: dict[str, str]) -> str:
    """A stable name for a series: `disk|device=sda1|mount=/`."""
    if not tags:
        return measurement
    return measurement + "|" + "|".join(f"{k}={tags[k]}" for k in sorted(tags))


def host_update(report: HostReport, now: datetime) -> HostUpdate:
    """What `report`, received at `now`, changes about its host."""
    now_ms = int(now.timestamp() * 1000)
    oldest_ms = now_ms - int(LATEST_MAX_AGE.total_seconds() * 1000)
    series: dict[str, SeriesLatest] = {}
    for p in report.points:
        if p.time_ms < oldest_ms:
            continue
        key = series_key(p.measurement, p.tags)
        known = series.get(key)
        if known is not None and known.time_ms > p.time_ms:
            continue
        numbers = {k: v for k, v in p.fields.items() if not isinstance(v, str)}
        if numbers:
            series[key] = SeriesLatest(p.measurement, p.tags, p.time_ms, numbers)
    services: dict[str, ServiceLatest] = {}
    for e in report.events:
        known_service = services.get(e.service)
        if known_service is not None and known_service.time_ms > e.time_ms:
            continue
        services[e.service] = ServiceLatest(
            e.status.value, e.time_ms, e.ttl_ms, e.description, e.value
        )
    retired = report.state is HeartbeatState.SHUTDOWN
    return HostUpdate(
        host=report.host,
        seen_at=now,
        state=HostState.RETIRED if retired else HostState.UP,
        interval_s=report.interval_s,
        tags=report.tags,
        agent_name=report.agent.name if report.agent else None,
        agent_version=report.agent.version if report.agent else None,
        series=series,
        services=services,
    )
