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
