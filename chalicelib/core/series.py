"""History queries: what `GET /v1/series` and history-aware rules ask a MetricReader.

A `SeriesQuery` is validated here, once, whatever the backend: names are
bounded and free of control characters, the window is bounded in span and in
points per series. Backends quote every name and value themselves (InfluxQL
in `chalicelib.core.influxql`, Timestream SQL in `chalicelib.core.timestream_sql`);
nothing from a request is ever pasted into a query unquoted.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import UTC, datetime, timedelta

from chalicelib.core.durations import parse_duration
from chalicelib.core.errors import InvalidPayload, Problem
from chalicelib.core.instants import instant_of_ms, ms_of_instant


class Stat(enum.StrEnum):
    """How the values of one bucket become one number."""

    AVG = "avg"
    MIN = "min"
    MAX = "max"
    COUNT = "count"
    P95 = "p95"


# One answer stays small enough for a browser to draw and for API Gateway's
# 6 MB response limit: 11,000 points per series is Prometheus' own cap.
MAX_POINTS = 11_000
MAX_SPAN = timedelta(days=35)  # a week's chart plus a week-ago overlay, with room
MAX_OFFSET = timedelta(days=400)
MIN_STEP = timedelta(seconds=1)
MAX_SERIES = 500
MAX_NAME_BYTES = 256
MAX_TAG_FILTERS = 16
DEFAULT_STEP_POINTS = 300  # when `step` is left out: about 300 buckets in the window

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_RELATIVE = re.compile(r"^-(.+)$")


@dataclass(frozen=True, slots=True)
class SeriesQuery:
    """One field of one measurement over [start_at, end_at), bucketed by `step`.

    `host` None means every host, grouped by host (a rule's one query for the
    fleet). `step` None means one bucket for the whole window. `tags` are
    equality filters; `by_tags` asks for one series per tag set rather than
    per host.
    """

    measurement: str
    field: str
    start_at: datetime
    end_at: datetime
    step: timedelta | None
    stat: Stat
    host: str | None = None
    tags: Mapping[str, str] = dc_field(default_factory=dict)
    by_tags: bool = True

    @property
    def start_ms(self) -> int:
        return ms_of_instant(self.start_at)

    @property
    def end_ms(self) -> int:
        return ms_of_instant(self.end_at)


@dataclass(slots=True)
class Series:
    """One series: its tags and its [epoch_ms, value] points, oldest first."""

    tags: dict[str, str]
    points: list[tuple[int, float]]

    def as_json(self) -> dict[str, object]:
        return {"tags": self.tags, "points": [[t, v] for t, v in self.points]}


class TooManySeries(InvalidPayload):
    """The answer would hold more series than MAX_SERIES."""


def check_name(value: str, path: str) -> str:
    """A measurement, field, host or tag name or value that every backend can be asked about."""
    if not value:
        raise InvalidPayload("invalid query", [Problem(path, "must not be empty")])
    if len(value.encode()) > MAX_NAME_BYTES:
        raise InvalidPayload(
            "invalid query", [Problem(path, f"must be at most {MAX_NAME_BYTES} bytes")]
        )
    if _CONTROL.search(value):
        raise InvalidPayload(
            "invalid query", [Problem(path, "must not contain control characters")]
        )
    return value


def parse_instant(value: str, now: datetime, path: str) -> datetime:
    """`now`, `-24h` (before now), ISO-8601 with a zone (`Z` or `+00:00`), or epoch ms."""
    text = value.strip()
    if text == "now":
        return now
    relative = _RELATIVE.match(text)
    if relative:
        try:
            return now - parse_duration(relative.group(1))
        except ValueError as exc:
            raise InvalidPayload("invalid query", [Problem(path, str(exc))]) from exc
    if text.isdigit():
        return instant_of_ms(int(text))
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise InvalidPayload(
            "invalid query",
            [
                Problem(
                    path,
                    "must be `now`, a duration before now like -24h, epoch milliseconds, "
                    f"or ISO-8601 with a zone like 2026-01-02T03:04:05Z; got {value!r}",
                )
            ],
        )
    return at.astimezone(UTC)


def _duration(value: str, path: str) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise InvalidPayload("invalid query", [Problem(path, str(exc))]) from exc


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise InvalidPayload("invalid query", [Problem(name, "is required")])
    return check_name(value, name)


def series_query_of_params(params: Mapping[str, str], now: datetime) -> SeriesQuery:
    """The query `GET /v1/series` asks for, or InvalidPayload naming the parameter at fault.

    `offset` shifts the whole window back (a week-ago overlay); points keep
    the times they were measured at.
    """
    host = _required(params, "host")
    measurement = _required(params, "measurement")
    field_name = _required(params, "field")
    end_at = parse_instant(params.get("to") or "now", now, "to")
    start_at = parse_instant(params.get("from") or "-1h", now, "from")
    if start_at >= end_at:
        raise InvalidPayload("invalid query", [Problem("from", "must be before `to`")])
    span = end_at - start_at
    if span > MAX_SPAN:
        raise InvalidPayload(
            "invalid query",
            [Problem("from", f"the window may span at most {MAX_SPAN.days} days")],
        )
    if params.get("step"):
        step = _duration(params["step"], "step")
        if step < MIN_STEP:
            raise InvalidPayload("invalid query", [Problem("step", "must be at least 1s")])
    else:
        seconds = max(1, int(span.total_seconds()) // DEFAULT_STEP_POINTS)
        step = timedelta(seconds=seconds)
    if span / step > MAX_POINTS:
        raise InvalidPayload(
            "invalid query",
            [
                Problem(
                    "step",
                    f"would give {int(span / step)} points per series, more than "
                    f"{MAX_POINTS}: use a larger step or a shorter window",
                )
            ],
        )
    try:
        stat = Stat(params.get("stat") or "avg")
    except ValueError:
        allowed = "|".join(s.value for s in Stat)
        raise InvalidPayload(
            "invalid query", [Problem("stat", f"must be one of {allowed}")]
        ) from None
    offset = _duration(params["offset"], "offset") if params.get("offset") else timedelta(0)
    if offset > MAX_OFFSET:
        raise InvalidPayload(
            "invalid query", [Problem("offset", f"must be at most {MAX_OFFSET.days} days")]
        )
    tags = {}
    for key, value in params.items():
        if key.startswith("tag."):
            name = check_name(key[4:], key)
            if name == "host":
                raise InvalidPayload("invalid query", [Problem(key, "use `host=` for the host")])
            tags[name] = check_name(value, key)
    if len(tags) > MAX_TAG_FILTERS:
        raise InvalidPayload(
            "invalid query", [Problem("tag", f"at most {MAX_TAG_FILTERS} tag filters")]
        )
    return SeriesQuery(
        measurement=measurement,
        field=field_name,
        start_at=start_at - offset,
        end_at=end_at - offset,
        step=step,
        stat=stat,
        host=host,
        tags=tags,
    )


def too_many_series(count: int) -> TooManySeries:
    return TooManySeries(
        "invalid query",
        [
            Problem(
                "tag",
                f"the answer would hold {count} series or more, over {MAX_SERIES}: "
                "narrow it with tag.NAME=VALUE filters",
            )
        ],
    )
