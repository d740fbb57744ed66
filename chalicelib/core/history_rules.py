"""Threshold rules that know the past: `window`/`agg`, `baseline` and `forecast`.

A history rule is evaluated from a MetricReader, not from the latest values
in the hosts table: one grouped query per rule and evaluation (two for a
baseline: now and a week ago), whatever the number of hosts. The values
computed here go to the threshold evaluation as `DerivedValue`s, each then
compared with the rule's levels like a latest value would be:

- `window: 15m`, `agg: avg|min|max|p95`: the aggregate of the last window.
- `baseline: {offset, window, ratio, direction}`: how many times the window's
  average is above (`up`), below (`down`) or away from (`both`) the same window
  `offset` earlier; the rule's level is `ratio` (1.5 means 1.5x).
- `forecast: {horizon, over}`: the value the least-squares line through the
  last `over` reaches `horizon` from now (Prometheus' `predict_linear`).

Missing history is a policy, not an alarm: a series with no point in the
window gives no value; a baseline with no point in the earlier window (a new
host, a host that was down) or an earlier average of 0 gives no value; a
forecast needs MIN_FORECAST_BUCKETS buckets with data. No value opens no
alert; an alert already open whose value is missing keeps its state (`held`),
as do all of a rule's alerts when its query fails, so a store hiccup neither
pages nor resolves.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from chalicelib.core.durations import parse_duration
from chalicelib.core.errors import InvalidPayload
from chalicelib.core.instants import ms_of_instant
from chalicelib.core.ports import BackendUnavailable
from chalicelib.core.series import Series, SeriesQuery, Stat

if TYPE_CHECKING:
    from chalicelib.core.alerts import AlertRecord
    from chalicelib.core.rules import ThresholdRule

MAX_WINDOW = timedelta(days=1)
MIN_WINDOW = timedelta(minutes=1)
MAX_OFFSET = timedelta(days=35)
MAX_HORIZON = timedelta(days=7)
MIN_OVER = timedelta(minutes=5)
MAX_OVER = timedelta(days=7)
FORECAST_BUCKETS = 30
MIN_FORECAST_BUCKETS = 3
RULE_AGGS = (Stat.AVG, Stat.MIN, Stat.MAX, Stat.P95)

BASELINE_SUMMARY = (
    "{rule} on {host}: {measurement}.{field} is {value:.3g}x its baseline ({op} {threshold:g}x)"
)
FORECAST_SUMMARY = (
    "{rule} on {host}: {measurement}.{field} is on course for {value:.4g} ({op} {threshold:g})"
)


class Direction(enum.StrEnum):
    UP = "up"
    DOWN = "down"
    BOTH = "both"


@dataclass(frozen=True, slots=True)
class Baseline:
    offset: timedelta
    window: timedelta
    ratio: float
    direction: Direction


@dataclass(frozen=True, slots=True)
class Forecast:
    horizon: timedelta
    over: timedelta


@dataclass(frozen=True, slots=True)
class HistorySpec:
    """What a rule reads from history; exactly one of window, baseline, forecast."""

    window: timedelta | None = None
    agg: Stat = Stat.AVG
    baseline: Baseline | None = None
    forecast: Forecast | None = None


HISTORY_KEYS = frozenset({"window", "agg", "baseline", "forecast"})
_BASELINE_KEYS = {"offset", "window", "ratio", "direction"}
_FORECAST_KEYS = {"horizon", "over"}


def parse_history(
    raw: Mapping[str, Any], path: str, add: Callable[[str, str], None]
) -> HistorySpec | None:
    """The rule's history keys, validated (`add(path, message)` per problem); None if none."""
    if not HISTORY_KEYS & raw.keys():
        return None
    present = [k for k in ("window", "baseline", "forecast") if k in raw]
    if len(present) > 1:
        add(f"{path}.{present[1]}", f"cannot be combined with {present[0]}")
        return None
    if "agg" in raw and "window" not in raw:
        add(f"{path}.agg", "needs a window (window: 15m)")
        return None

    def duration(
        mapping: Mapping[str, Any],
        key: str,
        where: str,
        *,
        low: timedelta,
        high: timedelta,
        default: timedelta | None = None,
    ) -> timedelta | None:
        if key not in mapping:
            if default is None:
                add(f"{where}.{key}", "is required")
            return default
        try:
            value = parse_duration(mapping[key])
        except ValueError as exc:
            add(f"{where}.{key}", str(exc))
            return None
        if not low <= value <= high:
            add(f"{where}.{key}", f"must be between {_fmt(low)} and {_fmt(high)}")
            return None
        return value

    if "window" in raw:
        window = duration(raw, "window", path, low=MIN_WINDOW, high=MAX_WINDOW)
        agg_raw = raw.get("agg", "avg")
        try:
            agg = Stat(agg_raw)
        except ValueError:
            agg = None
        if agg not in RULE_AGGS:
            add(f"{path}.agg", f"must be one of avg, min, max, p95, got {agg_raw!r}")
            return None
        return HistorySpec(window=window, agg=agg) if window else None
    if "baseline" in raw:
        where = f"{path}.baseline"
        b = raw["baseline"]
        if not isinstance(b, Mapping):
            add(where, "must be a mapping (offset, window, ratio, direction)")
            return None
        _unknown(b, _BASELINE_KEYS, where, add)
        offset = duration(
            b, "offset", where, low=MIN_WINDOW, high=MAX_OFFSET, default=timedelta(weeks=1)
        )
        window = duration(
            b, "window", where, low=MIN_WINDOW, high=MAX_WINDOW, default=timedelta(minutes=30)
        )
        ratio = b.get("ratio", 1.5)
        if (
            isinstance(ratio, bool)
            or not isinstance(ratio, int | float)
            or not (math.isfinite(ratio) and ratio > 1)
        ):
            add(f"{where}.ratio", f"must be a number above 1, got {ratio!r}")
            return None
        try:
            direction = Direction(b.get("direction", "up"))
        except ValueError:
            add(f"{where}.direction", f"must be up, down or both, got {b.get('direction')!r}")
            return None
        if offset is None or window is None:
            return None
        if window > offset:
            add(f"{where}.window", "must not be longer than the offset")
            return None
        return HistorySpec(baseline=Baseline(offset, window, float(ratio), direction))
    where = f"{path}.forecast"
    f = raw["forecast"]
    if not isinstance(f, Mapping):
        add(where, "must be a mapping (horizon, over)")
        return None
    _unknown(f, _FORECAST_KEYS, where, add)
    horizon = duration(f, "horizon", where, low=MIN_WINDOW, high=MAX_HORIZON)
    over = duration(f, "over", where, low=MIN_OVER, high=MAX_OVER)
    if horizon is None or over is None:
        return None
    return HistorySpec(forecast=Forecast(horizon, over))


def _unknown(
    raw: Mapping[Any, Any], known: set[str], where: str, add: Callable[[str, str], None]
) -> None:
    for key in raw:
        if key not in known:
            add(f"{where}.{key}", f"unknown key (known: {', '.join(sorted(known))})")


def _fmt(d: timedelta) -> str:
    from chalicelib.core.durations import format_duration

    return format_duration(d)


# ------------------------------------------------------------------ evaluation


@dataclass(frozen=True, slots=True)
class DerivedValue:
    """A history rule's value for one series of one host, judged like a latest value."""

    rule: ThresholdRule
    host: str
    tags: dict[str, str]
    value: float


@dataclass(slots=True)
class HistoryValues:
    """What history rules saw this evaluation: values, alerts to hold, queries run."""

    values: list[DerivedValue] = field(default_factory=list)
    held: set[str] = field(default_factory=set)
    queries: int = 0
    failed: list[str] = field(default_factory=list)  # rule names whose query failed


def queries_for(rule: ThresholdRule, now: datetime) -> list[SeriesQuery]:
    """The grouped queries (every host at once) `rule` needs at `now`."""
    spec = rule.history
    assert spec is not None
    m, f = rule.measurement, rule.field
    if spec.window is not None:
        return [SeriesQuery(m, f, now - spec.window, now, None, spec.agg)]
    if spec.baseline is not None:
        b = spec.baseline
        then = now - b.offset
        return [
            SeriesQuery(m, f, now - b.window, now, None, Stat.AVG),
            SeriesQuery(m, f, then - b.window, then, None, Stat.AVG),
        ]
    assert spec.forecast is not None
    over = spec.forecast.over
    step = max(timedelta(minutes=1), over / FORECAST_BUCKETS)
    return [SeriesQuery(m, f, now - over, now, step, Stat.AVG)]


def _keyed(series: Iterable[Series]) -> dict[tuple[str, tuple[tuple[str, str], ...]], Series]:
    out = {}
    for s in series:
        host = s.tags.get("host")
        if not host:
            continue
        tags = tuple(sorted((k, v) for k, v in s.tags.items() if k != "host"))
        out[(host, tags)] = s
    return out


def derive(
    rule: ThresholdRule, answers: Sequence[list[Series]], now: datetime
) -> tuple[list[DerivedValue], list[tuple[str, dict[str, str]]]]:
    """The values `answers` (to `queries_for(rule, now)`, in order) give, and the
    (host, tags) that have current data but no usable history (to hold)."""
    spec = rule.history
    assert spec is not None
    values: list[DerivedValue] = []
    missing: list[tuple[str, dict[str, str]]] = []
    current = _keyed(answers[0])
    if spec.window is not None:
        for (host, tags), s in current.items():
            if s.points:
                values.append(DerivedValue(rule, host, dict(tags), s.points[-1][1]))
        return values, missing
    if spec.baseline is not None:
        b = spec.baseline
        before = _keyed(answers[1])
        for key, s in current.items():
            host, tag_set = key[0], dict(key[1])
            past = before.get(key)
            if not s.points:
                continue
            now_v = s.points[-1][1]
            then_v = past.points[-1][1] if past is not None and past.points else None
            factor = _factor(now_v, then_v, b.direction)
            if factor is None:
                missing.append((host, tag_set))
            else:
                values.append(DerivedValue(rule, host, tag_set, factor))
        return values, missing
    assert spec.forecast is not None
    target_ms = ms_of_instant(now + spec.forecast.horizon)
    for (host, tags), s in current.items():
        predicted = predict_linear(s.points, target_ms)
        if predicted is None:
            missing.append((host, dict(tags)))
        else:
            values.append(DerivedValue(rule, host, dict(tags), predicted))
    return values, missing


def _factor(now_v: float, then_v: float | None, direction: Direction) -> float | None:
    """How many times `now_v` is away from `then_v` in `direction`; None without a baseline."""
    if then_v is None or then_v <= 0 or now_v < 0:
        return None  # no baseline, or one a ratio says nothing about
    up = now_v / then_v
    if direction is Direction.UP:
        return up
    down = then_v / now_v if now_v > 0 else math.inf
    if direction is Direction.DOWN:
        return down
    return max(up, down)


def predict_linear(points: Sequence[tuple[int, float]], at_ms: int) -> float | None:
    """The least-squares line through `points` evaluated at `at_ms`; None with too few."""
    if len(points) < MIN_FORECAST_BUCKETS:
        return None
    n = len(points)
    t0 = points[0][0]
    xs = [(t - t0) / 1000.0 for t, _ in points]
    ys = [v for _, v in points]
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx == 0:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx
    return mean_y + slope * ((at_ms - t0) / 1000.0 - mean_x)


def read_history(
    rules: Iterable[ThresholdRule],
    read: Callable[[SeriesQuery], list[Series]],
    alerts: Mapping[str, AlertRecord],
    now: datetime,
    alert_id: Callable[[str, str, dict[str, str]], str],
) -> HistoryValues:
    """Run every history rule's queries through `read` and derive their values.

    A query that raises leaves the rule out this evaluation and holds its
    open alerts (the caller's `read` raises for a failed store).
    """
    out = HistoryValues()
    open_by_rule: dict[str, list[str]] = {}
    for record in alerts.values():
        open_by_rule.setdefault(record.rule, []).append(record.alert_id)
    for rule in rules:
        if rule.history is None:
            continue
        answers = []
        try:
            for query in queries_for(rule, now):
                out.queries += 1
                answers.append(read(query))
        except (BackendUnavailable, InvalidPayload):  # hold, and try again next minute
            out.failed.append(rule.name)
            out.held.update(open_by_rule.get(rule.name, ()))
            continue
        values, missing = derive(rule, answers, now)
        out.values.extend(values)
        for host, tags in missing:
            out.held.add(alert_id(host, rule.name, tags))
    return out
