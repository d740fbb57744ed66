"""infra/ for the InfluxDB store: the Grafana dashboard's InfluxQL runs on a real InfluxDB over
what the store writes, and the CloudFormation parameters match the collector's settings."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from chalicelib.adapters.influxdb import InfluxDBMetricStore
from chalicelib.core.influx import InfluxTarget
from chalicelib.core.models import HostReport, InfluxApi, Point
from fleetpulse import cfn

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "infra" / "grafana" / "fleetpulse-influxdb.json"


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, InfluxQL) for every panel target, annotation and variable."""
    doc = json.loads(DASHBOARD.read_text())
    out = []
    for panel in doc["panels"]:
        for t in panel.get("targets", []):
            out.append((f"panel {panel['title']!r} {t['refId']}", t["query"]))
    for a in doc["annotations"]["list"]:
        if "query" in a:
            out.append((f"annotation {a['name']!r}", a["query"]))
    for v in doc["templating"]["list"]:
        out.append((f"variable {v['name']}", v["query"]))
    return out


def as_grafana_sends(query: str) -> str:
    return (
        query.replace("$timeFilter", "time > now() - 1h")
        .replace("$__interval", "1m")
        .replace("$host", "web-1")
    )


def agent_like_points(now: int) -> list[Point]:
    """What the agent sends each interval (avg, plus _min/_max/_last for gauges)."""

    def p(measurement: str, tags: dict[str, str], **fields: Any) -> Point:
        return Point(measurement, now, tags, fields, numeric=True)

    return [
        p("cpu", {"cpu": "total"}, user=10.0, system=5.0, iowait=1.0, steal=0.0, idle=84.0),
        p("memory", {}, used_percent=41.5, used_percent_max=45.0, used_bytes=1e9),
        p("swap", {}, used_percent=3.0),
        p("system", {}, load1=0.5, load1_max=0.9, load5=0.4, load15=0.3),
        p("disk", {"mount": "/", "device": "sda1", "fstype": "ext4"}, used_percent=70.5),
        p("diskio", {"device": "sda"}, read_bytes_per_s=1000.0, write_bytes_per_s=2000.0),
        p("net", {"interface": "eth0"}, rx_bytes_per_s=300.0, tx_bytes_per_s=400.0),
        Point(
            "alert",
            now,
            {"rule": "disk-full", "severity": "critical", "status": "firing"},
            {"summary": "Disk / at 97% on web-1", "value": 97.0},
        ),
        Point(
            "event", now, {"service": "nginx"}, {"status": "critical", "description": "5xx at 12%"}
        ),
    ]


def test_every_dashboard_query_runs_on_influxdb_and_finds_the_stores_data(influxd):
    database = influxd.new_database()
    target = InfluxTarget(
        url=influxd.url, api=InfluxApi.V1, database=database, username=influxd.username
    )
    store = InfluxDBMetricStore(target, influxd.password)
    now = int(time.time() * 1000) - 5_000
    assert store.write([HostReport("web-1", points=agent_like_points(now))]) == []

    queries = dashboard_queries()
    assert len(queries) >= 15
    for where, query in queries:
        results = influxd.query(as_grafana_sends(query), database)
        series = [s for r in results for s in r.get("series", [])]
        assert series, f"{where} found nothing: {query}"
        values = [v for s in series for row in s["values"] for v in row[1:]]
        assert any(v is not None for v in values), f"{where} found only nulls: {query}"


def test_the_dashboard_uses_one_influxdb_datasource_input():
    doc = json.loads(DASHBOARD.read_text())
    assert [i["pluginId"] for i in doc["__inputs"]] == ["influxdb"]
    for panel in doc["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "influxdb", "uid": "${DS_INFLUXDB}"}
    measurements = {m for _, q in dashboard_queries() for m in re.findall(r'FROM "(\w+)"', q)}
    assert {"alert", "event", "cpu", "memory", "system", "disk", "diskio", "net"} <= measurements


def test_cloudformation_parameters_match_the_collector_settings():
    params = cfn.load()["Parameters"]
    assert params["Store"]["AllowedValues"] == ["timestream", "influxdb"]
    assert sorted(params["InfluxApi"]["AllowedValues"]) == sorted(a.value for a in InfluxApi)
    for name in (
        "InfluxUrl",
        "InfluxOrg",
        "InfluxBucket",
        "InfluxDatabase",
        "InfluxUsername",
        "InfluxTokenParameter",
    ):
        assert name in params
    policy = json.loads((ROOT / ".chalice" / "policy-prod.json").read_text())
    [statement] = [s for s in policy["Statement"] if s["Sid"] == "InfluxDBTokenParameter"]
    assert statement["Action"] == ["ssm:GetParameter"]
    assert statement["Resource"].endswith(":parameter/fleetpulse/prod/influxdb/*")
