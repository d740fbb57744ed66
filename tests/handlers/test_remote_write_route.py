"""POST /api/v1/write: Prometheus remote_write 1.0 through the app (chalice test client)."""

from __future__ import annotations

import base64
import json
import struct
import time

import cramjam
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.core.hosts import CATALOG_SHAPES
from chalicelib.core.ports import BackendUnavailable
from chalicelib.core.remote_write import encode_write_request

HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": "Prometheus/2.45.3",
}


def now_ms() -> int:
    return int(time.time() * 1000)


def write(api, body: bytes, token: str | None, headers: dict[str, str] | None = None):
    h = dict(HEADERS)
    if token:
        h["Authorization"] = f"Bearer {token}"
    h.update(headers or {})
    return api.client.http.post("/api/v1/write", headers=h, body=body)


def node(host: str = "web-1:9100", t: int | None = None, load1: float = 0.5):
    t = t or now_ms()
    return [
        ({"__name__": "node_load1", "instance": host, "job": "node"}, [(load1, t)]),
        ({"__name__": "node_load5", "instance": host, "job": "node"}, [(0.7, t)]),
        (
            {"__name__": "node_memory_MemAvailable_bytes", "instance": host, "job": "node"},
            [(2.0e9, t)],
        ),
        (
            {"__name__": "node_memory_MemTotal_bytes", "instance": host, "job": "node"},
            [(8.0e9, t)],
        ),
        (
            {"__name__": "node_cpu_seconds_total", "instance": host, "cpu": "0", "mode": "idle"},
            [(1234.5, t)],
        ),
    ]


def stored(api):
    out = {}
    for (measure, _, dimensions), record in api.services.metric_store.records.items():
        fields = {m["Name"]: float(m["Value"]) for m in record["MeasureValues"]}
        out[(measure, dimensions)] = fields
    return out


def test_a_write_is_stored_as_points_and_the_host_is_heard(memory_api):
    token = memory_api.token("fleet")
    response = write(memory_api, encode_write_request(node()), token)
    assert response.status_code == 204, response.body
    web = (("host", "web-1"), ("job", "node"))
    assert stored(memory_api) == {
        ("node_load1", web): {"value": 0.5},
        ("node_load5", web): {"value": 0.7},
        ("node_memory_MemAvailable_bytes", web): {"value": 2.0e9},
        ("node_memory_MemTotal_bytes", web): {"value": 8.0e9},
        # counters stay counters
        ("node_cpu_seconds_total", (("cpu", "0"), ("host", "web-1"), ("mode", "idle"))): {
            "value": 1234.5
        },
    }
    hosts = memory_api.services.host_store.scan()
    assert [(h.host, h.agent_name, h.agent_version) for h in hosts] == [
        ("web-1", "prometheus", "2.45.3")
    ]


def test_the_interval_is_learned_from_the_spacing_of_samples(memory_api):
    token = memory_api.token("fleet")
    t = now_ms() - 60_000
    for k in range(3):
        assert (
            write(memory_api, encode_write_request(node(t=t + k * 15_000)), token).status_code
            == 204
        )
    (host,) = memory_api.services.host_store.scan()
    assert host.interval.total_seconds() == 15


def test_a_target_that_is_down_is_not_a_heartbeat(memory_api):
    token = memory_api.token("fleet")
    body = encode_write_request(
        [
            ({"__name__": "up", "instance": "db-1:9100", "job": "node"}, [(0.0, now_ms())]),
            ({"__name__": "up", "instance": "web-1:9100", "job": "node"}, [(1.0, now_ms())]),
        ]
    )
    assert write(memory_api, body, token).status_code == 204
    assert [h.host for h in memory_api.services.host_store.scan()] == ["web-1"]
    assert ("up", (("host", "db-1"), ("job", "node"))) in stored(memory_api)


def test_a_host_label_names_the_host_and_instance_stays_a_tag(memory_api):
    token = memory_api.token("fleet")
    body = encode_write_request(
        [
            (
                {"__name__": "node_load1", "instance": "10.0.0.7:9100", "host": "db-2"},
                [(1.0, now_ms())],
            )
        ]
    )
    assert write(memory_api, body, token).status_code == 204
    assert ("node_load1", (("host", "db-2"), ("instance", "10.0.0.7:9100"))) in stored(memory_api)


def test_samples_outside_the_window_are_refused_one_by_one(memory_api):
    token = memory_api.token("fleet")
    old = now_ms() - 2 * 86_400_000
    series = [
        *node(),
        ({"__name__": "node_load15", "instance": "web-1:9100", "job": "node"}, [(0.9, old)]),
    ]
    response = write(memory_api, encode_write_request(series), token)
    assert response.status_code == 400
    text = response.body.decode()
    assert "timeseries[5].samples[0].time: 48.0 h old" in text
    assert "not retryable" in text
    web = (("host", "web-1"), ("job", "node"))
    assert stored(memory_api)[("node_load1", web)] == {"value": 0.5}
    assert ("node_load15", web) not in stored(memory_api)


def test_nan_and_staleness_markers_are_skipped_not_refused(memory_api):
    token = memory_api.token("fleet")
    # Prometheus' staleness marker: a NaN with the bit pattern 0x7ff0000000000002
    (stale,) = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))
    body = encode_write_request(
        [
            ({"__name__": "node_load1", "instance": "web-1:9100"}, [(stale, now_ms())]),
            ({"__name__": "node_load5", "instance": "web-1:9100"}, [(float("inf"), now_ms())]),
            ({"__name__": "node_load15", "instance": "web-1:9100"}, [(1.0, now_ms())]),
        ]
    )
    assert write(memory_api, body, token).status_code == 204
    assert stored(memory_api) == {("node_load15", (("host", "web-1"),)): {"value": 1.0}}


def test_series_without_a_host_or_name_are_refused_by_path(memory_api):
    token = memory_api.token("fleet")
    body = encode_write_request(
        [
            ({"__name__": "node_load1", "job": "node"}, [(1.0, now_ms())]),
            ({"instance": "web-1:9100"}, [(1.0, now_ms())]),
            ({"__name__": "node_load1", "instance": "bad host!:9100"}, [(1.0, now_ms())]),
        ]
    )
    response = write(memory_api, body, token)
    assert response.status_code == 400
    text = response.body.decode()
    assert "timeseries[0].labels: no instance or host label" in text
    assert "timeseries[1].labels: no __name__ label" in text
    assert "timeseries[2].labels.instance: host 'bad host!'" in text


def test_metadata_only_writes_are_accepted(memory_api):
    token = memory_api.token("fleet")
    # WriteRequest field 3 (metadata): {type: COUNTER, metric_family_name: "x"}
    metadata = bytes([0x1A, 0x05, 0x08, 0x01, 0x12, 0x01, ord("x")])
    body = bytes(cramjam.snappy.compress_raw(metadata))
    assert write(memory_api, body, token).status_code == 204


def test_wrong_encoding_type_or_version_is_415(memory_api):
    token = memory_api.token("fleet")
    body = encode_write_request(node())
    assert write(memory_api, body, token, {"Content-Encoding": "gzip"}).status_code == 415
    assert write(memory_api, body, token, {"Content-Type": "application/json"}).status_code == 415
    v2 = {"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"}
    response = write(memory_api, body, token, v2)
    assert response.status_code == 415
    assert "remote write 1.0" in response.body.decode()


def test_not_snappy_not_protobuf_or_too_large_is_a_clear_4xx(memory_api):
    token = memory_api.token("fleet")
    response = write(memory_api, b"\x05garbage", token)
    assert response.status_code == 400
    assert "not valid snappy" in response.body.decode()
    response = write(memory_api, bytes(cramjam.snappy.compress_raw(b"\xff\xff\xff")), token)
    assert response.status_code == 400
    assert "not a remote-write WriteRequest" in response.body.decode()
    # a 20-byte body that declares 2 GiB: refused before anything is inflated
    bomb = bytes([0x80, 0x80, 0x80, 0x80, 0x08]) + b"\x00" * 15
    response = write(memory_api, bomb, token)
    assert response.status_code == 413
    assert "would decompress to 2147483648 bytes" in response.body.decode()
    response = write(memory_api, b"\xff\x06\x00\x00sNaPpY" + b"\x00" * 8, token)
    assert response.status_code == 400
    assert "framed format" in response.body.decode()


def test_too_many_samples_is_413(memory_api):
    token = memory_api.token("fleet")
    limit = memory_api.services.settings.limits.max_points
    series = [
        ({"__name__": f"app_m{i}", "instance": "web-1:9100"}, [(1.0, now_ms())])
        for i in range(limit + 1)
    ]
    response = write(memory_api, encode_write_request(series), token)
    assert response.status_code == 413
    assert "max_samples_per_send" in response.body.decode()


def test_bearer_and_basic_auth_are_accepted_and_others_are_401(memory_api):
    token = memory_api.token("fleet")
    body = encode_write_request(node())
    assert write(memory_api, body, None).status_code == 401
    assert write(memory_api, body, "fp_nope_nope").status_code == 401
    basic = base64.b64encode(f"prometheus:{token}".encode()).decode()
    response = write(memory_api, body, None, {"Authorization": f"Basic {basic}"})
    assert response.status_code == 204


def test_a_host_scoped_token_may_not_write_for_another_host(memory_api):
    token = memory_api.token("host:web-1")
    assert write(memory_api, encode_write_request(node("web-1:9100")), token).status_code == 204
    assert write(memory_api, encode_write_request(node("db-1:9100")), token).status_code == 403


def test_backend_trouble_is_503_with_retry_after(memory_api):
    token = memory_api.token("fleet")

    def broken(reports):
        raise BackendUnavailable("down")

    memory_api.services.metric_store.write = broken  # type: ignore[method-assign]
    response = write(memory_api, encode_write_request(node()), token)
    assert response.status_code == 503
    assert response.headers["Retry-After"]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=512), snappy=st.booleans())
def test_any_bytes_get_a_2xx_or_4xx_never_a_5xx(memory_api, body, snappy):
    token = memory_api.token("fleet")
    raw = bytes(cramjam.snappy.compress_raw(body)) if snappy else body
    response = write(memory_api, raw, token)
    assert response.status_code in (204, 400, 413), response.body


def test_one_scrape_split_across_requests_is_stored_whole(memory_api):
    # Remote write shards series over requests: each must be a record of its own.
    token = memory_api.token("fleet")
    series = node()
    for one in series:
        assert write(memory_api, encode_write_request([one]), token).status_code == 204
    assert write(memory_api, encode_write_request(series), token).status_code == 204  # a resend
    assert len(stored(memory_api)) == len(series)
    (host,) = memory_api.services.host_store.scan()
    # The catalog takes each new shape of request at once until it knows CATALOG_SHAPES of
    # them, then one an hour (a scrape sharded differently each time costs no write a post).
    listed = {e.measurement for e in memory_api.services.host_store.catalog(host.host)}
    assert listed == {labels["__name__"] for labels, _ in series[:CATALOG_SHAPES]}


def test_a_remote_write_host_is_retired_when_told_and_back_when_it_writes(memory_api):
    token = memory_api.token("fleet")
    assert write(memory_api, encode_write_request(node()), token).status_code == 204
    goodbye = {"host": "web-1", "heartbeat": {"state": "shutdown"}}
    assert memory_api.post("/v1/ingest", goodbye, token=token).status_code == 202
    (host,) = memory_api.services.host_store.scan()
    assert host.state.value == "retired"
    assert write(memory_api, encode_write_request(node()), token).status_code == 204
    (host,) = memory_api.services.host_store.scan()
    assert host.state.value == "up"


def test_over_dynamodb_and_timestream_the_host_and_its_series_are_recorded(api):
    token = api.token("fleet")
    series = [
        *node(),
        (
            {"__name__": "fleetpulse:memory_used:percent", "instance": "web-1:9100"},
            [(42.0, now_ms())],
        ),
    ]
    assert write(api, encode_write_request(series), token).status_code == 204
    item = api.services.host_store.get("web-1")  # type: ignore[attr-defined]
    assert item["agent_name"] == "prometheus"
    assert item["series_n"] == len(series)
    listed = api.services.host_store.catalog("web-1")  # type: ignore[attr-defined]
    assert {e.measurement: e.fields for e in listed}["fleetpulse.memory_used.percent"] == ("value",)
    response = api.get("/v1/hosts", token=api.token("admin"))
    assert [h["host"] for h in json.loads(response.body)["hosts"]] == ["web-1"]


def test_a_scrape_of_thousands_of_series_is_stored_and_its_host_item_keeps_the_cap(api):
    token = api.token("fleet")
    t = now_ms()
    series = [
        (
            {"__name__": "http_requests_total", "instance": "web-1:9100", "path": f"/p{i:04d}"},
            [(i, t)],
        )
        for i in range(1000)
    ]
    assert write(api, encode_write_request(series), token).status_code == 204
    item = api.services.host_store.get("web-1")  # type: ignore[attr-defined]
    cap = api.services.settings.limits.max_tracked_series
    assert item["series_n"] == 1000
    listed = api.services.host_store.catalog("web-1")  # type: ignore[attr-defined]
    assert [e.tags["path"] for e in listed] == [f"/p{i:04d}" for i in range(cap)]
