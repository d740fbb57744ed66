"""Host reports as InfluxDB write requests, and InfluxDB's refusals read back.

Each point becomes one line: the host and the host's tags are tags, the
point's tags override them, fields follow fleetpulse's type rule (every
number a float, see `line_protocol.format_value`), the time is in
milliseconds (the write is sent with `precision=ms`). Whatever InfluxDB
could not store, or would read differently from what was meant, is
rejected here with the reason, per point. Lines are grouped in batches
small enough for one request each.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from chalicelib.core.line_protocol import (
    MAX_KEY_BYTES,
    RESERVED_KEYS,
    escape_key,
    escape_measurement,
    format_value,
    unwritable,
)
from chalicelib.core.models import FieldValue, HostReport, InfluxApi, Point, Rejection

# InfluxDB's own default body limit is 25 MB; smaller requests keep each retry cheap
# and a slow server's answer well inside the collector's time budget.
DEFAULT_MAX_LINES = 5000
DEFAULT_MAX_BYTES = 1_000_000


@dataclass(frozen=True, slots=True)
class InfluxTarget:
    """Where the store writes: a URL and, for v1, a database; for v2, an org and a bucket."""

    url: str
    api: InfluxApi = InfluxApi.V2
    database: str | None = None
    org: str | None = None
    bucket: str | None = None
    username: str | None = None  # v1 only: basic auth, with the token as the password

    @property
    def write_url(self) -> str:
        base = self.url.rstrip("/")
        return base + ("/api/v2/write" if self.api is InfluxApi.V2 else "/write")

    @property
    def write_params(self) -> dict[str, str]:
        if self.api is InfluxApi.V2:
            return {"org": self.org or "", "bucket": self.bucket or "", "precision": "ms"}
        return {"db": self.database or "", "precision": "ms"}

    def describe(self) -> str:
        if self.api is InfluxApi.V2:
            return f"bucket {self.bucket!r} of org {self.org!r} at {self.url}"
        return f"database {self.database!r} at {self.url}"


@dataclass(slots=True)
class Batch:
    """One write request: lines[i] came from sources[i]."""

    lines: list[str] = field(default_factory=list)
    sources: list[Point] = field(default_factory=list)
    size: int = 0  # characters of the body, newlines included

    def body(self) -> bytes:
        return ("\n".join(self.lines) + "\n").encode()

    def halves(self) -> tuple[Batch, Batch]:
        mid = len(self.lines) // 2
        return self.subset(range(mid)), self.subset(range(mid, len(self.lines)))

    def subset(self, indices: Iterable[int]) -> Batch:
        out = Batch()
        for i in indices:
            out.lines.append(self.lines[i])
            out.sources.append(self.sources[i])
            out.size += len(self.lines[i]) + 1
        return out


@dataclass(slots=True)
class InfluxPlan:
    batches: list[Batch]
    rejected: list[Rejection]

    @property
    def line_count(self) -> int:
        return sum(len(b.lines) for b in self.batches)


class _Names:
    """Escaped names and the reason a name cannot be written, computed once per name."""

    __slots__ = ("keys", "measurements")

    def __init__(self) -> None:
        self.measurements: dict[str, tuple[str, str | None]] = {}
        self.keys: dict[str, tuple[str, str | None]] = {}

    def measurement(self, name: str) -> tuple[str, str | None]:
        known = self.measurements.get(name)
        if known is None:
            known = self.measurements[name] = (
                escape_measurement(name),
                unwritable(name, "measurement"),
            )
        return known

    def key(self, name: str, what: str) -> tuple[str, str | None]:
        known = self.keys.get(name)
        if known is None:
            problem = unwritable(name, what)
            if problem is None and name in RESERVED_KEYS:
                problem = f"{what} {name!r} is reserved by InfluxDB"
            known = self.keys[name] = (escape_key(name), problem)
        return known


def plan_influx_writes(
    reports: Iterable[HostReport],
    *,
    max_lines: int = DEFAULT_MAX_LINES,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> InfluxPlan:
    """Every point and event of `reports` as line-protocol batches; what cannot be written is rejected."""
    names = _Names()
    batches: list[Batch] = []
    rejected: list[Rejection] = []
    current = Batch()
    for report in reports:
        points: Sequence[Point] = report.points
        if report.events:
            points = [*report.points, *(e.as_point() for e in report.events)]
        if not points:
            continue
        host_tags = {"host": report.host, **{k: v for k, v in report.tags.items() if k != "host"}}
        # Points of one report repeat a few tag sets: each set is escaped and checked once.
        series: dict[tuple[tuple[str, str], ...], tuple[str, str | None]] = {}
        for p in points:
            tag_key = tuple(p.tags.items())
            tag_set = series.get(tag_key)
            if tag_set is None:
                tag_set = series[tag_key] = _tag_set({**host_tags, **p.tags}, names)
            line, reason = _line(p, tag_set, names)
            if reason is not None:
                rejected.append(Rejection(p.index, p.path, f"{p.path}: {reason}"))
                continue
            size = len(line) + 1
            if current.lines and (
                len(current.lines) >= max_lines or current.size + size > max_bytes
            ):
                batches.append(current)
                current = Batch()
            current.lines.append(line)
            current.sources.append(p)
            current.size += size
    if current.lines:
        batches.append(current)
    return InfluxPlan(batches, rejected)


def _tag_set(tags: dict[str, str], names: _Names) -> tuple[str, str | None]:
    parts = []
    for k in sorted(tags):
        key, problem = names.key(k, "tag key")
        if problem is None:
            problem = unwritable(tags[k], f"tag {k!r} value", name=False)
        if problem is not None:
            return "", problem
        parts.append(f",{key}={escape_key(tags[k])}")
    return "".join(parts), None


def _line(p: Point, tag_set: tuple[str, str | None], names: _Names) -> tuple[str, str | None]:
    measurement, problem = names.measurement(p.measurement)
    if problem is None:
        problem = tag_set[1]
    if problem is not None:
        return "", problem
    head = measurement + tag_set[0]
    if len(head) > MAX_KEY_BYTES // 4 and len(head.encode()) > MAX_KEY_BYTES:
        return "", f"measurement and tags take more than InfluxDB's {MAX_KEY_BYTES} bytes"
    if not p.fields:
        return "", "no field to store"
    parts = []
    keys = names.keys
    for k, v in p.fields.items():
        known = keys.get(k)
        if known is None:
            known = names.key(k, "field key")
        if known[1] is not None:
            return "", known[1]
        if type(v) is float and v - v == 0.0:
            text = repr(v)  # a finite float, the common case
        else:
            try:
                text = format_value(v)
            except ValueError as exc:
                return "", f"field {k!r}: {exc}"
        parts.append(f"{known[0]}={text}")
    return f"{head} {','.join(parts)} {p.time_ms}", None


# ------------------------------------------------------------ InfluxDB's answers


@dataclass(frozen=True, slots=True)
class Refusal:
    """What a 400/422 answer to a write says about the points it refused."""

    message: str
    partial: bool  # "partial write": every point not dropped was stored
    dropped: int | None
    conflict: tuple[str, str, str] | None  # (measurement, field, type of the refused value)
    line: str | None  # the line quoted by "unable to parse '...'"
    about_points: bool  # False: the request itself was refused (a setting, not the data)


# Words of InfluxDB's 1.x/2.x/3.x messages about refused points, as opposed to a refused
# request ("invalid precision", "organization name is required"): only points are worth
# narrowing down; a request refused as such is a configuration problem.
_POINT_WORDS = re.compile(
    r"partial write|unable to parse|parse|field type conflict|dropped=|retention|"
    r"invalid field|invalid tag|max-values-per-tag|max-series|line protocol|schema",
    re.IGNORECASE,
)


_DROPPED_RE = re.compile(r"dropped=(\d+)")
_CONFLICT_RE = re.compile(
    r'input field "((?:[^"\\]|\\.)*)" on measurement "((?:[^"\\]|\\.)*)" is type (\w+)'
)
_UNPARSED_RE = re.compile(r"unable to parse '(.+?)': ")


def read_refusal(message: str, status: int = 400) -> Refusal:
    """What a refusal says; a 422 is always about points (InfluxDB 2.x's partial writes)."""
    dropped = _DROPPED_RE.search(message)
    conflict = _CONFLICT_RE.search(message)
    unparsed = _UNPARSED_RE.search(message)
    return Refusal(
        message=message,
        partial="partial write" in message,
        dropped=int(dropped.group(1)) if dropped else None,
        conflict=(
            (_unquote(conflict.group(2)), _unquote(conflict.group(1)), conflict.group(3))
            if conflict
            else None
        ),
        line=unparsed.group(1) if unparsed else None,
        about_points=status == 422 or bool(_POINT_WORDS.search(message)),
    )


def field_type(value: FieldValue) -> str:
    """The InfluxDB type a value is written as (fleetpulse's type rule: numbers are floats)."""
    if type(value) is bool:
        return "boolean"
    if type(value) is str:
        return "string"
    return "float"


def suspects(batch: Batch, refusal: Refusal) -> list[int]:
    """Indices of the lines the refusal names (by field type conflict or quoted line)."""
    if refusal.conflict is not None:
        measurement, name, kind = refusal.conflict
        return [
            i
            for i, p in enumerate(batch.sources)
            if p.measurement == measurement
            and name in p.fields
            and field_type(p.fields[name]) == kind
        ]
    if refusal.line is not None:
        return [i for i, line in enumerate(batch.lines) if line == refusal.line]
    return []


def error_message(body: bytes) -> str:
    """The message of an InfluxDB error body: v1 `{"error"}`, v2 `{"code", "message"}`, or text."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        for key in ("message", "error"):
            value = doc.get(key)
            if isinstance(value, str) and value:
                text = value
                break
    return text if len(text) <= 500 else text[:499] + "…"


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)
