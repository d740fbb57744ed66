"""GET /v1/series over a real influxd: eight days written through the collector, read bucketed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.history import HISTORY_NOW, json_body

STEP = timedelta(minutes=5)
DAYS = 8


def day_base(day: int) -> float:
    """The level of `day` days ago: 100 today, 10 x (day + 1) before."""
    return 100.0 if day == 0 else 10.0 * (day + 1)


@pytest.fixture
def eight_days(history_api):
    """cpu.user every 5 minutes for eight days: within each hour base + 0..11."""
    token = history_api.token("fleet")
    values = []
    for n in range(DAYS * 24 * 12, 0, -1):
        at = HISTORY_NOW - n * STEP
        day = (HISTORY_NOW - at - STEP) // timedelta(days=1)
        values.append((at, {"user": day_base(day) + (n - 1) % 12, "system": 1.0}))
    history_api.post_points(token, "web-1", "cpu", values, tags={"cpu": "total"})
    history_api.clock.at = HISTORY_NOW
    return history_api.token("admin")


def hour_ms(hours_ago: int) -> int:
    return int((HISTORY_NOW - timedelta(hours=hours_ago)).timestamp()) * 1000


def test_the_last_24_hours_come_back_in_hourly_buckets_per_stat(history_api, eight_days):
    query = {"host": "web-1", "measurement": "cpu", "field": "user", "from": "-24h"}
    avg = json_body(history_api.series(eight_days, **query, step="1h", stat="avg"))
    assert [s["tags"] for s in avg["series"]] == [{"cpu": "total", "host": "web-1"}]
    points = avg["series"][0]["points"]
    assert [t for t, _ in points] == [hour_ms(h) for h in range(24, 0, -1)]
    # Each hour holds base + 0..11 (12 points); n counts down, so the order within
    # the hour is reversed but the set is the same.
    assert {v for _, v in points} == {105.5}
    for stat, expected in (("min", 100.0), ("max", 111.0), ("count", 12.0)):
        body = json_body(history_api.series(eight_days, **query, step="1h", stat=stat))
        assert {v for _, v in body["series"][0]["points"]} == {expected}


def test_offset_7d_returns_the_same_window_a_week_earlier(history_api, eight_days):
    body = json_body(
        history_api.series(
            eight_days,
            host="web-1",
            measurement="cpu",
            field="user",
            **{"from": "-24h", "to": "now"},
            step="6h",
            offset="7d",
        )
    )
    points = body["series"][0]["points"]
    week = timedelta(days=7)
    assert [t for t, _ in points] == [
        int((HISTORY_NOW - week - timedelta(hours=h)).timestamp()) * 1000 for h in (24, 18, 12, 6)
    ]
    assert {v for _, v in points} == {day_base(7) + 5.5}


def test_iso_8601_bounds_and_a_5_minute_step_give_every_point(history_api, eight_days):
    start = (HISTORY_NOW - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    body = json_body(
        history_api.series(
            eight_days,
            host="web-1",
            measurement="cpu",
            field="user",
            **{"from": start, "to": HISTORY_NOW.isoformat()},
            step="5m",
        )
    )
    values = [v for _, v in body["series"][0]["points"]]
    assert sorted(values) == [100.0 + i for i in range(12)]


def test_a_tag_filter_narrows_and_an_unknown_host_is_empty(history_api, eight_days):
    base = {"measurement": "cpu", "field": "user", "from": "-1h", "step": "1h"}
    hit = json_body(history_api.series(eight_days, host="web-1", **base, **{"tag.cpu": "total"}))
    assert len(hit["series"]) == 1
    miss = json_body(history_api.series(eight_days, host="web-1", **base, **{"tag.cpu": "cpu0"}))
    assert miss == {"series": []}
    assert json_body(history_api.series(eight_days, host="web-2", **base)) == {"series": []}


@pytest.mark.parametrize(
    "hostile",
    [
        "web-1' OR '1'='1",
        "web-1\\' OR host =~ /.*/ --",
        'web-1" GROUP BY *; DROP DATABASE "x',
        "web-1'; DROP MEASUREMENT cpu; SELECT '",
    ],
)
def test_quotes_in_names_and_values_never_change_the_query(history_api, eight_days, hostile):
    base = {"measurement": "cpu", "field": "user", "from": "-1h", "step": "1h"}
    assert json_body(history_api.series(eight_days, host=hostile, **base)) == {"series": []}
    response = history_api.series(eight_days, host="web-1", **{**base, "field": hostile})
    assert (response.status_code, json_body(response)) == (200, {"series": []})
    response = history_api.series(eight_days, host="web-1", **{**base, "measurement": hostile})
    assert (response.status_code, json_body(response)) == (200, {"series": []})
    # ...and the data is still there.
    assert len(json_body(history_api.series(eight_days, host="web-1", **base))["series"]) == 1


def test_tag_values_with_quotes_and_backslashes_read_back(history_api):
    token = history_api.token("fleet")
    path = 'C:\\data\\it\'s "here"'
    at = HISTORY_NOW - timedelta(minutes=10)
    history_api.post_points(token, "win-1", "disk", [(at, {"used_percent": 42.0})], {"path": path})
    history_api.clock.at = HISTORY_NOW
    admin = history_api.token("admin")
    body = json_body(
        history_api.series(
            admin,
            host="win-1",
            measurement="disk",
            field="used_percent",
            **{"from": "-1h", "tag.path": path},
            step="1h",
        )
    )
    assert body["series"] == [
        {"tags": {"host": "win-1", "path": path}, "points": [[hour_ms(1), 42.0]]}
    ]


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"measurement": "cpu", "field": "user"}, "host"),
        ({"host": "a", "field": "user"}, "measurement"),
        ({"host": "a", "measurement": "cpu"}, "field"),
        ({"host": "a", "measurement": "cpu", "field": "f", "from": "yesterday"}, "from"),
        ({"host": "a", "measurement": "cpu", "field": "f", "to": "2026-01-01T00:00:00"}, "to"),
        ({"host": "a", "measurement": "cpu", "field": "f", "from": "-5m", "to": "-1h"}, "from"),
        ({"host": "a", "measurement": "cpu", "field": "f", "from": "-60d"}, "from"),
        ({"host": "a", "measurement": "cpu", "field": "f", "from": "-30d", "step": "1m"}, "step"),
        ({"host": "a", "measurement": "cpu", "field": "f", "step": "0s"}, "step"),
        ({"host": "a", "measurement": "cpu", "field": "f", "step": "fast"}, "step"),
        ({"host": "a", "measurement": "cpu", "field": "f", "stat": "median"}, "stat"),
        ({"host": "a", "measurement": "cpu", "field": "f", "offset": "2y"}, "offset"),
        ({"host": "a", "measurement": "cpu", "field": "f", "offset": "500d"}, "offset"),
        ({"host": "a\nb", "measurement": "cpu", "field": "f"}, "host"),
        ({"host": "a", "measurement": "cpu", "field": "f", "tag.x": "a\x00"}, "tag.x"),
        ({"host": "a", "measurement": "c" * 300, "field": "f"}, "measurement"),
    ],
)
def test_a_bad_query_is_a_400_naming_the_parameter(history_api, params, path):
    admin = history_api.token("admin")
    response = history_api.series(admin, **params)
    assert response.status_code == 400
    body = json_body(response)
    assert [d["path"] for d in body["details"]] == [path]
    assert body["details"][0]["message"]


def test_series_need_an_admin_token(history_api):
    query = {"host": "a", "measurement": "cpu", "field": "f"}
    assert history_api.series("", **query).status_code == 401
    assert history_api.series(history_api.token("fleet"), **query).status_code == 403


def test_an_unreachable_store_is_a_503_to_retry(history_api):
    from chalicelib.adapters.history import InfluxDBMetricReader
    from chalicelib.core.influx import InfluxTarget
    from chalicelib.core.models import InfluxApi
    from fleetpulse.stack import free_port

    dead = InfluxTarget(url=f"http://127.0.0.1:{free_port()}", api=InfluxApi.V1, database="x")
    history_api.services.__dict__["series"] = None
    history_api.services.__dict__.pop("series")
    history_api.services.__dict__["metric_reader"] = InfluxDBMetricReader(dead)
    response = history_api.series(
        history_api.token("admin"), host="a", measurement="cpu", field="f"
    )
    assert response.status_code == 503
    assert response.headers["Retry-After"]
