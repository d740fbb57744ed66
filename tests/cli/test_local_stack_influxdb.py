"""`fleetpulse local up` with FLEETPULSE_STORE=influxdb: the local stack on a real InfluxDB."""

from __future__ import annotations

import os
import time

import pytest
import requests

from fleetpulse.stack import LocalStack, free_port

# What the stack exports for itself; restored after the test so nothing leaks.
STACK_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "FLEETPULSE_STAGE",
    "FLEETPULSE_AWS_ENDPOINT_URL",
    "POWERTOOLS_METRICS_DISABLED",
)


@pytest.fixture
def stack_env(monkeypatch):
    for name in STACK_VARIABLES:
        monkeypatch.setenv(name, os.environ.get(name, ""))
    return monkeypatch


def test_local_up_writes_metrics_to_the_configured_influxdb(influxd, stack_env, tmp_path):
    database = "fleetpulse_local"  # created by the stack (v1)
    for name, value in {
        "FLEETPULSE_STORE": "influxdb",
        "FLEETPULSE_INFLUX_URL": influxd.url,
        "FLEETPULSE_INFLUX_API": "v1",
        "FLEETPULSE_INFLUX_DB": database,
        "FLEETPULSE_INFLUX_USERNAME": influxd.username,
        "FLEETPULSE_INFLUX_TOKEN": influxd.password,
    }.items():
        stack_env.setenv(name, value)
    stack = LocalStack(port=free_port(), state_dir=tmp_path, agent=False)
    try:
        stack.start()
        assert stack.store == f"InfluxDB (v1) database {database!r} at {influxd.url}"
        assert stack.notes == []
        t = int(time.time() * 1000)
        response = requests.post(
            f"{stack.url}/api/v2/write?precision=ms",
            data=f"cpu,host=demo-1 user=3.2 {t}\n",
            headers={"Authorization": f"Token {stack.fleet_token}"},
            timeout=10,
        )
        assert response.status_code == 204, response.text
        json_post = requests.post(
            f"{stack.url}/v1/ingest",
            json={
                "host": "demo-2",
                "points": [{"measurement": "cpu", "time": t, "fields": {"user": 1}}],
            },
            headers={"Authorization": f"Bearer {stack.fleet_token}"},
            timeout=10,
        )
        assert json_post.status_code == 202, json_post.text
        from chalicelib.wiring import services

        # Host items stay on the embedded AWS (DynamoDB).
        assert services().host_store.get("demo-1")["state"] == "up"
    finally:
        stack.stop()
    rows = influxd.rows('SELECT "user" FROM cpu GROUP BY host', database)
    assert rows == [
        {"host": "demo-1", "time": t, "user": 3.2},
        {"host": "demo-2", "time": t, "user": 1},
    ]
    assert "FLEETPULSE_INFLUX_TOKEN" not in (tmp_path / "local.env").read_text()


def test_local_up_refuses_an_incomplete_influxdb_configuration(stack_env, tmp_path, capsys):
    from fleetpulse.cli import main

    stack_env.setenv("FLEETPULSE_STORE", "influxdb")
    stack_env.delenv("FLEETPULSE_INFLUX_URL", raising=False)
    assert main(["local", "up", "--port", str(free_port()), "--state-dir", str(tmp_path)]) == 1
    assert (
        "FLEETPULSE_INFLUX_URL is required when FLEETPULSE_STORE=influxdb"
        in capsys.readouterr().err
    )


def test_local_up_starts_its_own_influxd_and_reads_history_back(stack_env, tmp_path):
    from tests.support.programs import require_program

    require_program("influxd", "influxdb")
    for name in ("FLEETPULSE_STORE", "FLEETPULSE_INFLUX_URL", "FLEETPULSE_INFLUX_TOKEN"):
        stack_env.delenv(name, raising=False)
    stack = LocalStack(port=free_port(), state_dir=tmp_path, agent=False, metric_store="influxdb")
    try:
        stack.start()
        assert stack.influxd is not None
        influx_url = stack.influxd.url
        assert stack.store == (
            f"InfluxDB (v1) database 'fleetpulse' at {influx_url}: influxd started here, "
            f"data in {tmp_path / 'influxdb'}"
        )
        assert influx_url.startswith("http://127.0.0.1:")
        t = int(time.time() * 1000)
        posted = requests.post(
            f"{stack.url}/v1/ingest",
            json={
                "host": "demo-1",
                "points": [{"measurement": "cpu", "time": t, "fields": {"user": 7}}],
            },
            headers={"Authorization": f"Bearer {stack.fleet_token}"},
            timeout=10,
        )
        assert posted.status_code == 202, posted.text
        series = requests.get(
            f"{stack.url}/v1/series",
            params={"host": "demo-1", "measurement": "cpu", "field": "user", "from": "-5m"},
            headers={"Authorization": f"Bearer {stack.admin_token}"},
            timeout=10,
        )
        assert series.status_code == 200, series.text
        assert [v for _, v in series.json()["series"][0]["points"]] == [7.0]
        assert "FLEETPULSE_INFLUX_URL=" + influx_url in (tmp_path / "local.env").read_text()
    finally:
        stack.stop()
    assert stack.influxd is None
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{influx_url}/ping", timeout=2)
    assert "FLEETPULSE_STORE" not in os.environ
    assert (tmp_path / "influxdb" / "data").is_dir()  # kept for the next run


def test_local_up_store_timestream_keeps_the_embedded_aws_store(stack_env, tmp_path):
    stack_env.delenv("FLEETPULSE_STORE", raising=False)
    stack = LocalStack(port=free_port(), state_dir=tmp_path, agent=False, metric_store="timestream")
    try:
        stack.start()
        assert stack.influxd is None
        assert stack.store.startswith("Timestream (embedded)")
    finally:
        stack.stop()
