"""Rules that know the past, evaluated over a real influxd fed through the collector."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.core.evaluation import AlertingPolicy
from chalicelib.core.rules import parse_rules
from chalicelib.core.series import Series, SeriesQuery
from tests.support.history import HISTORY_NOW
from tests.support.memory import (
    InMemoryAlertPublisher,
    InMemoryAlertStore,
    InMemorySilenceStore,
)

NOW = HISTORY_NOW
STEP = timedelta(minutes=5)
WEEK = timedelta(weeks=1)


class CountingReader:
    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self.queries: list[SeriesQuery] = []

    def read(self, query: SeriesQuery) -> list[Series]:
        self.queries.append(query)
        return self.reader.read(query)


@pytest.fixture
def alerting(history_api):
    """Alerting over the app's services, reading history from its influxd."""
    services = history_api.services
    services.__dict__["alert_store"] = InMemoryAlertStore()
    services.__dict__["silence_store"] = InMemorySilenceStore()
    services.__dict__["alert_publisher"] = publisher = InMemoryAlertPublisher()
    reader = CountingReader(services.metric_reader)
    services.__dict__["metric_reader"] = reader

    def use_rules(*rule_dicts: dict[str, Any]) -> None:
        services.__dict__["alerting_policy"] = AlertingPolicy(
            parse_rules({"rules": list(rule_dicts)})
        )

    history_api.use_rules = use_rules
    history_api.reader = reader
    history_api.publisher = publisher
    history_api.fleet = history_api.token("fleet")
    return history_api


def level(value: float | Callable[[int], float], start, end) -> list:
    """(time, fields) every 5 minutes in [start, end)."""
    out = []
    n = 0
    at = start
    while at < end:
        v = value(n) if callable(value) else value
        out.append((at, {"user": v, "used_percent": v}))
        at += STEP
        n += 1
    return out


def write(api, host: str, measurement: str, values: list, tags: dict | None = None) -> None:
    api.post_points(api.fleet, host, measurement, values, tags or {})


def firing(api) -> dict[str, dict]:
    return {m["alert_id"]: m for m in api.publisher.messages if m["status"] == "firing"}


BASELINE_RULE = {
    "name": "cpu-vs-last-week",
    "measurement": "cpu",
    "field": "user",
    "baseline": {"offset": "1w", "window": "30m", "ratio": 1.5, "direction": "up"},
}


def test_a_baseline_rule_fires_on_a_3x_jump_and_stays_quiet_on_the_same_level(alerting):
    api = alerting
    api.use_rules(BASELINE_RULE)
    hour = timedelta(hours=1)
    for host, then, now in (("jumped", 10.0, 30.0), ("steady", 10.0, 10.5), ("new", None, 30.0)):
        if then is not None:
            write(api, host, "cpu", level(then, NOW - WEEK - hour, NOW - WEEK + hour))
        write(api, host, "cpu", level(now, NOW - hour, NOW))
        api.heartbeat(api.fleet, host, NOW)

    api.services.alerting.evaluate(NOW)

    alerts = firing(api)
    assert list(alerts) == ["jumped/cpu-vs-last-week"]
    message = alerts["jumped/cpu-vs-last-week"]
    assert message["value"] == pytest.approx(3.0)
    assert message["threshold"] == 1.5
    assert "3x its baseline" in message["summary"]
    # One evaluation, three hosts: two queries (now and a week ago), not one per host.
    assert len(api.reader.queries) == 2


def test_a_forecast_rule_fires_before_the_disk_fills(alerting):
    api = alerting
    api.use_rules(
        {
            "name": "disk-filling",
            "measurement": "disk",
            "field": "used_percent",
            "critical": 95,
            "forecast": {"horizon": "4h", "over": "6h"},
        },
        {"name": "disk-full", "measurement": "disk", "field": "used_percent", "critical": 95},
    )
    six_hours = timedelta(hours=6)
    # 50% six hours ago, +5% an hour: 80% now, full in 3 hours.
    write(
        api,
        "filling",
        "disk",
        level(lambda n: 50 + n * 5 / 12, NOW - six_hours, NOW),
        {"mount": "/"},
    )
    write(api, "flat", "disk", level(80.0, NOW - six_hours, NOW), {"mount": "/"})
    for host in ("filling", "flat"):
        api.heartbeat(api.fleet, host, NOW)

    api.services.alerting.evaluate(NOW)

    alerts = firing(api)
    assert list(alerts) == ["filling/disk-filling/mount=/"]
    assert alerts["filling/disk-filling/mount=/"]["value"] == pytest.approx(100, abs=0.5)
    assert len(api.reader.queries) == 1


def test_a_window_rule_judges_the_aggregate_not_the_last_value(alerting):
    api = alerting
    api.use_rules(
        {
            "name": "cpu-busy",
            "measurement": "cpu",
            "field": "user",
            "window": "15m",
            "agg": "min",
            "warning": 90,
        }
    )
    quarter = timedelta(minutes=15)
    write(api, "busy", "cpu", level(95.0, NOW - quarter, NOW))
    write(api, "spike", "cpu", level(lambda n: 99.0 if n == 2 else 20.0, NOW - quarter, NOW))
    for host in ("busy", "spike"):
        api.heartbeat(api.fleet, host, NOW)

    api.services.alerting.evaluate(NOW)

    assert list(firing(api)) == ["busy/cpu-busy"]


def test_a_store_outage_holds_history_alerts_instead_of_resolving_them(alerting):
    from chalicelib.adapters.history import InfluxDBMetricReader
    from chalicelib.core.influx import InfluxTarget
    from chalicelib.core.models import InfluxApi
    from fleetpulse.stack import free_port

    api = alerting
    api.use_rules(BASELINE_RULE)
    hour = timedelta(hours=1)
    write(api, "jumped", "cpu", level(10.0, NOW - WEEK - hour, NOW - WEEK + hour))
    write(api, "jumped", "cpu", level(30.0, NOW - hour, NOW + timedelta(minutes=2)))
    api.heartbeat(api.fleet, "jumped", NOW)
    api.services.alerting.evaluate(NOW)
    assert api.services.alert_store.items["jumped/cpu-vs-last-week"].state.value == "firing"

    dead = InfluxTarget(url=f"http://127.0.0.1:{free_port()}", api=InfluxApi.V1, database="x")
    api.reader.reader = InfluxDBMetricReader(dead)
    later = NOW + timedelta(minutes=1)
    api.heartbeat(api.fleet, "jumped", later)
    api.services.alerting.evaluate(later)

    assert api.services.alert_store.items["jumped/cpu-vs-last-week"].state.value == "firing"
    assert [m["status"] for m in api.publisher.messages] == ["firing"]
