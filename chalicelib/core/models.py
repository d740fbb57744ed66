"""What the collector accepts, once validated: points, events and the host that sent them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

FieldValue = float | int | bool | str


class EventStatus(enum.StrEnum):
    """Nagios-style status of a service event (numbat seed)."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"


class HeartbeatState(enum.StrEnum):
    ALIVE = "alive"
    SHUTDOWN = "shutdown"  # graceful stop: the host is retired, nobody is paged


class InfluxApi(enum.StrEnum):
    """Which InfluxDB HTTP API: 1.x's `/write?db=` or 2.x's `/api/v2/write?org=&bucket=`."""

    V1 = "v1"
    V2 = "v2"


class Shape(enum.StrEnum):
    """Which of the accepted body shapes a request used."""

    NATIVE = "native"  # Contract 1
    VINLI = "vinli"  # {"data": [{"points": [...], "tags": {...}}]}
    NUMBAT = "numbat"  # a Riemann/numbat event, or a list of them
    LINE_PROTOCOL = "line-protocol"  # InfluxDB line protocol
    REMOTE_WRITE = "remote-write"  # Prometheus remote_write 1.0 (protobuf, snappy)
    COLLECTD = "collectd"  # collectd write_http, Format "JSON"


# Measurement names the collector itself writes; user points may not use them.
EVENT_MEASUREMENT = "event"
ALERT_MEASUREMENT = "alert"
JOB_MEASUREMENT = "job"  # a job's run: tag `job`, fields `duration_s`, `exit_status`
RESERVED_MEASUREMENTS = frozenset({EVENT_MEASUREMENT, ALERT_MEASUREMENT, JOB_MEASUREMENT})


@dataclass(slots=True)
class Point:
    """One sample of a measurement: fields measured at one instant, told apart by tags."""

    measurement: str
    time_ms: int
    tags: dict[str, str]  # the point's own tags; host tags live on the HostReport
    fields: dict[str, FieldValue]
    index: int = -1  # position in the request, for per-point rejections
    path: str = ""  # JSON path in the request: "points[3]", "data[0].points[2]"
    numeric: bool = False  # every field is an int or float (lets storage skip type checks)


@dataclass(slots=True)
class Event:
    """A service's status report; with a ttl it is also a heartbeat for that service."""

    service: str
    status: EventStatus
    time_ms: int
    ttl_ms: int | None = None
    description: str = ""
    value: float | None = None
    tags: tuple[str, ...] = ()
    index: int = -1
    path: str = ""

    def as_point(self) -> Point:
        """The event as a point of the reserved `event` measurement, for the metric store."""
        fields: dict[str, FieldValue] = {"status": self.status.value}
        if self.value is not None:
            fields["value"] = self.value
        if self.description:
            fields["description"] = self.description
        if self.ttl_ms is not None:
            fields["ttl_ms"] = self.ttl_ms
        if self.tags:
            fields["tags"] = ",".join(self.tags)
        return Point(
            EVENT_MEASUREMENT,
            self.time_ms,
            {"service": self.service},
            fields,
            self.index,
            self.path,
        )


@dataclass(slots=True)
class AgentInfo:
    name: str
    version: str


@dataclass(slots=True)
class HostReport:
    """Everything one request said about one host."""

    host: str
    tags: dict[str, str] = field(default_factory=dict)
    agent: AgentInfo | None = None
    interval_s: int | None = None  # None: keep what the host said before
    state: HeartbeatState = HeartbeatState.ALIVE
    points: list[Point] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A point or event that was not stored, and why."""

    index: int
    path: str
    reason: str

    def as_json(self) -> dict[str, object]:
        return {"index": self.index, "path": self.path, "reason": self.reason}
