"""What each accepted post records about its host: heartbeat facts, watched values, history.

Only facts are stored (last seen, interval, the latest values that matter);
whether a host is late is derived from them at evaluation time. Every post
writes the host item, and every evaluation reads it, so it holds only what
thresholds need: the series some rule would act on (breaching, or in a
recovery band), with only the fields rules read. A series that breaches
nothing is absent, which evaluation reads as "condition not holding". The
list of all the host's series (for its page) is a separate catalog, written
only when it changes. A small ring of CPU and memory, one slot per 5 minutes
for the last hour, rides along so the status page can draw each host without
a metric query.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from chalicelib.core.instants import ms_of_instant
from chalicelib.core.models import HeartbeatState, HostReport

if TYPE_CHECKING:
    from chalicelib.core.rules import ThresholdRule

DEFAULT_INTERVAL_S = 60
# A point older than this when it arrives is history (a backlog being
# delivered), not the host's current state: it must not move thresholds.
LATEST_MAX_AGE = timedelta(minutes=10)

# The history ring: slot = 5-minute step of the hour, so it never holds more than 12
# entries and an entry is overwritten an hour after it was written (each post of
# the step overwrites it: a slot holds the step's newest values).
HISTORY_SLOTS = 12
HISTORY_STEP_MS = 300_000
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


@dataclass(frozen=True, slots=True)
class Tracking:
    """How much of a post's latest values its host item keeps.

    At most `max_series` series and `max_services` services per post, the first
    by name, so the same ones are kept post after post; every point is stored
    all the same. The item is written by every post and read by every
    evaluation: what one post may add to it bounds what a bad sender costs.
    """

    max_series: int = 200
    max_services: int = 100


# The series catalog (the host page's list of series): one entry per series, with
# when a post last wrote it. A post writes it when its set of series and fields (a
# "shape") is not among the last CATALOG_SHAPES written, or when the last write is
# CATALOG_REFRESH old; once CATALOG_SHAPES shapes are known, a new one waits for
# CATALOG_MIN_INTERVAL (a sender whose series are new every minute, or a Prometheus
# that shards a scrape over requests, costs one write an hour, not one a post).
# Entries not written for CATALOG_KEEP go; at most CATALOG_MAX_SERIES are kept.
CATALOG_SHAPES = 4
CATALOG_SHAPE_MAX_BYTES = 80_000
CATALOG_MIN_INTERVAL = timedelta(hours=1)
CATALOG_REFRESH = timedelta(hours=12)
CATALOG_KEEP = timedelta(hours=48)
CATALOG_MAX_SERIES = 500  # the host page draws at most 120 charts
CATALOG_MAX_BYTES = 300_000  # DynamoDB's item limit is 400 KB


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
class SeriesEntry:
    """One series in a host's catalog: what it is and which numeric fields it has."""

    measurement: str
    tags: dict[str, str]
    fields: tuple[str, ...]


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
    """One 5-minute step of a host's history: busy CPU and used memory, in percent."""

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
    # The watched series (all of them when no rules were given), replacing the last post's.
    series: dict[str, SeriesLatest] = field(default_factory=dict)
    services: dict[str, ServiceLatest] = field(default_factory=dict)
    history: HistoryPoint | None = None
    # Series and services the post carried beyond the caps: stored, not tracked.
    untracked_series: int = 0
    untracked_services: int = 0
    # Every series key the post carried with a value (watched or not).
    posted: frozenset[str] = frozenset()
    # The tracked series, for the catalog, and its digest ("" when the post has none).
    catalog: tuple[SeriesEntry, ...] = ()
    catalog_digest: str = ""

    @property
    def series_count(self) -> int:
        return len(self.posted)


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


def host_update(
    report: HostReport,
    now: datetime,
    tracking: Tracking | None = None,
    watch: Mapping[str, tuple[ThresholdRule, ...]] | None = None,
) -> HostUpdate:
    """What `report`, received at `now`, changes about its host (all of it, without
    `tracking`; with it, within its caps). With `watch` (threshold rules by
    measurement), only the series some rule would act on, with only the fields
    rules read: the rest is in the catalog and the metric store."""
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
    history = history_point(series, now)
    posted = frozenset(series)
    untracked_series = untracked_services = 0
    if tracking is not None:
        series, untracked_series = _tracked_series(series, tracking)
    catalog = catalog_of(series)
    if watch is not None:
        series = watched_series(series, watch)
    if tracking is not None and len(services) > tracking.max_services:
        kept = sorted(services)[: tracking.max_services]
        untracked_services = len(services) - len(kept)
        services = {k: services[k] for k in kept}
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
        history=history,
        untracked_series=untracked_series,
        untracked_services=untracked_services,
        posted=posted,
        catalog=catalog,
        catalog_digest=catalog_digest(catalog),
    )


def _tracked_series(
    series: dict[str, SeriesLatest], tracking: Tracking
) -> tuple[dict[str, SeriesLatest], int]:
    """The series the item keeps, and how many the cap left out."""
    if len(series) <= tracking.max_series:
        return series, 0
    kept = sorted(series)[: tracking.max_series]
    return {k: series[k] for k in kept}, len(series) - len(kept)


def rule_value(rule: ThresholdRule, fields: Mapping[str, float | int | bool]) -> float | None:
    """What `rule` compares in a series' fields (divided as it says); None when it cannot."""
    value = fields.get(rule.field)
    if value is None or isinstance(value, bool):
        return None
    if rule.divide_by is not None:
        divisor = fields.get(rule.divide_by)
        if not divisor or isinstance(divisor, bool):
            return None
        return value / divisor
    return value


def watched_series(
    series: Mapping[str, SeriesLatest], watch: Mapping[str, tuple[ThresholdRule, ...]]
) -> dict[str, SeriesLatest]:
    """The series a threshold rule would act on, with only the fields rules read.

    A series is kept when some rule of its measurement gives a level for it as if
    its alert were already active (`level(value, True)`): breaching, or inside a
    recovery band. Matchers are left to the evaluation (they also read host tags).
    """
    kept: dict[str, SeriesLatest] = {}
    for key, s in series.items():
        rules = watch.get(s.measurement)
        if not rules:
            continue
        for rule in rules:
            value = rule_value(rule, s.fields)
            if value is not None and rule.level(value, True) is not None:
                break
        else:
            continue
        names = {n for r in rules for n in (r.field, r.divide_by) if n is not None}
        fields = {n: v for n, v in s.fields.items() if n in names}
        kept[key] = SeriesLatest(s.measurement, s.tags, s.time_ms, fields)
    return kept


def carried_series(
    previous: Mapping[str, SeriesLatest], update: HostUpdate
) -> dict[str, SeriesLatest]:
    """Watched series of the last post that this post did not carry and that are still
    fresh: a sender that splits its values over posts keeps them watched."""
    oldest_ms = ms_of_instant(update.seen_at) - int(LATEST_MAX_AGE.total_seconds() * 1000)
    return {
        k: s
        for k, s in previous.items()
        if k not in update.posted and k not in update.series and s.time_ms >= oldest_ms
    }


def catalog_of(series: Mapping[str, SeriesLatest]) -> tuple[SeriesEntry, ...]:
    """The catalog entries of `series`, by key, within CATALOG_SHAPE_MAX_BYTES."""
    entries: list[SeriesEntry] = []
    size = 0
    for key in sorted(series):
        s = series[key]
        names = tuple(sorted(n for n, v in s.fields.items() if not isinstance(v, bool)))
        if not names:
            continue
        size += _entry_bytes(key, names)
        if size > CATALOG_SHAPE_MAX_BYTES:
            break
        entries.append(SeriesEntry(s.measurement, s.tags, names))
    return tuple(entries)


def catalog_due(update: HostUpdate, digests: Iterable[str], written_ms: int | None) -> bool:
    """Whether this post writes the catalog (`digests`: the shapes written, newest first;
    `written_ms`: when the last write was, None: never)."""
    if not update.catalog_digest:
        return False
    if written_ms is None:
        return True
    elapsed = ms_of_instant(update.seen_at) - written_ms
    if elapsed >= int(CATALOG_REFRESH.total_seconds() * 1000):
        return True
    known = list(digests)
    if update.catalog_digest in known:
        return False
    return len(known) < CATALOG_SHAPES or elapsed >= int(
        CATALOG_MIN_INTERVAL.total_seconds() * 1000
    )


def catalog_digest(catalog: tuple[SeriesEntry, ...]) -> str:
    """A short digest of a catalog shape; "" for an empty one."""
    if not catalog:
        return ""
    text = json.dumps(
        [[e.measurement, sorted(e.tags.items()), e.fields] for e in catalog],
        separators=(",", ":"),
    )
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def merged_catalog(
    old: Mapping[str, tuple[int, SeriesEntry]], update: HostUpdate
) -> dict[str, tuple[int, SeriesEntry]]:
    """The catalog after `update` is written into `old` (series key -> (time written,
    entry)): the post's series refreshed, those not written for CATALOG_KEEP dropped,
    the most recently written kept within CATALOG_MAX_SERIES and CATALOG_MAX_BYTES."""
    now_ms = ms_of_instant(update.seen_at)
    oldest_ms = now_ms - int(CATALOG_KEEP.total_seconds() * 1000)
    merged = {k: v for k, v in old.items() if v[0] >= oldest_ms}
    for e in update.catalog:
        merged[series_key(e.measurement, e.tags)] = (now_ms, e)
    kept: dict[str, tuple[int, SeriesEntry]] = {}
    size = 0
    for key in sorted(merged, key=lambda k: (-merged[k][0], k))[:CATALOG_MAX_SERIES]:
        size += _entry_bytes(key, merged[key][1].fields)
        if size > CATALOG_MAX_BYTES:
            break
        kept[key] = merged[key]
    return kept


def _entry_bytes(key: str, names: Iterable[str]) -> int:
    """About what a catalog entry weighs in DynamoDB (key, field names, tags, overhead)."""
    return 2 * len(key.encode()) + sum(len(n.encode()) + 4 for n in names) + 32


def catalog_list(catalog: Mapping[str, tuple[int, SeriesEntry]]) -> list[SeriesEntry]:
    """The catalog's entries, by series key."""
    return [catalog[k][1] for k in sorted(catalog)]
