"""collectd write_http JSON: mapping, rates as collectd computes them, the rate memo (pure)."""

from __future__ import annotations

import pytest

from chalicelib.core.collectd import (
    DsType,
    RateMemo,
    agent_of,
    map_value_lists,
    rate,
    value_list_tags,
)
from chalicelib.core.limits import Limits
from chalicelib.core.models import AgentInfo

NOW_S = 1_796_000_000.0
AGENT = AgentInfo("collectd", "5.12.0")


def vl(plugin, type_, values, *, dstypes=None, dsnames=None, t=NOW_S, **extra):
    return {
        "values": values,
        "dstypes": dstypes or ["gauge"] * len(values),
        "dsnames": dsnames or ["value"] * len(values),
        "time": t,
        "interval": extra.get("interval", 10),
        "host": "c-1",
        "plugin": plugin,
        "plugin_instance": extra.get("plugin_instance", ""),
        "type": type_,
        "type_instance": extra.get("type_instance", ""),
    }


def post(items, memo: RateMemo):
    result = map_value_lists(
        items, AGENT, limits=Limits(), now_ms=int(NOW_S * 1000) + 30_000, memo=memo
    )
    memo.update(result.memo_changes)
    return result


def test_derive_is_a_signed_rate_and_absolute_a_rate_of_its_value():
    assert rate(DsType.DERIVE, 500, 10_000, (0, 1_000)) == -50.0
    assert rate(DsType.ABSOLUTE, 30, 10_000, (0, 999)) == 3.0
    assert rate(DsType.DERIVE, 5, 10_000, (10_000, 1)) is None  # no time passed


@pytest.mark.parametrize(
    ("previous", "value", "expected"),
    [
        (2**32 - 100, 100, 20.0),  # wrapped at 32 bits
        (2**40, 100, (2**64 - 2**40 + 100) / 10),  # wrapped at 64 bits
        (1_000, 1_200, 20.0),
    ],
)
def test_a_counter_that_goes_down_wrapped_as_collectd_reckons(previous, value, expected):
    assert rate(DsType.COUNTER, value, 10_000, (0, previous)) == expected


def test_the_memo_keeps_the_newest_value_and_is_bounded():
    memo = RateMemo(max_series=2)
    a = ("h", "p", "", "t", "", "v")
    memo.update({a: (2_000, 5)})
    memo.update({a: (1_000, 9)})  # an older post stored late
    assert memo.get(a) == (2_000, 5)
    memo.update({("h", "p", "", "t", "", "b"): (1, 1), ("h", "p", "", "t", "", "c"): (1, 1)})
    assert memo.get(a) is None


def test_one_value_list_is_one_point_tagged_with_collectds_identifier():
    assert value_list_tags("eth0", "if_octets", "") == {"instance": "eth0", "type": "if_octets"}
    result = post(
        [vl("load", "load", [1, 2, 3], dsnames=["shortterm", "midterm", "longterm"])], RateMemo()
    )
    (report,) = result.parsed.reports
    (point,) = report.points
    assert (point.measurement, point.tags, point.fields) == (
        "load",
        {"type": "load"},
        {"shortterm": 1.0, "midterm": 2.0, "longterm": 3.0},
    )
    assert report.interval_s == 10
    assert report.agent == AGENT


def test_a_read_split_across_posts_never_collides():
    memo = RateMemo()
    used = post([vl("memory", "memory", [1.0], type_instance="used")], memo)
    free = post([vl("memory", "memory", [2.0], type_instance="free")], memo)
    a = used.parsed.reports[0].points[0]
    b = free.parsed.reports[0].points[0]
    assert (a.measurement, a.time_ms) == (b.measurement, b.time_ms)
    assert a.tags != b.tags  # two series, two records


def test_rates_need_a_previous_value_that_is_not_too_old():
    memo = RateMemo()
    counter = {"dstypes": ["derive"], "dsnames": ["rx"], "plugin_instance": "lo"}

    def rx(value, t):
        item = vl("interface", "if_octets", [value], t=t, **{"plugin_instance": "lo"})
        item.update({k: v for k, v in counter.items() if k != "plugin_instance"})
        return post([item], memo)

    first = rx(100, NOW_S - 400)
    assert first.primed == 1
    assert [r.points for r in first.parsed.reports] == [[]]  # heard, nothing stored
    after_a_long_gap = rx(200, NOW_S - 60)  # 34 intervals later: only primes again
    assert after_a_long_gap.primed == 1
    (point,) = rx(700, NOW_S - 50).parsed.reports[0].points
    assert point.fields == {"rx": 50.0}


def test_a_retried_post_computes_the_same_rates_when_its_store_failed():
    memo = RateMemo()
    item = vl("interface", "if_octets", [100], dstypes=["derive"], dsnames=["rx"], t=NOW_S - 20)
    post([item], memo)
    retry = {**item, "values": [300], "time": NOW_S - 10}
    limits, now_ms = Limits(), int(NOW_S * 1000)
    attempt = map_value_lists([retry], AGENT, limits=limits, now_ms=now_ms, memo=memo)
    again = map_value_lists([retry], AGENT, limits=limits, now_ms=now_ms, memo=memo)
    assert attempt.parsed.reports[0].points[0].fields == {"rx": 20.0}
    assert again.parsed.reports[0].points[0].fields == {"rx": 20.0}


def test_the_sender_is_the_agent():
    assert agent_of("collectd/5.12.0.git") == AgentInfo("collectd", "5.12.0.git")
    assert agent_of(None) == AgentInfo("collectd", "")


def test_collectd_percentages_feed_the_status_pages_history():
    from datetime import UTC, datetime

    from chalicelib.core.hosts import host_update

    at = datetime.fromtimestamp(NOW_S, UTC)
    result = post(
        [
            vl("cpu", "percent", [12.5], type_instance="idle"),
            vl("memory", "percent", [40.0], type_instance="used"),
        ],
        RateMemo(),
    )
    update = host_update(result.parsed.reports[0], at)
    assert update.history is not None
    assert (update.history.cpu, update.history.mem) == (87.5, 40.0)
