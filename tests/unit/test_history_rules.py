"""History rules: validated at load with named errors; the arithmetic of baselines and forecasts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.core.alerts import threshold_alert_id
from chalicelib.core.history_rules import (
    Direction,
    _factor,
    predict_linear,
    queries_for,
    read_history,
)
from chalicelib.core.ports import BackendUnavailable
from chalicelib.core.rules import RulesError, parse_rules
from chalicelib.core.series import Series, Stat

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
BASE = {"name": "r", "measurement": "cpu", "field": "user"}


def load(**rule):
    return parse_rules({"rules": [{**BASE, **rule}]}).rules[0]


def problems(**rule) -> list[tuple[str, str]]:
    with pytest.raises(RulesError) as info:
        parse_rules({"rules": [{**BASE, **rule}]})
    return info.value.problems


def test_history_keys_load_into_a_spec():
    rule = load(window="15m", agg="p95", warning=90)
    assert (rule.history.window, rule.history.agg) == (timedelta(minutes=15), Stat.P95)
    rule = load(baseline={"offset": "1w", "window": "30m", "ratio": 2, "direction": "both"})
    assert rule.warning == 2.0
    assert rule.history.baseline.direction is Direction.BOTH
    rule = load(forecast={"horizon": "4h", "over": "6h"}, critical=95)
    assert rule.history.forecast.horizon == timedelta(hours=4)
    assert parse_rules({"rules": [{**BASE, "window": "5m", "warning": 1}]}).by_measurement == {}


@pytest.mark.parametrize(
    ("rule", "path"),
    [
        ({"agg": "avg", "warning": 1}, "rules[0] (r).agg"),
        ({"window": "15m", "agg": "median", "warning": 1}, "rules[0] (r).agg"),
        ({"window": "2d", "warning": 1}, "rules[0] (r).window"),
        ({"window": "soon", "warning": 1}, "rules[0] (r).window"),
        ({"window": "15m", "forecast": {"horizon": "1h", "over": "1h"}}, "rules[0] (r).forecast"),
        ({"baseline": {"ratio": 0.5}}, "rules[0] (r).baseline.ratio"),
        ({"baseline": {"direction": "sideways"}}, "rules[0] (r).baseline.direction"),
        ({"baseline": {"offset": "10m", "window": "1h"}}, "rules[0] (r).baseline.window"),
        ({"baseline": {"every": "1d"}}, "rules[0] (r).baseline.every"),
        ({"baseline": "1w"}, "rules[0] (r).baseline"),
        ({"baseline": {}, "op": "<"}, "rules[0] (r).op"),
        ({"forecast": {"over": "6h"}, "critical": 95}, "rules[0] (r).forecast.horizon"),
        (
            {"forecast": {"horizon": "4h", "over": "1m"}, "critical": 95},
            "rules[0] (r).forecast.over",
        ),
        ({"window": "5m", "warning": 1, "divide_by": "total"}, "rules[0] (r).divide_by"),
    ],
)
def test_a_bad_history_key_is_named(rule, path):
    assert path in [p for p, _ in problems(**rule)]


def test_a_fleet_needs_one_query_per_rule_two_for_a_baseline():
    window = load(window="15m", warning=1)
    baseline = load(baseline={})
    forecast = load(forecast={"horizon": "4h", "over": "6h"}, critical=95)
    assert [len(queries_for(r, NOW)) for r in (window, baseline, forecast)] == [1, 2, 1]
    for r in (window, baseline, forecast):
        assert all(q.host is None for q in queries_for(r, NOW))
    then = queries_for(baseline, NOW)[1]
    assert (then.start_at, then.end_at) == (
        NOW - timedelta(weeks=1, minutes=30),
        NOW - timedelta(weeks=1),
    )


def test_missing_or_zero_history_gives_no_ratio():
    assert _factor(30, None, Direction.UP) is None
    assert _factor(30, 0, Direction.UP) is None
    assert _factor(30, 10, Direction.UP) == 3
    assert _factor(5, 10, Direction.DOWN) == 2
    assert _factor(5, 10, Direction.BOTH) == 2
    assert _factor(20, 10, Direction.BOTH) == 2


@given(
    slope=st.floats(-100, 100, allow_nan=False),
    intercept=st.floats(-1e6, 1e6, allow_nan=False),
    n=st.integers(3, 60),
)
def test_predict_linear_recovers_a_straight_line(slope, intercept, n):
    points = [(i * 60_000, intercept + slope * i) for i in range(n)]
    at = (n + 240) * 60_000
    assert predict_linear(points, at) == pytest.approx(intercept + slope * (n + 240), abs=1e-3)


def test_too_few_points_forecast_nothing():
    assert predict_linear([(0, 1.0), (60_000, 2.0)], 120_000) is None


def test_a_failing_query_holds_the_rules_open_alerts_and_runs_the_others():
    rules = parse_rules(
        {
            "rules": [
                {**BASE, "name": "a", "window": "5m", "warning": 1},
                {**BASE, "name": "b", "window": "5m", "warning": 1},
            ]
        }
    ).rules

    class Record:
        def __init__(self, alert_id, rule):
            self.alert_id, self.rule = alert_id, rule

    calls = []

    def read(query):
        calls.append(query)
        if len(calls) == 1:
            raise BackendUnavailable("down")
        return [Series({"host": "web-1"}, [(0, 5.0)])]

    alerts = {"web-1/a": Record("web-1/a", "a"), "web-1/b": Record("web-1/b", "b")}
    out = read_history(rules, read, alerts, NOW, threshold_alert_id)
    assert out.failed == ["a"]
    assert out.held == {"web-1/a"}
    assert [(v.rule.name, v.host, v.value) for v in out.values] == [("b", "web-1", 5.0)]
    assert out.queries == 2
