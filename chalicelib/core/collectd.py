"""collectd's write_http plugin, `Format "JSON"`: a list of value lists as host reports.

Each value list carries `values`, `dstypes` and `dsnames` (one entry per
data source), `time` and `interval` (seconds, fractional), `host`, `plugin`,
`plugin_instance`, `type` and `type_instance`.

Mapping (docs/INGEST.md has it for users): one value list is one point.
- `host` names the host; the largest `interval` in the post is its interval;
- `plugin` is the measurement; `plugin_instance` is the tag `instance`,
  `type` the tag `type` and `type_instance` the tag `type_instance` (empty
  ones are left out); the data source names are the fields:
  `load/load-relative` [shortterm, midterm, longterm] -> measurement `load`,
  tags type=load, type_instance=relative, fields shortterm, midterm,
  longterm; `memory/percent-used` [value] -> `memory`, type=percent,
  type_instance=used, field `value`. These tags are collectd's identifier:
  write_http may split one read across posts, and value lists that shared a
  record could arrive apart and collide at the store;
- `gauge` values are stored as sent; `derive` and `counter` become per-second
  rates, and `absolute` a per-second rate of its value, as collectd's own
  `StoreRates` computes them (a counter that goes down wrapped at 32 or 64
  bits). A rate needs the previous value of the series: the first value of
  a series, and one more than `MAX_GAP_INTERVALS` intervals after the
  previous, only primes it.

Where the previous values live: in the collector's container (`RateMemo`).
Any earlier value of a series gives its true average rate since then, so a
container that saw the previous post computes exactly what collectd would,
and one that missed some posts computes the average over the longer span:
never a wrong number, at worst a coarser one. A container's first post of
a series only primes its memo. See docs/INGEST.md.
"""

from __future__ import annotations

import enum
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.errors import InvalidPayload, PayloadTooLarge, Problem
from chalicelib.core.ingest import (
    MAX_INTERVAL_S,
    MIN_INTERVAL_S,
    ParsedRequest,
    Validator,
    check_content_type,
    decode_body,
    parse_json,
)
from chalicelib.core.limits import Limits
from chalicelib.core.models import AgentInfo, HostReport, Shape

SENDER = "collectd"
INSTANCE_TAG = "instance"
TYPE_TAG = "type"
TYPE_INSTANCE_TAG = "type_instance"
# A previous value older than this many intervals is not used for a rate.
MAX_GAP_INTERVALS = 30
_U32 = 2**32
_U64 = 2**64


class DsType(enum.StrEnum):
    GAUGE = "gauge"
    DERIVE = "derive"
    COUNTER = "counter"
    ABSOLUTE = "absolute"


SeriesId = tuple[str, str, str, str, str, str]  # host, plugin, instance, type, type instance, ds


class RateMemo:
    """The previous value and time of each derive/counter/absolute series, per container.

    Bounded: past `max_series` the series heard from least recently go first.
    """

    def __init__(self, max_series: int = 200_000) -> None:
        self.max_series = max_series
        self._last: OrderedDict[SeriesId, tuple[int, int | float]] = OrderedDict()

    def get(self, key: SeriesId) -> tuple[int, int | float] | None:
        return self._last.get(key)

    def update(self, changes: dict[SeriesId, tuple[int, int | float]]) -> None:
        """Remember what a stored post saw (called only once its points are stored)."""
        for key, value in changes.items():
            known = self._last.get(key)
            if known is not None and known[0] >= value[0]:
                continue
            self._last[key] = value
            self._last.move_to_end(key)
        while len(self._last) > self.max_series:
            self._last.popitem(last=False)


def rate(
    kind: DsType, value: int | float, time_ms: int, previous: tuple[int, int | float]
) -> float | None:
    """collectd's per-second rate of `value` since `previous`; None when there is none."""
    last_ms, last_value = previous
    if time_ms <= last_ms:
        return None
    seconds = (time_ms - last_ms) / 1000
    if kind is DsType.ABSOLUTE:
        return value / seconds
    diff = value - last_value
    if kind is DsType.COUNTER and diff < 0:
        # collectd's counter_diff: a wrap at 32 bits when the old value fit in
        # them, at 64 otherwise.
        diff = (_U32 if last_value < _U32 else _U64) - last_value + value
    return diff / seconds


@dataclass(slots=True)
class CollectdPost:
    """A validated post, and what the rate memo learns once it is stored."""

    parsed: ParsedRequest
    memo_changes: dict[SeriesId, tuple[int, int | float]] = field(default_factory=dict)
    primed: int = 0  # values that only primed a rate


def value_list_tags(plugin_instance: str, type_: str, type_instance: str) -> dict[str, str]:
    tags = {INSTANCE_TAG: plugin_instance, TYPE_TAG: type_, TYPE_INSTANCE_TAG: type_instance}
    return {k: v for k, v in tags.items() if v}


def agent_of(user_agent: str | None) -> AgentInfo:
    """`collectd/5.12.0` -> ("collectd", "5.12.0")."""
    name, _, version = (user_agent or "").partition("/")
    if name.strip().lower() != SENDER or not version.split():
        return AgentInfo(SENDER, "")
    return AgentInfo(SENDER, version.split()[0][:64])


def _seconds(value: object) -> float | None:
    if type(value) in (int, float) and math.isfinite(value):  # type: ignore[arg-type]
        return float(value)  # type: ignore[arg-type]
    return None


def _text(
    item: dict[str, Any], key: str, path: str, problems: list[Problem], required: bool
) -> str:
    value = item.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        problems.append(
            Problem(f"{path}.{key}", f"{key} must be a {'non-empty ' if required else ''}string")
        )
        return ""
    return value


def parse_collectd(
    raw: bytes,
    content_type: str | None,
    content_encoding: str | None,
    *,
    user_agent: str | None,
    limits: Limits,
    now_ms: int,
    memo: RateMemo,
) -> CollectdPost:
    """The whole front half of a write_http post: media type, decoding, JSON, mapping."""
    check_content_type(content_type)
    doc = parse_json(decode_body(raw, content_encoding, limits))
    return map_value_lists(doc, agent_of(user_agent), limits=limits, now_ms=now_ms, memo=memo)


def map_value_lists(
    doc: object, agent: AgentInfo, *, limits: Limits, now_ms: int, memo: RateMemo
) -> CollectdPost:
    """Validated host reports from write_http's JSON (see the module docstring)."""
    if not isinstance(doc, list):
        raise InvalidPayload(
            'body must be a JSON list of value lists (write_http Format "JSON")',
            [Problem("", "expected a list")],
        )
    n_values = sum(
        len(i["values"]) for i in doc if type(i) is dict and type(i.get("values")) is list
    )
    if n_values > limits.max_points:
        raise PayloadTooLarge(
            f"{n_values} values in one request; the limit is {limits.max_points} "
            "(lower write_http's BufferSize)"
        )
    v = Validator(limits, now_ms)
    reports: dict[str, HostReport] = {}
    intervals: dict[str, int] = {}
    changes: dict[SeriesId, tuple[int, int | float]] = {}
    host_ok: dict[str, bool] = {}
    primed = 0
    for i, item in enumerate(doc):
        path = f"[{i}]"
        if type(item) is not dict:
            v.refuse(i, path, [Problem(path, "each value list must be an object")])
            continue
        problems: list[Problem] = []
        host = _text(item, "host", path, problems, True)
        plugin = _text(item, "plugin", path, problems, True)
        type_ = _text(item, "type", path, problems, True)
        plugin_instance = _text(item, "plugin_instance", path, problems, False)
        type_instance = _text(item, "type_instance", path, problems, False)
        values, dstypes, dsnames = item.get("values"), item.get("dstypes"), item.get("dsnames")
        if not (
            type(values) is list
            and type(dstypes) is list
            and type(dsnames) is list
            and values
            and len(values) == len(dstypes) == len(dsnames)
        ):
            problems.append(
                Problem(
                    path, "values, dstypes and dsnames must be non-empty lists of the same length"
                )
            )
        time_s = _seconds(item.get("time"))
        if time_s is None or time_s <= 0:
            problems.append(Problem(f"{path}.time", "time must be epoch seconds (a number)"))
        interval = _seconds(item.get("interval"))
        if interval is None or not MIN_INTERVAL_S <= round(interval) <= MAX_INTERVAL_S:
            problems.append(
                Problem(
                    f"{path}.interval",
                    f"interval must be seconds from {MIN_INTERVAL_S} to {MAX_INTERVAL_S}",
                )
            )
        if host and host_ok.get(host) is None:
            _, problem = v.host(host, f"{path}.host")
            host_ok[host] = problem is None
            if problem is not None:
                problems.append(problem)
        elif host and not host_ok[host]:
            problems.append(Problem(f"{path}.host", f"host {host!r} is not a valid host"))
        if not problems:
            msg = v.measurements.problem(plugin, "measurement")
            if msg:
                problems.append(Problem(f"{path}.plugin", msg))
        if problems:
            v.refuse(i, path, problems)
            continue
        assert time_s is not None
        assert interval is not None
        assert type(values) is list
        assert type(dstypes) is list
        assert type(dsnames) is list
        time_ms = round(time_s * 1000)
        if v.out_of_window(i, path, time_ms):
            continue
        interval_s = round(interval)
        intervals[host] = max(intervals.get(host, 0), interval_s)
        tags = value_list_tags(plugin_instance, type_, type_instance)
        fields: dict[str, float] = {}
        for j, (value, dstype, dsname) in enumerate(zip(values, dstypes, dsnames, strict=True)):
            vpath = f"{path}.values[{j}]"
            try:
                kind = DsType(dstype)
            except ValueError:
                v.refuse(
                    i,
                    vpath,
                    [
                        Problem(
                            f"{path}.dstypes[{j}]",
                            "dstype must be gauge, derive, counter or absolute",
                        )
                    ],
                )
                continue
            if not isinstance(dsname, str) or not dsname:
                v.refuse(i, vpath, [Problem(f"{path}.dsnames[{j}]", "must be a non-empty string")])
                continue
            msg = v.field_names.problem(dsname, "field name")
            if msg:
                v.refuse(i, vpath, [Problem(f"{path}.dsnames[{j}]", msg)])
                continue
            if value is None:
                continue  # collectd sends null for a NaN gauge: nothing was measured
            if type(value) not in (int, float) or not math.isfinite(value):
                v.refuse(i, vpath, [Problem(vpath, "value must be a finite number or null")])
                continue
            number = float(value)
            if kind is not DsType.GAUGE:
                series: SeriesId = (host, plugin, plugin_instance, type_, type_instance, dsname)
                previous = changes.get(series) or memo.get(series)
                changes[series] = (time_ms, value)
                if previous is not None and time_ms - previous[0] > (
                    MAX_GAP_INTERVALS * interval_s * 1000
                ):
                    previous = None
                per_second = rate(kind, value, time_ms, previous) if previous else None
                if per_second is None:
                    primed += 1
                    continue
                number = per_second
            fields[dsname] = number
        if not fields:
            continue
        p = v.point(
            {"measurement": plugin, "time": time_ms, "tags": tags, "fields": fields},
            i,
            path,
            False,
        )
        if p is None:
            continue
        report = reports.get(host)
        if report is None:
            report = reports[host] = HostReport(
                host=host, agent=agent, interval_s=intervals.get(host)
            )
        report.points.append(p)
    # A host whose post held only first values of rates is still heard.
    for host, interval_s in intervals.items():
        report = reports.get(host)
        if report is None:
            report = reports[host] = HostReport(host=host, agent=agent)
        report.interval_s = interval_s
    if not reports and v.invalid and not intervals:
        raise InvalidPayload("no valid value list in the request", v.invalid)
    return CollectdPost(
        parsed=ParsedRequest(
            shape=Shape.COLLECTD, reports=list(reports.values()), rejected=v.rejected
        ),
        memo_changes=changes,
        primed=primed,
    )
