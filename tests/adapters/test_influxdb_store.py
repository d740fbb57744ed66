"""InfluxDBMetricStore against a real InfluxDB (Debian's 1.x, v1 API), read back with InfluxQL."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from chalicelib.adapters.influxdb import InfluxDBMetricStore
from chalicelib.core.influx import InfluxTarget
from chalicelib.core.models import Event, EventStatus, HostReport, InfluxApi, Point
from chalicelib.core.ports import BackendUnavailable


class CountingSession(requests.Session):
    """A requests session that remembers what each write sent and got."""

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False
        self.writes: list[tuple[dict[str, Any], int]] = []

    def post(self, url: Any, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        response = super().post(url, *args, **kwargs)
        if str(url).endswith("/write"):
            self.writes.append((kwargs.get("headers", {}), response.status_code))
        return response


@pytest.fixture
def db(influxd) -> str:
    return influxd.new_database()


def store_for(influxd, database: str, **kw: Any) -> InfluxDBMetricStore:
    target = InfluxTarget(
        url=influxd.url, api=InfluxApi.V1, database=database, username=influxd.username
    )
    return InfluxDBMetricStore(target, kw.pop("token", influxd.password), **kw)


def now_ms() -> int:
    return int(time.time() * 1000)


def pt(measurement: str, t: int, tags: dict[str, str], fields: dict[str, Any], i: int) -> Point:
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in fields.values())
    return Point(measurement, t, tags, fields, i, f"points[{i}]", numeric)


def test_points_events_and_alerts_read_back_with_influxql(influxd, db):
    t = now_ms()
    report = HostReport(
        host="web-1.example.com",
        tags={"role": "web", "env": "prod"},
        points=[
            pt("cpu", t, {"cpu": "total"}, {"user": 3.2, "system": 1.1, "idle": 95}, 0),
            pt(
                "disk",
                t,
                {"mount": "/var/lib data", "device": "sda,1"},
                {"used_percent": 70.5, "ok": True, "label": 'say "hi" \\ there'},
                1,
            ),
        ],
        events=[
            Event(
                "nginx",
                EventStatus.CRITICAL,
                t,
                120_000,
                "5xx rate 12%",
                12.0,
                ("http",),
                0,
                "events[0]",
            )
        ],
    )
    # What the alerting engine writes through the same port: an `alert` point per transition.
    alert = HostReport(
        host="web-1.example.com",
        points=[
            Point(
                "alert",
                t + 1,
                {"rule": "disk-full", "severity": "critical", "status": "firing"},
                {"summary": "Disk / at 97%", "description": "above 95\nfor 5m", "value": 97.1},
                path="alert",
            )
        ],
    )
    store = store_for(influxd, db)

    assert store.write([report, alert]) == []

    assert influxd.rows("SELECT * FROM cpu", db) == [
        {
            "time": t,
            "cpu": "total",
            "env": "prod",
            "host": "web-1.example.com",
            "role": "web",
            "idle": 95,
            "system": 1.1,
            "user": 3.2,
        }
    ]
    [disk] = influxd.rows("SELECT * FROM disk", db)
    assert (disk["mount"], disk["device"]) == ("/var/lib data", "sda,1")
    assert (disk["used_percent"], disk["ok"], disk["label"]) == (70.5, True, 'say "hi" \\ there')
    [event] = influxd.rows("SELECT * FROM event", db)
    assert (event["time"], event["service"], event["host"]) == (t, "nginx", "web-1.example.com")
    assert (event["status"], event["value"], event["ttl_ms"]) == ("critical", 12, 120000)
    assert (event["description"], event["tags"]) == ("5xx rate 12%", "http")
    [stored_alert] = influxd.rows(
        "SELECT summary, description, value FROM alert WHERE rule = 'disk-full' GROUP BY *", db
    )
    assert stored_alert["time"] == t + 1
    assert (stored_alert["status"], stored_alert["severity"]) == ("firing", "critical")
    assert stored_alert["summary"] == "Disk / at 97%"
    assert stored_alert["description"] == "above 95\\nfor 5m"  # a line break is written as \n
    assert stored_alert["value"] == 97.1


def test_every_number_is_a_float_so_an_integer_never_conflicts_with_a_float(influxd, db):
    store = store_for(influxd, db)
    t = now_ms()
    for i, value in enumerate([1, 1.5, 2, 2**60]):
        assert (
            store.write([HostReport("h", points=[pt("load", t + i, {}, {"load1": value}, 0)])])
            == []
        )
    # Beyond 2**53 a float is the nearest one: documented in docs/INFLUXDB.md.
    assert [r["load1"] for r in influxd.rows("SELECT load1 FROM load", db)] == [
        1,
        1.5,
        2,
        pytest.approx(2**60),
    ]
    [keys] = influxd.query("SHOW FIELD KEYS FROM load", db)[0]["series"]
    assert keys["values"] == [["load1", "float"]]


def test_a_field_type_conflict_rejects_only_the_conflicting_points(influxd, db):
    session = CountingSession()
    store = store_for(influxd, db, session=session)
    t = now_ms()
    assert store.write([HostReport("h", points=[pt("svc", t, {}, {"state": "ok"}, 0)])]) == []
    points = [
        pt("svc", t + i, {}, {"state": 1.0 if i in (3, 7) else "up", "n": float(i)}, i)
        for i in range(1, 11)
    ]
    session.writes.clear()

    rejected = store.write([HostReport("h", points=points)])

    assert [r.path for r in rejected] == ["points[3]", "points[7]"]
    assert all("field type conflict" in r.reason for r in rejected)
    assert rejected[0].reason.startswith("points[3]: refused by InfluxDB: partial write")
    stored = influxd.rows("SELECT n FROM svc WHERE time > 0", db)
    assert sorted(r["n"] for r in stored if r["n"] is not None) == [1, 2, 4, 5, 6, 8, 9, 10]
    # InfluxDB named the field and counted the drops: no resend was needed.
    assert [status for _, status in session.writes] == [400]


def test_a_conflict_inside_one_batch_keeps_the_first_type(influxd, db):
    store = store_for(influxd, db)
    t = now_ms()
    points = [pt("new", t + i, {}, {"x": "text" if i == 2 else float(i)}, i) for i in range(6)]
    rejected = store.write([HostReport("h", points=points)])
    # InfluxDB 1.x refuses such a batch whole, without naming anything; halving finds it.
    assert [r.path for r in rejected] == ["points[2]"]
    assert [r["x"] for r in influxd.rows("SELECT x FROM new", db)] == [0, 1, 3, 4, 5]


def test_points_outside_the_retention_policy_are_found_by_halving(influxd):
    database = influxd.new_database(retention="1h")
    session = CountingSession()
    store = store_for(influxd, database, session=session)
    t = now_ms()
    old = {2, 9, 10}
    points = [
        pt("cpu", t - 2 * 3_600_000 if i in old else t - i, {}, {"user": float(i)}, i)
        for i in range(16)
    ]

    rejected = store.write([HostReport("h", points=points)])

    assert [r.path for r in rejected] == [f"points[{i}]" for i in sorted(old)]
    assert "points beyond retention policy" in rejected[0].reason
    assert len(influxd.rows('SELECT "user" FROM cpu', database)) == 13
    assert len(session.writes) < 16


def test_large_writes_go_in_gzipped_batches(influxd, db):
    session = CountingSession()
    store = store_for(influxd, db, session=session, max_lines=100)
    t = now_ms()
    points = [pt("cpu", t - i, {"cpu": str(i % 4)}, {"user": i / 10}, i) for i in range(250)]

    assert store.write([HostReport("h", points=points)]) == []

    assert [(h.get("Content-Encoding"), s) for h, s in session.writes] == [("gzip", 204)] * 3
    [count] = influxd.rows('SELECT count("user") FROM cpu', db)
    assert count["count"] == 250


def test_an_identical_resend_is_harmless(influxd, db):
    store = store_for(influxd, db)
    report = HostReport("h", points=[pt("cpu", now_ms(), {"cpu": "0"}, {"user": 1.5}, 0)])
    assert store.write([report]) == []
    assert store.write([report]) == []
    assert len(influxd.rows("SELECT * FROM cpu", db)) == 1


def test_a_wrong_token_or_database_is_backend_unavailable_with_a_clear_message(influxd, db):
    report = HostReport("h", points=[pt("cpu", now_ms(), {}, {"user": 1.5}, 0)])
    with pytest.raises(BackendUnavailable) as caught:
        store_for(influxd, db, token="wrong-password").write([report])
    assert "refused the credentials" in str(caught.value)
    assert "FLEETPULSE_INFLUX_TOKEN" in str(caught.value)
    assert "wrong-password" not in str(caught.value)

    with pytest.raises(BackendUnavailable) as caught:
        store_for(influxd, "no_such_db").write([report])
    assert "404" in str(caught.value)
    assert "database not found" in str(caught.value)


def test_ensure_database_creates_a_missing_v1_database(influxd):
    store = store_for(influxd, "created_by_fleetpulse")
    store.ensure_database()
    store.ensure_database()  # idempotent
    assert store.write([HostReport("h", points=[pt("cpu", now_ms(), {}, {"user": 1.0}, 0)])]) == []
    assert len(influxd.rows("SELECT * FROM cpu", "created_by_fleetpulse")) == 1
