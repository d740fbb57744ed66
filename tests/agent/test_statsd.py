"""The statsd listener: the line protocol, aggregation per interval, a real UDP socket."""

from __future__ import annotations

import socket
import time

from fleetpulse_agent.deliver import envelope
from fleetpulse_agent.statsd import StatsdAggregator, StatsdServer, clean_name

from chalicelib.core.ingest import validate
from chalicelib.core.limits import Limits

NOW = 1_763_700_000_000


def points_by_name(points: list[dict]) -> dict[str, dict]:
    return {p["measurement"]: p for p in points}


def test_counters_gauges_timers_and_sets_are_aggregated_per_interval() -> None:
    agg = StatsdAggregator()
    agg.feed(b"web.requests:1|c\nweb.requests:2|c|@0.5\nqueue.depth:10|g\nqueue.depth:+5|g")
    agg.feed(
        b"db.query:10|ms\ndb.query:20|ms\ndb.query:30|ms\ndb.query:40|h\nusers:alice|s\nusers:bob|s\nusers:alice|s"
    )
    points = agg.flush(NOW, 10.0)
    by = points_by_name(points)
    assert by["web.requests"]["fields"] == {"count": 5, "rate": 0.5}
    assert by["web.requests"]["tags"] == {"source": "statsd", "type": "counter"}
    assert by["queue.depth"]["fields"] == {"value": 15}
    timer = by["db.query"]["fields"]
    assert (timer["count"], timer["mean"], timer["min"], timer["max"]) == (4, 25, 10, 40)
    assert (timer["p50"], timer["p99"]) == (30, 40)
    assert by["users"]["fields"] == {"unique": 2}
    # a new interval starts empty; a gauge delta still builds on the last value
    agg.feed(b"queue.depth:-3|g")
    points = agg.flush(NOW + 10_000, 10.0)
    assert [p["fields"] for p in points] == [{"value": 12}]


def test_dogstatsd_tags_become_point_tags_without_shadowing_ours() -> None:
    agg = StatsdAggregator()
    agg.feed(b"api.latency:12|ms|#endpoint:/users,source:evil,count:1,region:eu-west-1")
    [point] = agg.flush(NOW, 10.0)
    assert point["tags"] == {
        "endpoint": "/users",
        "region": "eu-west-1",
        "source": "statsd",
        "type": "timer",
    }


def test_bad_lines_are_counted_and_names_made_valid() -> None:
    agg = StatsdAggregator()
    agg.feed(b"no-type:1\nx:abc|c\n:1|c\nok:1|zz\nevent:1|c\n9lives:1|c\nspaced name:2|g\nt:nan|ms")
    points = agg.flush(NOW, 10.0)
    assert agg.bad_lines == 5
    assert sorted(p["measurement"] for p in points) == ["_9lives", "spaced_name", "statsd.event"]
    assert clean_name("a:b") == "a_b"
    assert clean_name("time") == "statsd.time"


def test_the_series_cap_bounds_memory_and_counts_drops() -> None:
    agg = StatsdAggregator(max_series=3)
    agg.feed(b"\n".join(b"m%d:1|c" % i for i in range(10)))
    points = agg.flush(NOW, 10.0)
    assert len(points) == 3
    assert agg.dropped == 7


def test_a_real_udp_listener_feeds_points_the_collector_accepts() -> None:
    agg = StatsdAggregator()
    server = StatsdServer(("127.0.0.1", 0), agg).start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(50):
                s.sendto(b"shop.orders:1|c\nshop.basket:%d|ms" % i, server.address)
        deadline = time.monotonic() + 5
        while agg.packets < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        server.stop()
    now_ms = int(time.time() * 1000)
    points = agg.flush(now_ms, 60.0)
    by = points_by_name(points)
    assert by["shop.orders"]["fields"]["count"] == 50
    assert by["shop.basket"]["fields"]["max"] == 49
    doc = envelope("test-host", {}, 60, "alive")
    doc["points"] = points
    parsed = validate(doc, Limits(), now_ms)
    assert parsed.rejected == []
    assert parsed.accepted_points == 2
