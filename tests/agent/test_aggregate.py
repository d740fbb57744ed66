"""One point per series per interval: average and swing for gauges (more on request), sums
and last values."""

from __future__ import annotations

from fleetpulse_agent.aggregate import Aggregator, chunks
from fleetpulse_agent.collect import AVG, CONST, GAUGE, SUM

KINDS = {"load": GAUGE, "queue": AVG, "total": CONST, "errors": SUM}


def add_four(agg: Aggregator) -> None:
    for t, load in enumerate([1.0, 9.0, 2.0, 4.0]):
        agg.add(
            "system", {}, {"load": load, "queue": load, "total": 100 + t, "errors": t}, 1000 + t
        )


def test_a_gauge_keeps_its_swing_inside_the_interval() -> None:
    agg = Aggregator(KINDS)
    add_four(agg)
    [point] = agg.flush()
    assert point == {
        "measurement": "system",
        "time": 1003,  # the interval's last sample
        "fields": {
            "load": 4,
            "load_min": 1,
            "load_max": 9,
            "queue": 4,
            "total": 103,
            "errors": 6,
        },
    }
    assert agg.flush() == []  # the next interval starts empty


def test_count_and_stddev_are_sent_when_asked_and_min_max_can_be_left_out() -> None:
    agg = Aggregator(KINDS, stats=("count", "min", "max", "stddev"))
    add_four(agg)
    [point] = agg.flush()
    assert point["fields"] == {
        "load": 4,
        "load_count": 4,
        "load_min": 1,
        "load_max": 9,
        "load_stddev": 3.082,
        "queue": 4,  # average only, whatever the stats
        "total": 103,
        "errors": 6,
    }
    agg = Aggregator(KINDS, stats=("stddev",))
    add_four(agg)
    [point] = agg.flush()
    assert point["fields"] == {
        "load": 4,
        "load_stddev": 3.082,
        "queue": 4,
        "total": 103,
        "errors": 6,
    }
    agg = Aggregator(KINDS, stats=())
    add_four(agg)
    [point] = agg.flush()
    assert point["fields"] == {"load": 4, "queue": 4, "total": 103, "errors": 6}


def test_series_are_told_apart_by_tags_and_values_are_rounded() -> None:
    agg = Aggregator(KINDS)
    agg.add("net", {"interface": "eth0"}, {"load": 1 / 3}, 1)
    agg.add("net", {"interface": "eth1"}, {"load": 2 / 3}, 1)
    points = agg.flush()
    assert [(p["tags"]["interface"], p["fields"]["load"]) for p in points] == [
        ("eth0", 0.333),
        ("eth1", 0.667),
    ]


def test_non_finite_values_are_left_out_not_sent() -> None:
    agg = Aggregator(KINDS)
    agg.add("m", {}, {"load": float("nan"), "queue": 1.0}, 1)
    agg.add("m", {}, {"load": float("inf"), "queue": 3.0}, 2)
    [point] = agg.flush()
    assert point["fields"] == {"queue": 2}


def test_batches_are_cut_at_the_request_cap() -> None:
    assert [len(c) for c in chunks(list(range(2500)), 1000)] == [1000, 1000, 500]
    assert chunks([], 1000) == [[]]


def test_one_sample_sends_no_spread_and_its_count_when_asked() -> None:
    agg = Aggregator(KINDS)
    agg.add("system", {}, {"load": 2.5}, 1)
    [point] = agg.flush()
    assert point["fields"] == {"load": 2.5}
    agg = Aggregator(KINDS, stats=("count", "min", "max", "stddev"))
    agg.add("system", {}, {"load": 2.5}, 1)
    [point] = agg.flush()
    assert point["fields"] == {"load": 2.5, "load_count": 1}


def test_a_constant_has_a_zero_stddev_and_last_is_sent_where_asked() -> None:
    agg = Aggregator(KINDS, last_fields=frozenset({"load"}), stats=("stddev",))
    for t in range(3):
        agg.add("system", {}, {"load": 0.1}, t)
    agg.add("system", {}, {"load": 0.7}, 3)
    [point] = agg.flush()
    assert point["fields"]["load_last"] == 0.7
    agg.add("system", {}, {"load": 0.1}, 4)
    agg.add("system", {}, {"load": 0.1}, 5)
    [point] = agg.flush()
    assert point["fields"]["load_stddev"] == 0
    assert "load_last" not in Aggregator(KINDS).flush()
