"""A fleet worth a status page, seeded through the API on the alerting stack's clock:
every host state, firing (notified and silenced) and pending alerts, two kinds of silence,
an hour of CPU and memory, and hostile text wherever the API lets user input through."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from chalicelib.core.hosts import HostState, HostUpdate
from chalicelib.core.instants import ms_of_instant as ms

MIN = timedelta(minutes=1)
HOSTILE_HOST = "<script>alert(1)</script>"
HOSTILE_COMMENT = "<img src=x onerror=alert(1)> kernel upgrade"
HOSTILE_TAG = "<b>web</b>"
HOSTILE_MOUNT = "/data<i>x</i>"
MINUTES = 30

# send(method, path, body, token) -> (HTTP status, JSON body or None)
Send = Callable[[str, str, Any, str], tuple[int, Any]]


def body(host: str, at: datetime, busy: float, mem: float, disk: float, **extra: Any) -> dict:
    return {
        "host": host,
        "heartbeat": {"interval": 60},
        "agent": {"name": "fleetpulse-agent", "version": "0.1.0"},
        "points": [
            {
                "measurement": "cpu",
                "time": ms(at),
                "tags": {"cpu": "total"},
                "fields": {"idle": 100.0 - busy, "user": busy * 0.8, "system": busy * 0.2},
            },
            {"measurement": "memory", "time": ms(at), "fields": {"used_percent": mem}},
            {
                "measurement": "disk",
                "time": ms(at),
                "tags": {"mount": extra.pop("mount", "/")},
                "fields": {"used_percent": disk},
            },
        ],
        **extra,
    }


def seed_fleet(stack: Any, send: Send) -> datetime:
    """Seed `stack` (tests.support.alerting_aws.AlertingStack) through `send`; return the
    instant the page should be looked at (the stack's clock is left there)."""
    fleet, admin = stack.fleet_token, stack.admin_token

    def post(payload: dict) -> None:
        status, reply = send("POST", "/v1/ingest", payload, fleet)
        assert status == 202, reply

    def admin_call(method: str, path: str, payload: Any = None) -> Any:
        status, reply = send(method, path, payload, admin)
        assert status in (200, 201), reply
        return reply

    admin_call(
        "POST",
        "/v1/silences",
        {"matchers": {"host": "db-1"}, "duration": "2h", "comment": HOSTILE_COMMENT},
    )
    admin_call(
        "POST",
        "/v1/silences",
        {
            "matchers": {"role": "batch"},
            "schedule": {"days": ["sat"], "start": "02:00", "end": "04:00"},
            "comment": "weekly batch maintenance",
        },
    )
    post({"host": "old-1", "heartbeat": {"interval": 60, "state": "shutdown"}})
    post({"host": "batch-1", "heartbeat": {"interval": 60}, "tags": {"role": "batch"}})
    admin_call("POST", "/v1/hosts/batch-1/pause")
    for minute in range(MINUTES):
        at = stack.clock.advance(MIN)
        wave = math.sin(minute / 5)
        full = 97.0 if minute >= MINUTES - 8 else 60.0
        post(
            body(
                "web-1",
                at,
                busy=40 + 25 * wave,
                mem=50 + 5 * wave,
                disk=full,
                tags={"role": HOSTILE_TAG},
                mount=HOSTILE_MOUNT,
            )
        )
        post(body("db-1", at, busy=80 + 10 * wave, mem=82.0, disk=full))
        if minute < MINUTES - 10:
            post(body("web-2", at, busy=10.0, mem=30.0, disk=40.0))
        if minute < MINUTES - 1:
            post(body("api-1", at, busy=15 + 5 * wave, mem=35.0, disk=40.0))
        if minute >= MINUTES - 12:  # nothing happens before: spare the Scans
            stack.evaluate()
    # The last look: 90 s after api-1's last post (late), web-1 and db-1 just posted.
    api_disk_at = stack.clock.advance(timedelta(seconds=25))
    post(body("api-1", api_disk_at, busy=20.0, mem=36.0, disk=90.0))  # pending disk-full
    stack.evaluate()
    end = stack.clock.advance(timedelta(seconds=90))
    post(body("web-1", end, busy=45.0, mem=52.0, disk=97.0, mount=HOSTILE_MOUNT))
    post(body("db-1", end, busy=85.0, mem=82.0, disk=97.0))
    post({"host": "new-1", "heartbeat": {"interval": 60}})
    stack.evaluate()
    # A name the API would refuse, as a damaged or foreign item could still hold it.
    stack.services.host_store.record(
        HostUpdate(HOSTILE_HOST, end, HostState.UP, 60, {}, None, None)
    )
    return end
