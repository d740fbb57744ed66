"""Host reports as Timestream WriteRecords requests, within every Timestream limit.

Each point becomes one multi-measure record: its measurement is the measure
name, its fields are the measures, its tags are dimensions. The host and its
tags are the same for every record of a report, so they travel once per call
in `CommonAttributes`, and so does the time when every record of a call shares
it: Timestream meters a WriteRecords call as the sum of its parts, common
attributes counted once, in 1 KiB units. Everything Timestream would
refuse is refused here first, with the reason named, because the moto stub the
tests run against accepts anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.limits import (
    TIMESTREAM_MAX_DIMENSIONS,
    TIMESTREAM_MAX_MEASURE_VALUE_BYTES,
    TIMESTREAM_MAX_MEASURES_PER_RECORD,
    TIMESTREAM_MAX_RECORD_BYTES,
    TIMESTREAM_MAX_RECORDS_PER_WRITE,
    TIMESTREAM_MAX_SERIES_DIMENSION_BYTES,
)
from chalicelib.core.models import HostReport, Point, Rejection

# Timestream's own per-record overhead is not documented; the time value and
# type markers are counted as this many bytes so the estimate errs on the safe side.
RECORD_OVERHEAD_BYTES = 16
# repr() of a float or a 64-bit int never takes more characters than this.
_MAX_NUMBER_TEXT = 24
# Field names longer than this are refused by validation (Limits.max_name_bytes
# can only lower it); the fast size bound relies on it.
MAX_FIELD_NAME_BYTES = 128

Record = dict[str, Any]


@dataclass(slots=True)
class WriteRequest:
    """One WriteRecords call: at most 100 records sharing `common` attributes."""

    common: dict[str, Any]
    records: list[Record] = field(default_factory=list)
    sources: list[Point] = field(default_factory=list)  # records[i] came from sources[i]

    def params(self, database: str, table: str) -> dict[str, Any]:
        return {
            "DatabaseName": database,
            "TableName": table,
            "CommonAttributes": self.common,
            "Records": self.records,
        }


@dataclass(slots=True)
class WritePlan:
    requests: list[WriteRequest]
    rejected: list[Rejection]

    @property
    def record_count(self) -> int:
        return sum(len(r.records) for r in self.requests)


def plan_writes(reports: Iterable[HostReport], include_events: bool = True) -> WritePlan:
    """Convert reports to WriteRecords calls; points Timestream would refuse are rejected."""
    requests: list[WriteRequest] = []
    rejected: list[Rejection] = []
    for report in reports:
        points: Sequence[Point] = report.points
        if include_events and report.events:
            points = [*report.points, *(e.as_point() for e in report.events)]
        if points:
            _plan_report(report, points, requests, rejected)
    return WritePlan(requests, rejected)


def _plan_report(
    report: HostReport,
    points: Sequence[Point],
    requests: list[WriteRequest],
    rejected: list[Rejection],
) -> None:
    host_tags = {"host": report.host, **{k: v for k, v in report.tags.items() if k != "host"}}
    common_dims = [{"Name": k, "Value": v} for k, v in host_tags.items()]
    common_bytes = sum(len(k.encode()) + len(v.encode()) for k, v in host_tags.items())
    common = {"Dimensions": common_dims, "MeasureValueType": "MULTI", "TimeUnit": "MILLISECONDS"}
    # Points whose own tags override a host tag cannot use the shared dimensions:
    # they go in calls of their own carrying every dimension per record.
    override_common = {"MeasureValueType": "MULTI", "TimeUnit": "MILLISECONDS"}
    open_requests = {False: WriteRequest(common), True: WriteRequest(override_common)}
    # Points of one report mostly repeat a few series (cpu with cpu=total, disk
    # with mount=/): each series' dimensions are built, measured and checked once.
    series: dict[tuple[str, tuple[tuple[str, str], ...]], _Series] = {}
    time_text: dict[int, str] = {}
    for p in points:
        key = (p.measurement, tuple(p.tags.items()))
        s = series.get(key)
        if s is None:
            s = series[key] = _Series(p.measurement, p.tags, host_tags, common_bytes)
        reason = s.reason
        fields = p.fields
        n_fields = len(fields)
        if reason is None and n_fields > TIMESTREAM_MAX_MEASURES_PER_RECORD:
            reason = f"{n_fields} fields; Timestream allows {TIMESTREAM_MAX_MEASURES_PER_RECORD} per record"
        if reason is None:
            if p.numeric:
                measures = [
                    {"Name": k, "Value": repr(v), "Type": "DOUBLE"} for k, v in fields.items()
                ]
                # A number's text is at most 24 characters and a field name at most
                # MAX_FIELD_NAME_BYTES: only a wide point can reach the limit.
                if n_fields > s.safe_numeric_fields:
                    size = s.fixed_bytes + sum(map(len, fields)) + _MAX_NUMBER_TEXT * n_fields
                    if size > TIMESTREAM_MAX_RECORD_BYTES:
                        size = s.fixed_bytes + sum(
                            len(m["Name"]) + len(m["Value"]) for m in measures
                        )
                        if size > TIMESTREAM_MAX_RECORD_BYTES:
                            reason = _too_big(size)
            else:
                measures, size, reason = _measures(p)
                size += s.fixed_bytes
                if reason is None and size > TIMESTREAM_MAX_RECORD_BYTES:
                    reason = _too_big(size)
        if reason is not None:
            rejected.append(Rejection(p.index, p.path, f"{p.path}: {reason}"))
            continue
        # Same series and instant twice in one request: an exact repeat is
        # harmless, a different value would be refused by Timestream.
        t = p.time_ms
        earlier = s.seen.get(t)
        if earlier is not None:
            first, first_measures = earlier
            if first_measures != measures:
                rejected.append(
                    Rejection(
                        p.index,
                        p.path,
                        f"{p.path}: same series and time as {first.path} with different values",
                    )
                )
            continue
        s.seen[t] = (p, measures)
        text = time_text.get(t)
        if text is None:
            text = time_text[t] = str(t)
        target = open_requests[s.overrides]
        if len(target.records) == TIMESTREAM_MAX_RECORDS_PER_WRITE:
            base = target.common
            requests.append(_hoist_time(target))
            target = open_requests[s.overrides] = WriteRequest(base)
        target.records.append(
            {
                "Dimensions": s.dims,
                "MeasureName": p.measurement,
                "MeasureValues": measures,
                "Time": text,
            }
        )
        target.sources.append(p)
    requests.extend(_hoist_time(r) for r in open_requests.values() if r.records)


def _hoist_time(request: WriteRequest) -> WriteRequest:
    """A call whose records all share one time sends it once, in its common attributes."""
    records = request.records
    t = records[0]["Time"]
    for record in records:
        if record["Time"] != t:
            return request
    for record in records:
        del record["Time"]
    request.common = {**request.common, "Time": t}
    return request


def _too_big(size: int) -> str:
    return (
        f"the record would be about {size} bytes; Timestream allows "
        f"{TIMESTREAM_MAX_RECORD_BYTES} (fewer fields or shorter tags)"
    )


class _Series:
    """One tag set's dimensions: built, measured and checked once per report."""

    __slots__ = (
        "dims",
        "dims_bytes",
        "fixed_bytes",
        "overrides",
        "reason",
        "safe_numeric_fields",
        "seen",
    )

    def __init__(
        self, measurement: str, tags: dict[str, str], host_tags: dict[str, str], common_bytes: int
    ) -> None:
        self.seen: dict[int, tuple[Point, list[dict[str, str]]]] = {}
        self.overrides = not host_tags.keys().isdisjoint(tags)
        if self.overrides:
            merged = {**host_tags, **tags}
            n_dims = len(merged)
            self.dims_bytes = sum(len(k) + len(v.encode()) for k, v in merged.items())
            self.dims = [{"Name": k, "Value": v} for k, v in merged.items()]
        else:
            n_dims = len(host_tags) + len(tags)
            self.dims_bytes = common_bytes + sum(len(k) + len(v.encode()) for k, v in tags.items())
            self.dims = [{"Name": k, "Value": v} for k, v in tags.items()]
        self.fixed_bytes = self.dims_bytes + len(measurement) + RECORD_OVERHEAD_BYTES
        # How many numeric fields always fit, whatever their names (≤ 128 bytes each).
        self.safe_numeric_fields = max(
            0,
            (TIMESTREAM_MAX_RECORD_BYTES - self.fixed_bytes)
            // (MAX_FIELD_NAME_BYTES + _MAX_NUMBER_TEXT),
        )
        self.reason: str | None = None
        if n_dims > TIMESTREAM_MAX_DIMENSIONS:
            self.reason = (
                f"{n_dims} dimensions with the host's tags; Timestream allows "
                f"{TIMESTREAM_MAX_DIMENSIONS}"
            )
        elif self.dims_bytes > TIMESTREAM_MAX_SERIES_DIMENSION_BYTES:
            self.reason = (
                f"tags take {self.dims_bytes} bytes with the host's tags; Timestream allows "
                f"{TIMESTREAM_MAX_SERIES_DIMENSION_BYTES} per series"
            )


def _measures(p: Point) -> tuple[list[dict[str, str]], int, str | None]:
    measures: list[dict[str, str]] = []
    size = 0
    for name, v in p.fields.items():
        tv = type(v)
        # Every number is stored as DOUBLE: a field sent as 1 one minute and
        # 1.5 the next must not change its type, which Timestream refuses.
        if tv is float:
            text = repr(v)
            kind = "DOUBLE"
        elif tv is int:
            text = str(v)
            kind = "DOUBLE"
        elif tv is bool:
            text = "true" if v else "false"
            kind = "BOOLEAN"
        else:
            text = v  # type: ignore[assignment]
            if not text:
                continue  # Timestream refuses empty measure values; an empty string says nothing
            kind = "VARCHAR"
            encoded = len(text.encode())
            if encoded > TIMESTREAM_MAX_MEASURE_VALUE_BYTES:
                return (
                    [],
                    0,
                    f"field {name!r} is longer than {TIMESTREAM_MAX_MEASURE_VALUE_BYTES} bytes",
                )
            size += encoded - len(text)
        size += len(name) + len(text)
        measures.append({"Name": name, "Value": text, "Type": kind})
    if not measures:
        return [], 0, "no field with a value to store"
    return measures, size, None


def expand_records(common: dict[str, Any], records: Iterable[Record]) -> Iterator[Record]:
    """Each record as Timestream stores it: the common attributes merged in.

    moto drops `CommonAttributes`, so tests read back through this.
    """
    common_dims = common.get("Dimensions", [])
    for record in records:
        merged = {k: v for k, v in common.items() if k != "Dimensions"}
        merged.update(record)
        merged["Dimensions"] = [*common_dims, *record.get("Dimensions", [])]
        yield merged
