"""End to end: the `influxdb-client` library writes to the collector over real HTTP.

The collector runs in chalice's local HTTP server on loopback; the client
is configured exactly as for InfluxDB 2.x (URL, token, org, bucket). Over
the in-memory store, and through the InfluxDB store into a real influxd.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from chalicelib.settings import Settings
from chalicelib.wiring import Services, use
from fleetpulse.stack import free_port
from tests.support.http import add_token
from tests.support.memory import InMemoryHostStore, InMemoryTokenStore


def serve(services: Services) -> Iterator[str]:
    from chalice.config import Config
    from chalice.local import CustomLocalChalice, LocalDevServer, create_local_server

    use(services)
    import app as app_module

    port = free_port()
    config = Config.create(chalice_stage="dev", app_name="fleetpulse")
    if isinstance(app_module.app, CustomLocalChalice):  # made local by an earlier test
        server = LocalDevServer(app_module.app, config, "127.0.0.1", port)
    else:
        server = create_local_server(app_module.app, config, "127.0.0.1", port)
    thread = threading.Thread(
        target=server.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server.server_close()


@pytest.fixture
def collector(memory_services) -> Iterator[str]:
    yield from serve(memory_services)


def client_for(url: str, token: str) -> InfluxDBClient:
    return InfluxDBClient(url=url, token=token, org="acme", enable_gzip=True, timeout=10_000)


def test_influxdb_client_writes_are_stored(collector, memory_services):
    token = add_token(memory_services, "fleet")
    t = int(time.time() * 1000)
    points = [
        Point("cpu")
        .tag("host", "web-1")
        .tag("cpu", "total")
        .field("user", 3.2)
        .field("n", 4)
        .time(t, WritePrecision.MS),
        Point("svc")
        .tag("host", "web-1")
        .field("note", 'two\nlines, "quoted"')
        .field("up", True)
        .time(t, WritePrecision.MS),
        f"mem,host=web-2 used_percent=41.5 {t}",
    ]
    with client_for(collector, token) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket="metrics", record=points, write_precision=WritePrecision.MS
        )

    records = memory_services.metric_store.records
    by_measure = {
        k[0]: {m["Name"]: m["Value"] for m in r["MeasureValues"]} for k, r in records.items()
    }
    assert by_measure == {
        "cpu": {"user": "3.2", "n": "4"},
        "svc": {"note": 'two\nlines, "quoted"', "up": "true"},
        "mem": {"used_percent": "41.5"},
    }
    assert set(memory_services.host_store.items) == {"web-1", "web-2"}


def test_influxdb_client_sees_influxdbs_errors(collector, memory_services):
    token = add_token(memory_services, "fleet")
    t = int(time.time() * 1000)
    with client_for(collector, token) as client:
        write_api = client.write_api(write_options=SYNCHRONOUS)
        with pytest.raises(ApiException) as caught:
            write_api.write(
                "metrics",
                record=f"cpu,host=a f=1 {t}\ncpu f=2 {t}",
                write_precision=WritePrecision.MS,
            )
        assert caught.value.status == 400
        assert "partial write: line 2: no host tag" in caught.value.body
    with client_for(collector, "fp_aaaaaaaaaaaa_" + "b" * 43) as client:
        with pytest.raises(ApiException) as caught:
            client.write_api(write_options=SYNCHRONOUS).write("metrics", record="cpu,host=a f=1")
        assert caught.value.status == 401


def test_a_client_fleet_writes_through_the_collector_into_influxdb(influxd):
    database = influxd.new_database()
    settings = Settings.from_env(
        {
            "FLEETPULSE_STORE": "influxdb",
            "FLEETPULSE_INFLUX_URL": influxd.url,
            "FLEETPULSE_INFLUX_API": "v1",
            "FLEETPULSE_INFLUX_DB": database,
            "FLEETPULSE_INFLUX_USERNAME": influxd.username,
            "FLEETPULSE_INFLUX_TOKEN": influxd.password,
            "FLEETPULSE_TOKEN_CACHE_SECONDS": "0",
        }
    )
    services = Services(settings)
    services.__dict__["token_store"] = InMemoryTokenStore()
    services.__dict__["host_store"] = InMemoryHostStore()
    token = add_token(services, "host:web-1")
    t = int(time.time() * 1000)
    for url in serve(services):
        with client_for(url, token) as client:
            client.write_api(write_options=SYNCHRONOUS).write(
                bucket="ignored",
                record=[
                    Point("disk")
                    .tag("host", "web-1")
                    .tag("mount", "/")
                    .field("used_percent", 70)
                    .time(t, WritePrecision.MS),
                    Point("disk")
                    .tag("host", "web-1")
                    .tag("mount", "/")
                    .field("used_percent", 71.5)
                    .time(t + 1000, WritePrecision.MS),
                ],
                write_precision=WritePrecision.MS,
            )
    rows = influxd.rows("SELECT used_percent FROM disk GROUP BY host, mount", database)
    assert rows == [
        {"host": "web-1", "mount": "/", "time": t, "used_percent": 70},
        {"host": "web-1", "mount": "/", "time": t + 1000, "used_percent": 71.5},
    ]
    [listed] = services.host_store.catalog("web-1")
    assert (listed.measurement, listed.tags, listed.fields) == (
        "disk",
        {"mount": "/"},
        ("used_percent",),
    )
