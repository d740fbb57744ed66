"""What each accepted post records about its host: heartbeat facts, latest values, history.

Only facts are stored (last seen, interval, latest value of each series);
whether a host is late is derived from them at evaluation time. A small ring
of CPU and memory, one slot per minute for the last hour, rides along in the
same write so the status page can draw each host without a metric query.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from chalicelib.core.instants import ms_of_instant
from chalicelib.core.models import HeartbeatState, HostReport

DEFAULT_INTERVAL_S = 60
# A point older than this when it arrives is history (a backlog being
# delivered), not the host's current state: it must not move thresholds.
LATEST_MAX_AGE = timedelta(minutes=10)

# The history ring: slot = minute of the hour, so it never holds more than 60
# entries and an entry is overwritten an hour after it was written.
HISTORY_SLOTS = 60
HISTORY_STEP_MS = 60_000
HISTORY_SPAN = timedelta(milliseconds=HISTORY_SLOTS * HISTORY_STEP_MS)
# A point stamped further ahead than this is a skewed clock, not the current minute:
# its slot would be read back as the future.
HISTORY_MAX_AHEAD = timedelta(minutes=1)
# Where the busy CPU and the used memory are, in what the agent sends, in
# what Telegraf sends through the line-protocol routes, and in what collectd
# sends with ValuesPercentage (docs/INGEST.md) (series key, field).
CPU_IDLE_FIELDS = (
    ("cpu|cpu=total", "idle"),
    ("cpu|cpu=cpu-total", "usage_idle"),
    ("cpu|type=percent|type_instance=idle", "value"),
)
MEMORY_USED_FIELDS = (
    ("memory", "used_percent"),
    ("mem", "used_percent"),
    ("memory|type=percent|type_instance=used", "value"),
)


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


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One minute of a host's history: busy CPU and used memory, in percent."""

    time_ms: int
    cpu: float | None
    mem: float | None

    @property
    def slot(self) -> int:
        return history_slot(self.time_ms)


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
    history: HistoryPoint | None = None


def history_slot(time_ms: int) -> int:
    """The ring slot of the minute `time_ms` falls in."""
    return (time_ms // HISTORY_STEP_MS) % HISTORY_SLOTS


def _percent(value: float | int | bool | None) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    return round(min(max(float(value), 0.0), 100.0), 1)


def history_point(series: Mapping[str, SeriesLatest], now: datetime) -> HistoryPoint | None:
    """The history entry a post's newest values give, or None when it has neither CPU nor
    memory, or when they are not fresh (older than LATEST_MAX_AGE, or ahead of `now`)."""
    now_ms = ms_of_instant(now)
    oldest_ms = now_ms - int(LATEST_MAX_AGE.total_seconds() * 1000)
    newest_ms = now_ms + int(HISTORY_MAX_AHEAD.total_seconds() * 1000)

    def fresh(candidates: tuple[tuple[str, str], ...]) -> tuple[int, float] | None:
        for key, name in candidates:
            s = series.get(key)
            if s is None or not oldest_ms <= s.time_ms <= newest_ms:
                continue
            value = _percent(s.fields.get(name))
            if value is not None:
                return s.time_ms, value
        return None

    idle = fresh(CPU_IDLE_FIELDS)
    used = fresh(MEMORY_USED_FIELDS)
    if idle is None and used is None:
        return None
    return HistoryPoint(
        max(found[0] for found in (idle, used) if found is not None),
        round(100.0 - idle[1], 1) if idle is not None else None,
        used[1] if used is not None else None,
    )


def recent_history(points: Iterable[HistoryPoint], now: datetime) -> list[HistoryPoint]:
    """The ring's entries of the last hour, oldest first (older ones are leftovers of a
    silent hour, waiting to be overwritten)."""
    now_ms = ms_of_instant(now)
    oldest_ms = now_ms - int(HISTORY_SPAN.total_seconds() * 1000)
    newest_ms = now_ms + int(HISTORY_MAX_AHEAD.total_seconds() * 1000)
    return sorted(
        (p for p in points if oldest_ms < p.time_ms <= newest_ms), key=lambda p: p.time_ms
    )


def series_key(measurement: str, tags: dict[str, str]) -> str:
    """A stable name for a series: `disk|device=sda1|mount=/`."""
    if not tags:
        return measurement
    return measurement + "|" + "|".join(f"{k}={tags[k]}" for k in sorted(tags))


def host_update(report: HostReport, now: datetime) -> HostUpdate:
    """What `report`, received at `now`, changes about its host."""
    now_ms = ms_of_instant(now)
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
        history=history_point(series, now),
    )
