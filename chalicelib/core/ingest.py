"""From request bytes to validated host reports.

Three body shapes are accepted (Contract 1 in DESIGN.md): the native one, the
Vinli seed's `{"data": [...]}` and numbat/Riemann events. Whatever the shape,
the result is a list of `HostReport`s plus the items that were refused, each
named by its JSON path. A request is refused as a whole (`InvalidPayload`)
only when its envelope is unusable or when not a single item in it is valid;
otherwise the good items go through and the bad ones are listed.

This module is on the hot path of every post: names that were valid once are
remembered, and the per-point loop avoids work it can skip.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.errors import InvalidPayload, PayloadTooLarge, Problem, UnsupportedMediaType
from chalicelib.core.limits import Limits
from chalicelib.core.models import (
    RESERVED_MEASUREMENTS,
    AgentInfo,
    Event,
    EventStatus,
    FieldValue,
    HeartbeatState,
    HostReport,
    Point,
    Rejection,
    Shape,
)
from chalicelib.core.text import NAME_SHOWN, clip

# Names (measurements, fields, tag keys, services): letters, digits and `_ . - /`,
# starting with a letter or `_`. No `:` (Timestream refuses it in dimension names),
# no spaces or quotes (they would need escaping in every query language).
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*\Z")
HOST_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
# Column names Timestream reserves; a tag or field with one of them cannot be stored.
RESERVED_NAMES = frozenset({"time", "measure_name", "measure_value"})
RESERVED_PREFIXES = ("ts_", "measure_value")

MIN_INTERVAL_S = 1
MAX_INTERVAL_S = 86_400
# Anything below this many milliseconds since the epoch (1973) is taken to be seconds.
SECONDS_CUTOFF = 100_000_000_000
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_MAX_CACHED_NAMES = 20_000

_STATUS_ALIASES = {
    "ok": EventStatus.OK,
    "okay": EventStatus.OK,
    "warning": EventStatus.WARNING,
    "warn": EventStatus.WARNING,
    "critical": EventStatus.CRITICAL,
    "crit": EventStatus.CRITICAL,
    "unknown": EventStatus.UNKNOWN,
}

JSON_CONTENT_TYPES = ("application/json",)


class NonFinite:
    """Stands in for a `NaN`/`Infinity` literal so validation can name where it was."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal


@dataclass(slots=True)
class ParsedRequest:
    shape: Shape
    reports: list[HostReport]
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def accepted_points(self) -> int:
        return sum(len(r.points) for r in self.reports)

    @property
    def accepted_events(self) -> int:
        return sum(len(r.events) for r in self.reports)


# ---------------------------------------------------------------- body decoding


def check_content_type(content_type: str | None) -> None:
    """Refuse anything but JSON (415). A missing Content-Type is taken as JSON, like curl -d."""
    if not content_type:
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in JSON_CONTENT_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {media!r} is not supported; send application/json",
        )


def decode_body(raw: bytes, content_encoding: str | None, limits: Limits) -> bytes:
    """Undo the Content-Encoding, refusing bodies over the size limits (413) before and after.

    `gzip` is inflated in bounded steps, so a small body that would expand to
    gigabytes (a gzip bomb) is refused once it passes `max_decompressed_bytes`.
    """
    if len(raw) > limits.max_body_bytes:
        raise PayloadTooLarge(
            f"body is {len(raw)} bytes; the limit is {limits.max_body_bytes} bytes "
            "(split the batch, or gzip it)",
        )
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("identity", ""):
        return raw
    if encoding not in ("gzip", "x-gzip"):
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not supported; use gzip or none",
        )
    if not raw.startswith(b"\x1f\x8b"):
        # API Gateway inflates gzip bodies itself when compression is enabled
        # on the API, but leaves the header: what arrives is already plain.
        return raw
    return _gunzip(raw, limits.max_decompressed_bytes)


def _gunzip(raw: bytes, limit: int) -> bytes:
    out: list[bytes] = []
    size = 0
    data = raw
    try:
        while data:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            chunk = inflater.decompress(data, limit - size + 1)
            while True:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(
                        f"body inflates to more than {limit} bytes; the limit after gzip "
                        f"is {limit} bytes",
                    )
                out.append(chunk)
                if not inflater.unconsumed_tail:
                    break
                chunk = inflater.decompress(inflater.unconsumed_tail, limit - size + 1)
            if not inflater.eof:
                raise InvalidPayload("gzip body is truncated")
            data = inflater.unused_data  # a further gzip member, if any
    except zlib.error as exc:
        raise InvalidPayload(f"body is not valid gzip: {exc}") from None
    return b"".join(out)


def _non_finite(literal: str) -> NonFinite:
    return NonFinite(literal)


def parse_json(body: bytes) -> Any:
    """Parse JSON, keeping NaN/Infinity literals as markers for validation to report."""
    try:
        # RFC 8259: JSON between systems is UTF-8. json.loads(bytes) would also
        # guess UTF-16 and UTF-32, turning a mangled body into a confusing error.
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPayload(f"body is not UTF-8 text (byte {exc.start})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        return json.loads(text, parse_constant=_non_finite)
    except RecursionError:
        raise InvalidPayload("body is nested too deeply") from None
    except ValueError as exc:  # json.JSONDecodeError
        raise InvalidPayload(f"body is not valid JSON: {exc}") from None


# ------------------------------------------------------------------ validation


class _NameCache:
    """Names that passed validation once; most requests repeat the same few dozen."""

    __slots__ = ("max_bytes", "ok", "reserved")

    def __init__(self, max_bytes: int, reserved: frozenset[str] = frozenset()) -> None:
        self.max_bytes = max_bytes
        self.reserved = reserved  # names fleetpulse writes itself
        self.ok: set[str] = set()

    def problem(self, name: object, what: str) -> str | None:
        if not isinstance(name, str):
            return f"{what} must be a string, got {_type_name(name)}"
        if name in self.ok:
            return None
        if not name:
            return f"{what} must not be empty"
        if len(name.encode()) > self.max_bytes:
            return f"{what} {clip(name, NAME_SHOWN)!r} is longer than {self.max_bytes} bytes"
        if not NAME_RE.match(name):
            return (
                f"{what} {clip(name, NAME_SHOWN)!r} has characters outside letters, digits and _ . - / "
                "(or does not start with a letter or _)"
            )
        if name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES):
            return f"{what} {name!r} is reserved by the metric store"
        if name in self.reserved:
            return f"{what} {name!r} is reserved for fleetpulse's own {name}s"
        if len(self.ok) >= _MAX_CACHED_NAMES:
            self.ok.clear()
        self.ok.add(name)
        return None


_caches: dict[tuple[str, int], _NameCache] = {}


def _cache(kind: str, max_bytes: int) -> _NameCache:
    key = (kind, max_bytes)
    cache = _caches.get(key)
    if cache is None:
        reserved = RESERVED_MEASUREMENTS if kind == "measurement" else frozenset()
        cache = _caches[key] = _NameCache(max_bytes, reserved)
    return cache


class Validator:
    """Turns one parsed document into host reports and rejections, at one instant."""

    def __init__(self, limits: Limits, now_ms: int) -> None:
        self.limits = limits
        self.now_ms = now_ms
        retention_ms = int(limits.memory_retention.total_seconds() * 1000)
        # A minute of margin each side: the record still has to reach the store.
        self.oldest_ms = now_ms - retention_ms + 60_000
        self.newest_ms = now_ms + int(limits.future_window.total_seconds() * 1000) - 10_000
        self.measurements = _cache("measurement", limits.max_name_bytes)
        self.field_names = _cache("field", limits.max_name_bytes)
        self.tag_keys = _cache("tag", limits.max_tag_key_bytes)
        self.rejected: list[Rejection] = []
        self.invalid: list[Problem] = []

    # -- bookkeeping

    def _refuse(self, index: int, path: str, problems: list[Problem]) -> None:
        self.invalid.extend(problems)
        for p in problems:
            self.rejected.append(Rejection(index, path, f"{p.path}: {p.message}"))

    def refuse(self, index: int, path: str, problems: list[Problem]) -> None:
        """Record an item another front end (line protocol) found invalid before validation."""
        self._refuse(index, path, problems)

    def out_of_window(self, index: int, path: str, time_ms: int) -> bool:
        """Refuse a time outside the store's window (True), for front ends that check per sample."""
        if self.oldest_ms <= time_ms <= self.newest_ms:
            return False
        return self._out_of_window(index, path, time_ms)

    def _out_of_window(self, index: int, path: str, time_ms: int) -> bool:
        if time_ms < self.oldest_ms:
            age_h = (self.now_ms - time_ms) / 3_600_000
            hours = self.limits.memory_retention.total_seconds() / 3600
            self.rejected.append(
                Rejection(
                    index,
                    path,
                    f"{path}.time: {age_h:.1f} h old; the store accepts points up to "
                    f"{hours:g} h old",
                )
            )
            return True
        if time_ms > self.newest_ms:
            ahead_min = (time_ms - self.now_ms) / 60_000
            window = self.limits.future_window.total_seconds() / 60
            self.rejected.append(
                Rejection(
                    index,
                    path,
                    f"{path}.time: {ahead_min:.1f} min in the future; the store accepts at "
                    f"most {window:g} min ahead (check the host's clock)",
                )
            )
            return True
        return False

    # -- envelope pieces

    def host(self, value: object, path: str) -> tuple[str | None, Problem | None]:
        if not isinstance(value, str) or not value:
            return None, Problem(path, "host is required: a non-empty string")
        if len(value.encode()) > self.limits.max_host_bytes:
            return None, Problem(path, f"host is longer than {self.limits.max_host_bytes} bytes")
        if not HOST_RE.match(value):
            return None, Problem(
                path, f"host {clip(value, NAME_SHOWN)!r} may only hold letters, digits and . _ -"
            )
        return value, None

    def _plain_tags(self, tags: object) -> bool:
        """The common case, checked fast: known keys, short non-empty string values."""
        if type(tags) is not dict or len(tags) > self.limits.max_tags:
            return False
        ok = self.tag_keys.ok
        short = self.limits.max_tag_value_bytes // 4  # any such string fits in bytes too
        for k, v in tags.items():
            if k not in ok or type(v) is not str or not v or len(v) > short:
                return False
        return True

    def tag_map(self, value: object, path: str, problems: list[Problem]) -> dict[str, str]:
        """Validate a `{name: value}` tag map; empty values are dropped (as Telegraf does)."""
        if value is None:
            return {}
        if type(value) is not dict:
            problems.append(Problem(path, f"tags must be an object, got {_type_name(value)}"))
            return {}
        if len(value) > self.limits.max_tags:
            problems.append(
                Problem(path, f"{len(value)} tags; at most {self.limits.max_tags} are allowed")
            )
            return {}
        out: dict[str, str] = {}
        keys = self.tag_keys
        max_value = self.limits.max_tag_value_bytes
        for k, raw in value.items():
            if k not in keys.ok:
                msg = keys.problem(k, "tag name")
                if msg:
                    problems.append(Problem(f"{path}.{clip(k, NAME_SHOWN)}", msg))
                    continue
            v = raw
            if type(v) is not str:
                if _number(v) is not None:
                    v = repr(v) if type(v) is float else str(v)
                else:
                    problems.append(
                        Problem(f"{path}.{k}", f"tag value must be a string, got {_type_name(v)}")
                    )
                    continue
            if not v:
                continue
            if len(v) > max_value // 4 and len(v.encode()) > max_value:
                problems.append(
                    Problem(f"{path}.{k}", f"tag value is longer than {max_value} bytes")
                )
                continue
            out[k] = v
        return out

    def time(self, value: object, path: str, problems: list[Problem]) -> int | None:
        if value is None:
            return self.now_ms
        t = value
        if type(t) is float:
            if not math.isfinite(t):
                problems.append(Problem(path, "time must be a finite number"))
                return None
            t = int(t)
        elif type(t) is not int:
            problems.append(
                Problem(
                    path, f"time must be epoch milliseconds (a number), got {_type_name(value)}"
                )
            )
            return None
        if t < SECONDS_CUTOFF:
            problems.append(
                Problem(
                    path, f"time {t} looks like seconds or is negative; send epoch milliseconds"
                )
            )
            return None
        return t

    # -- points

    def point(self, raw: object, index: int, path: str, numeric_strings: bool) -> Point | None:
        if type(raw) is not dict:
            self._refuse(
                index, path, [Problem(path, f"point must be an object, got {_type_name(raw)}")]
            )
            return None
        problems: list[Problem] = []
        measurement = raw.get("measurement")
        if type(measurement) is not str or measurement not in self.measurements.ok:
            msg = self.measurements.problem(measurement, "measurement")
            if msg:
                problems.append(Problem(f"{path}.measurement", msg))
        t: int | None = raw.get("time")
        if type(t) is not int or t < SECONDS_CUTOFF:
            t = self.time(t, f"{path}.time", problems)
        tags = raw.get("tags")
        if tags:
            if not self._plain_tags(tags):
                tags = self.tag_map(tags, f"{path}.tags", problems)
        else:
            tags = {}
        fields, numeric = self.fields(raw.get("fields"), path, problems, numeric_strings)
        if tags and not tags.keys().isdisjoint(fields):
            for name in fields.keys() & tags.keys():
                problems.append(
                    Problem(f"{path}.fields.{name}", f"field {name!r} has the same name as a tag")
                )
        if problems:
            self._refuse(index, path, problems)
            return None
        assert t is not None
        if (t < self.oldest_ms or t > self.newest_ms) and self._out_of_window(index, path, t):
            return None
        return Point(measurement, t, tags, fields, index, path, numeric)  # type: ignore[arg-type]

    def fields(
        self, value: object, point_path: str, problems: list[Problem], numeric_strings: bool
    ) -> tuple[dict[str, FieldValue], bool]:
        """Validate a point's fields; also says whether every value is a number."""
        path = point_path + ".fields"
        if type(value) is not dict:
            if value is None:
                problems.append(Problem(path, "fields is required: an object of name: value"))
            else:
                problems.append(Problem(path, f"fields must be an object, got {_type_name(value)}"))
            return {}, False
        if not value:
            problems.append(Problem(path, "fields must hold at least one field"))
            return value, False
        if len(value) > self.limits.max_fields:
            problems.append(
                Problem(path, f"{len(value)} fields; at most {self.limits.max_fields} are allowed")
            )
            return {}, False
        names = self.field_names
        clean = True
        numeric = True
        for k, v in value.items():
            if k not in names.ok:
                msg = names.problem(k, "field name")
                if msg:
                    problems.append(Problem(f"{path}.{clip(k, NAME_SHOWN)}", msg))
                    clean = False
                    continue
            tv = type(v)
            if tv is float:
                if v - v != 0.0:  # NaN or infinity (1e999 parses as inf)
                    problems.append(Problem(f"{path}.{k}", "value must be a finite number"))
                    clean = False
            elif tv is int:
                if not INT64_MIN <= v <= INT64_MAX:
                    problems.append(Problem(f"{path}.{k}", "integer does not fit in 64 bits"))
                    clean = False
            elif tv is bool:
                numeric = False
            elif tv is str:
                numeric = False
                if numeric_strings:
                    clean = False  # rebuilt below with the numbers converted
                elif len(v) > self.limits.max_string_field_bytes // 4 and (
                    len(v.encode()) > self.limits.max_string_field_bytes
                ):
                    problems.append(
                        Problem(
                            f"{path}.{k}",
                            f"string is longer than {self.limits.max_string_field_bytes} bytes",
                        )
                    )
                    clean = False
            elif tv is NonFinite:
                problems.append(
                    Problem(f"{path}.{k}", f"{v.literal} is not allowed; values must be finite")
                )
                clean = False
            else:
                problems.append(
                    Problem(
                        f"{path}.{k}",
                        f"value must be a number, boolean or string, got {_type_name(v)}",
                    )
                )
                clean = False
        if clean:
            return value, numeric
        if problems:
            return {}, False
        return self._convert_numeric_strings(value, path, problems), False

    def _convert_numeric_strings(
        self, value: dict[str, Any], path: str, problems: list[Problem]
    ) -> dict[str, FieldValue]:
        out: dict[str, FieldValue] = {}
        for k, v in value.items():
            if type(v) is str:
                number = _parse_number(v)
                if number is None:
                    if len(v.encode()) > self.limits.max_string_field_bytes:
                        problems.append(
                            Problem(
                                f"{path}.{k}",
                                f"string is longer than {self.limits.max_string_field_bytes} bytes",
                            )
                        )
                        continue
                    out[k] = v
                elif isinstance(number, float) and not math.isfinite(number):
                    problems.append(Problem(f"{path}.{k}", f"{v!r} is not a finite number"))
                else:
                    out[k] = number
            else:
                out[k] = v
        return out

    # -- events

    def event(
        self, raw: object, index: int, path: str, host: str | None
    ) -> tuple[str | None, Event | None]:
        """Validate one event; returns its host (from the event or the envelope) and the event."""
        if type(raw) is not dict:
            self._refuse(
                index, path, [Problem(path, f"event must be an object, got {_type_name(raw)}")]
            )
            return None, None
        problems: list[Problem] = []
        event_host = raw.get("host")
        if event_host is None:
            if host is None:
                problems.append(Problem(f"{path}.host", "host is required"))
        else:
            event_host, problem = self.host(event_host, f"{path}.host")
            if problem:
                problems.append(problem)
            elif host is not None and event_host != host:
                problems.append(
                    Problem(f"{path}.host", f"event host {event_host!r} differs from {host!r}")
                )
        service = raw.get("service")
        msg = _cache("service", self.limits.max_name_bytes).problem(service, "service")
        if msg:
            problems.append(Problem(f"{path}.service", msg))
        raw_status = raw.get("status", raw.get("state"))
        status = _STATUS_ALIASES.get(raw_status.lower()) if isinstance(raw_status, str) else None
        if status is None:
            problems.append(
                Problem(
                    f"{path}.status",
                    f"status must be one of ok, warning, critical, unknown; got {clip(raw_status, NAME_SHOWN)!r}",
                )
            )
        time_ms = self._event_time(raw.get("time"), f"{path}.time", problems)
        ttl = raw.get("ttl")
        ttl_ms: int | None = None
        if ttl is not None:
            n = _number(ttl)
            if n is not None and 0 < n <= 366 * 86_400_000:
                ttl_ms = int(n)
            else:
                problems.append(
                    Problem(
                        f"{path}.ttl", "ttl must be a positive number of milliseconds (≤ 1 year)"
                    )
                )
        value = raw.get("value", raw.get("metric"))
        number: float | None = None
        if value is not None:
            n = _number(value)
            if n is None and type(value) is str:
                n = _parse_number(value)
            if n is not None and math.isfinite(n):
                number = float(n)
            else:
                problems.append(Problem(f"{path}.value", "value must be a finite number"))
        description = raw.get("description", "")
        if description is None:
            description = ""
        if not isinstance(description, str):
            problems.append(Problem(f"{path}.description", "description must be a string"))
        elif len(description.encode()) > self.limits.max_string_field_bytes:
            problems.append(
                Problem(
                    f"{path}.description",
                    f"description is longer than {self.limits.max_string_field_bytes} bytes",
                )
            )
        tags = raw.get("tags") or []
        if not (
            isinstance(tags, list)
            and len(tags) <= self.limits.max_tags
            and all(isinstance(t, str) and 0 < len(t) <= 64 and "," not in t for t in tags)
        ):
            problems.append(
                Problem(
                    f"{path}.tags",
                    f"tags must be a list of at most {self.limits.max_tags} short strings without commas",
                )
            )
        if problems:
            self._refuse(index, path, problems)
            return None, None
        assert time_ms is not None
        assert status is not None
        if self._out_of_window(index, path, time_ms):
            return None, None
        event = Event(
            service=service,  # type: ignore[arg-type]
            status=status,
            time_ms=time_ms,
            ttl_ms=ttl_ms,
            description=description,
            value=number,
            tags=tuple(tags),
            index=index,
            path=path,
        )
        return (event_host if event_host is not None else host), event

    def _event_time(self, value: object, path: str, problems: list[Problem]) -> int | None:
        # Riemann clients send seconds; numbat and Contract 1 send milliseconds.
        n = _number(value)
        if n is not None and 0 < n < SECONDS_CUTOFF:
            value = n * 1000
        return self.time(value, path, problems)

    # -- the envelopes

    def native(self, doc: dict[str, Any]) -> list[HostReport]:
        envelope: list[Problem] = []
        host, problem = self.host(doc.get("host"), "host")
        if problem:
            envelope.append(problem)
        tags = self.tag_map(doc.get("tags"), "tags", envelope)
        agent = _agent(doc.get("agent"), envelope)
        interval, state = _heartbeat(doc.get("heartbeat"), envelope)
        points_raw = doc.get("points", [])
        events_raw = doc.get("events", [])
        if points_raw is None:
            points_raw = []
        if events_raw is None:
            events_raw = []
        if not isinstance(points_raw, list):
            envelope.append(Problem("points", "points must be a list"))
        if not isinstance(events_raw, list):
            envelope.append(Problem("events", "events must be a list"))
        if envelope:
            raise InvalidPayload("request envelope is invalid", envelope)
        self._check_counts(len(points_raw), len(events_raw))
        assert host is not None
        report = HostReport(host=host, tags=tags, agent=agent, interval_s=interval, state=state)
        point = self.point
        append = report.points.append
        for i, raw in enumerate(points_raw):
            p = point(raw, i, f"points[{i}]", False)
            if p is not None:
                append(p)
        for i, raw in enumerate(events_raw):
            _, e = self.event(raw, i, f"events[{i}]", host)
            if e is not None:
                report.events.append(e)
        return [report]

    def vinli(self, doc: dict[str, Any]) -> list[HostReport]:
        data = doc["data"]
        if not isinstance(data, list):
            raise InvalidPayload(
                "request envelope is invalid", [Problem("data", "data must be a list")]
            )
        envelope: list[Problem] = []
        items: list[tuple[int, str, dict[str, str], list[Any]]] = []
        for i, item in enumerate(data):
            path = f"data[{i}]"
            if type(item) is not dict:
                envelope.append(Problem(path, "each data item must be an object"))
                continue
            tags = self.tag_map(item.get("tags"), f"{path}.tags", envelope)
            host_value = tags.pop("hostname", None) or tags.pop("host", None)
            tags.pop("host", None)
            host, problem = self.host(host_value, f"{path}.tags.hostname")
            if problem:
                envelope.append(problem)
            points = item.get("points", [])
            if not isinstance(points, list):
                envelope.append(Problem(f"{path}.points", "points must be a list"))
                continue
            if host is not None:
                items.append((i, host, tags, points))
        if envelope:
            raise InvalidPayload("request envelope is invalid", envelope)
        self._check_counts(sum(len(p) for _, _, _, p in items), 0)
        reports: dict[str, HostReport] = {}
        flat = 0
        for i, host, tags, points in items:
            report = reports.get(host)
            if report is None:
                report = reports[host] = HostReport(host=host)
            for j, raw in enumerate(points):
                p = self.point(raw, flat, f"data[{i}].points[{j}]", True)
                flat += 1
                if p is None:
                    continue
                if tags:
                    p.tags = {**tags, **p.tags}
                report.points.append(p)
        self._check_hosts(len(reports))
        return list(reports.values())

    def numbat(self, events: list[Any]) -> list[HostReport]:
        self._check_counts(0, len(events))
        reports: dict[str, HostReport] = {}
        for i, raw in enumerate(events):
            host, event = self.event(raw, i, f"[{i}]", None)
            if event is None or host is None:
                continue
            report = reports.get(host)
            if report is None:
                report = reports[host] = HostReport(host=host)
            report.events.append(event)
        self._check_hosts(len(reports))
        return list(reports.values())

    def _check_counts(self, points: int, events: int) -> None:
        if points > self.limits.max_points:
            raise PayloadTooLarge(
                f"{points} points in one request; the limit is {self.limits.max_points} "
                "(split the batch)",
            )
        if events > self.limits.max_events:
            raise PayloadTooLarge(
                f"{events} events in one request; the limit is {self.limits.max_events} "
                "(split the batch)",
            )

    def _check_hosts(self, hosts: int) -> None:
        if hosts > self.limits.max_hosts:
            raise PayloadTooLarge(
                f"{hosts} hosts in one request; the limit is {self.limits.max_hosts}",
            )


def validate(doc: Any, limits: Limits, now_ms: int) -> ParsedRequest:
    """Validate a parsed document of any accepted shape at instant `now_ms`.

    Raises `InvalidPayload` when the envelope is unusable or nothing in it is
    valid, `PayloadTooLarge` when it holds more items than the limits allow.
    """
    v = Validator(limits, now_ms)
    if isinstance(doc, dict):
        if "data" in doc and "host" not in doc:
            shape, reports = Shape.VINLI, v.vinli(doc)
        elif "service" in doc and "points" not in doc:
            shape, reports = Shape.NUMBAT, v.numbat([doc])
        else:
            shape, reports = Shape.NATIVE, v.native(doc)
    elif isinstance(doc, list):
        if not doc:
            raise InvalidPayload("an empty list holds no events")
        shape, reports = Shape.NUMBAT, v.numbat(doc)
    else:
        raise InvalidPayload(
            f"body must be a JSON object (or a list of events), got {_type_name(doc)}",
        )
    if v.invalid and not any(r.points or r.events for r in reports):
        raise InvalidPayload("no valid point or event in the request", v.invalid)
    return ParsedRequest(shape=shape, reports=reports, rejected=v.rejected)


def parse_ingest(
    raw: bytes,
    content_type: str | None,
    content_encoding: str | None,
    limits: Limits,
    now_ms: int,
) -> ParsedRequest:
    """The whole front half of ingest: media type, decoding, JSON, validation."""
    check_content_type(content_type)
    body = decode_body(raw, content_encoding, limits)
    return validate(parse_json(body), limits, now_ms)


# ---------------------------------------------------------------------- helpers


def _agent(value: object, problems: list[Problem]) -> AgentInfo | None:
    if value is None:
        return None
    if (
        type(value) is dict
        and isinstance(value.get("name", ""), str)
        and isinstance(value.get("version", ""), str)
        and len(value.get("name", "")) <= 64
        and len(value.get("version", "")) <= 64
    ):
        return AgentInfo(value.get("name", ""), value.get("version", ""))
    problems.append(
        Problem("agent", 'agent must be {"name": str, "version": str}, each ≤ 64 chars')
    )
    return None


def _heartbeat(value: object, problems: list[Problem]) -> tuple[int | None, HeartbeatState]:
    if value is None:
        return None, HeartbeatState.ALIVE
    if type(value) is not dict:
        problems.append(Problem("heartbeat", "heartbeat must be an object"))
        return None, HeartbeatState.ALIVE
    interval = value.get("interval")
    if interval is not None:
        n = _number(interval)
        if type(n) is float and n.is_integer():
            interval = int(n)
        if type(interval) is not int or not MIN_INTERVAL_S <= interval <= MAX_INTERVAL_S:
            problems.append(
                Problem(
                    "heartbeat.interval",
                    f"interval must be whole seconds from {MIN_INTERVAL_S} to {MAX_INTERVAL_S}",
                )
            )
            interval = None
    raw_state = value.get("state", "alive")
    try:
        state = HeartbeatState(raw_state)
    except ValueError:
        problems.append(Problem("heartbeat.state", "state must be 'alive' or 'shutdown'"))
        state = HeartbeatState.ALIVE
    return interval, state


_NUMBER_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\Z")


def _parse_number(text: str) -> int | float | None:
    """A numeric string as int or float; None when it is not a plain decimal number."""
    s = text.strip()
    if not _NUMBER_RE.match(s):
        return None
    if "." in s or "e" in s or "E" in s:
        return float(s)
    n = int(s)
    return n if INT64_MIN <= n <= INT64_MAX else float(n)


def _number(value: object) -> int | float | None:
    """The value of a finite JSON number; None for anything else (booleans included)."""
    tv = type(value)
    if tv is int:
        return value  # type: ignore[return-value]
    if tv is float:
        return value if math.isfinite(value) else None  # type: ignore[arg-type,return-value]
    return None


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, NonFinite):
        return value.literal
    return type(value).__name__
