"""The Grafana dashboards show the same time a week earlier beside today's CPU."""

from __future__ import annotations

import json
from pathlib import Path

GRAFANA = Path(__file__).resolve().parents[2] / "infra" / "grafana"


def panels(name: str) -> dict[str, dict]:
    doc = json.loads((GRAFANA / name).read_text())
    return {p["title"]: p for p in doc["panels"]}


def test_timestream_overlays_last_week_moved_forward_a_week_and_dashed():
    panel = panels("fleetpulse-timestream.json")["CPU busy: now and the same time a week earlier"]
    now, week = (t["rawQuery"] for t in panel["targets"])
    assert "$__timeFilter" in now
    assert "from_milliseconds(${__from}) - 7d AND from_milliseconds(${__to}) - 7d" in week
    assert "BIN(time, $__interval_ms) + 7d AS time" in week
    [override] = panel["fieldConfig"]["overrides"]
    assert override["matcher"]["options"] == "cpu_busy_a_week_earlier"
    assert {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}} in override[
        "properties"
    ]


def test_influxdb_shows_last_week_beside_today_with_the_same_query():
    by_title = panels("fleetpulse-influxdb.json")
    now = by_title["CPU busy: now"]
    week = by_title["CPU busy: the same time a week earlier"]
    assert week["timeShift"] == "7d"
    assert now["targets"][0]["query"] == week["targets"][0]["query"]
    assert week["fieldConfig"]["defaults"]["custom"]["lineStyle"]["fill"] == "dash"
    assert now["gridPos"]["y"] == week["gridPos"]["y"]
