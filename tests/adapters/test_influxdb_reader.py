"""InfluxDBMetricReader over HTTP: InfluxDB 1.x with basic auth, and the 2.x
v1-compatibility API (`Authorization: Token`, the bucket as `db`), the latter through
a real local server that speaks it in front of the session's influxd."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from chalicelib.adapters.history import InfluxDBMetricReader
from chalicelib.adapters.influxdb import InfluxDBMetricStore
from chalicelib.core.influx import InfluxTarget
from chalicelib.core.instants import ms_of_instant
from chalicelib.core.models import HostReport, InfluxApi, Point
from chalicelib.core.ports import BackendUnavailable
from chalicelib.core.series import SeriesQuery, Stat

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(influxd) -> str:
    database = influxd.new_database()
    target = InfluxTarget(influxd.url, InfluxApi.V1, database=database, username=influxd.username)
    store = InfluxDBMetricStore(target, influxd.password)
    points = [
        Point(
            "cpu",
            ms_of_instant(NOW - timedelta(minutes=m)),
            {"cpu": "total"},
            {"user": m},
            m,
            "",
            True,
        )
        for m in range(1, 61)
    ]
    assert store.write([HostReport(host="web-1", tags={"role": "web"}, points=points)]) == []
    return database


def query(**kw: Any) -> SeriesQuery:
    base = {
        "measurement": "cpu",
        "field": "user",
        "start_at": NOW - timedelta(hours=1),
        "end_at": NOW,
        "step": timedelta(minutes=30),
        "stat": Stat.MAX,
        "host": "web-1",
    }
    return SeriesQuery(**{**base, **kw})


class V2Compat(BaseHTTPRequestHandler):
    """`/query` as InfluxDB 2.x serves it for 1.x clients: a Token, the bucket as `db`."""

    upstream = ""
    token = ""
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        self.seen.append(
            {"path": url.path, "params": params, "auth": self.headers["Authorization"]}
        )
        if self.headers.get("Authorization") != f"Token {self.token}":
            self._send(401, b'{"code":"unauthorized","message":"unauthorized access"}')
            return
        user, password = self.token.split(":", 1)
        response = requests.post(
            f"{self.upstream}/query",
            params={**params, "u": user, "p": password},
            data=form,
            timeout=10,
        )
        self._send(response.status_code, response.content)

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def v2_compat(influxd) -> Iterator[str]:
    V2Compat.upstream = influxd.url
    V2Compat.token = f"{influxd.username}:{influxd.password}"
    V2Compat.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), V2Compat)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_v1_with_basic_auth_reads_buckets_and_tags(influxd, db):
    target = InfluxTarget(influxd.url, InfluxApi.V1, database=db, username=influxd.username)
    [series] = InfluxDBMetricReader(target, influxd.password).read(query())
    assert series.tags == {"cpu": "total", "host": "web-1", "role": "web"}
    assert series.points == [
        (ms_of_instant(NOW - timedelta(hours=1)), 60.0),
        (ms_of_instant(NOW - timedelta(minutes=30)), 30.0),
    ]


def test_the_v2_compatibility_api_gets_a_token_and_the_bucket_as_db(influxd, db, v2_compat):
    target = InfluxTarget(v2_compat, InfluxApi.V2, org="acme", bucket=db)
    reader = InfluxDBMetricReader(target, lambda: f"{influxd.username}:{influxd.password}")
    [series] = reader.read(query(stat=Stat.COUNT, step=None))
    assert series.points == [(ms_of_instant(NOW - timedelta(hours=1)), 60.0)]
    [request] = V2Compat.seen
    assert request["path"] == "/query"
    assert request["params"] == {"db": db, "epoch": "ms"}
    assert request["auth"] == f"Token {influxd.username}:{influxd.password}"


def test_a_wrong_token_or_a_dead_server_is_backend_trouble(influxd, db, v2_compat):
    wrong = InfluxDBMetricReader(InfluxTarget(v2_compat, InfluxApi.V2, org="a", bucket=db), "x:y")
    with pytest.raises(BackendUnavailable, match="401"):
        wrong.read(query())
    from fleetpulse.stack import free_port

    dead = InfluxTarget(f"http://127.0.0.1:{free_port()}", InfluxApi.V1, database=db)
    with pytest.raises(BackendUnavailable, match="unreachable"):
        InfluxDBMetricReader(dead).read(query())


def test_a_database_not_written_yet_reads_as_empty(influxd):
    target = InfluxTarget(influxd.url, InfluxApi.V1, database="never", username=influxd.username)
    assert InfluxDBMetricReader(target, influxd.password).read(query()) == []
