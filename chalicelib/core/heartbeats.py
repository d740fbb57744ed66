"""Host heartbeats: what is stored about a host, and the status derived from it and now.

Stored states are few: `up` (the collector, on every post), `retired` (the
collector, on a graceful shutdown), `down` (the evaluator, with a
compare-and-swap on `last_seen_at`) and `paused` (an operator, until the host
posts again). `late` and `new` are never stored: they follow from last seen,
the host's interval and now, like healthchecks' grace period.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from chalicelib.core.durations import parse_duration
from chalicelib.core.hosts import (
    DEFAULT_INTERVAL_S,
    HistoryPoint,
    HostState,
    SeriesLatest,
    ServiceLatest,
)

# A host tag that sets the host's own grace (`heartbeat_grace=10m`).
HOST_GRACE_TAG = "heartbeat_grace"
DEFAULT_INTERVAL = timedelta(seconds=DEFAULT_INTERVAL_S)


class HostStatus(enum.StrEnum):
    """A host's status as shown and evaluated: the stored state, refined by time."""

    NEW = "new"  # one post so far, not late
    UP = "up"
    LATE = "late"  # past its interval, within its grace
    DOWN = "down"  # past interval + grace
    RETIRED = "retired"  # shut down gracefully; forgotten after the retention
    PAUSED = "paused"  # an operator paused it; the next post resumes it


@dataclass(slots=True)
class HostSnapshot:
    """One host as the evaluator reads it: heartbeat facts and latest values."""

    host: str
    state: HostState
    last_seen_at: datetime
    first_seen_at: datetime
    interval: timedelta = DEFAULT_INTERVAL
    tags: dict[str, str] = field(default_factory=dict)
    agent_name: str | None = None
    agent_version: str | None = None
    retired_at: datetime | None = None
    # Why EC2 retired or paused the host (chalicelib.core.lifecycle), until it posts again.
    lifecycle: str | None = None
    # The watched series (core/hosts.py): only those some threshold rule acts on.
    series: dict[str, SeriesLatest] = field(default_factory=dict)
    services: dict[str, ServiceLatest] = field(default_factory=dict)
    # Read only when asked for (the status page): the evaluator never looks at it.
    history: tuple[HistoryPoint, ...] = ()
    series_count: int = 0  # how many series the host's last post carried


def host_grace_tag(tags: dict[str, str]) -> timedelta | None:
    """The grace a host asks for through its `heartbeat_grace` tag; None when absent or unreadable."""
    raw = tags.get(HOST_GRACE_TAG)
    if raw is None:
        return None
    try:
        return parse_duration(raw)
    except ValueError:
        return None


def host_status(host: HostSnapshot, now: datetime, grace: timedelta) -> HostStatus:
    """The host's status at `now` given its grace (see module docstring)."""
    if host.state is HostState.RETIRED:
        return HostStatus.RETIRED
    if host.state is HostState.PAUSED:
        return HostStatus.PAUSED
    silent = now - host.last_seen_at
    if silent > host.interval + grace:
        return HostStatus.DOWN
    if silent > host.interval:
        return HostStatus.LATE
    if host.first_seen_at >= host.last_seen_at:
        return HostStatus.NEW
    return HostStatus.UP
