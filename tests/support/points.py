"""Domain objects and bodies shared by the planner, validation and handler tests."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chalicelib.core.models import Event, HostReport, Point

NOW = 1_795_000_000_000  # epoch ms, 2026-11


def pt(i: int = 0, **kw: object) -> Point:
    """A validated point as the planners receive it; keyword arguments replace fields."""
    defaults: dict[str, object] = {
        "measurement": "cpu",
        "time_ms": NOW + i,
        "tags": {"cpu": "total"},
        "fields": {"user": 1.5},
        "index": i,
        "path": f"points[{i}]",
    }
    defaults.update(kw)
    p = Point(**defaults)  # type: ignore[arg-type]
    p.numeric = all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in p.fields.values()
    )
    return p


def report(
    *points: Point, tags: dict[str, str] | None = None, events: Iterable[Event] = ()
) -> HostReport:
    return HostReport(
        host="web-1", tags=tags or {"role": "web"}, points=list(points), events=list(events)
    )


def contract_body(time_ms: int) -> dict[str, Any]:
    """The body Contract 1 in DESIGN.md shows, at `time_ms`."""
    return {
        "host": "web-1.example.com",
        "tags": {"role": "web", "env": "prod"},
        "agent": {"name": "fleetpulse-agent", "version": "0.1.0"},
        "heartbeat": {"interval": 60, "state": "alive"},
        "points": [
            {
                "measurement": "cpu",
                "time": time_ms,
                "tags": {"cpu": "total"},
                "fields": {"user": 3.2, "system": 1.1, "idle": 95.7},
            }
        ],
        "events": [
            {
                "service": "nginx",
                "status": "critical",
                "description": "5xx rate 12%",
                "time": time_ms,
                "ttl": 120,
                "value": 12.0,
                "tags": ["http"],
            }
        ],
    }
