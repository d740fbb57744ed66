"""POST /api/v2/write and POST /write: InfluxDB clients point at the collector unchanged."""

from __future__ import annotations

import base64
import gzip
import json
import time
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.core.models import HostReport, Rejection
from chalicelib.core.ports import BackendUnavailable
from tests.support.aws import WriteRecordsCapture, dims, measures

V2 = "/api/v2/write?org=acme&bucket=metrics&precision=ms"
V1 = "/write?db=telegraf&precision=ms"


def now_ms() -> int:
    return int(time.time() * 1000)


def write(
    api,
    body: str | bytes,
    *,
    path: str = V2,
    token: str | None = None,
    scheme: str = "Token",
    headers=None,
):
    h = {"Content-Type": "text/plain; charset=utf-8", "User-Agent": "Telegraf/1.34"}
    if token:
        h["Authorization"] = f"{scheme} {token}"
    h.update(headers or {})
    raw = body.encode() if isinstance(body, str) else body
    return api.client.http.post(path, headers=h, body=raw)


def influx_body(response) -> dict:
    return json.loads(response.body)


def stored(api) -> list[tuple[str, dict[str, str], dict]]:
    out = []
    for (measure, _, dimensions), record in api.services.metric_store.records.items():
        fields = {m["Name"]: m["Value"] for m in record["MeasureValues"]}
        out.append((measure, dict(dimensions), fields))
    return sorted(out, key=repr)


@pytest.fixture
def token(memory_api) -> str:
    return memory_api.token("fleet")


def test_a_telegraf_write_is_stored_answered_204_and_counts_as_heartbeats(memory_api, token):
    t = now_ms()
    body = (
        f"cpu,cpu=cpu-total,host=web-1 usage_user=3.2,usage_idle=95.7 {t}\n"
        f"mem,host=web-1 used_percent=41.5,available=123456i {t}\n"
        f"system,host=db-1 load1=0.42,n_cpus=4i {t}\n"
    )
    response = write(memory_api, body, token=token)

    assert response.status_code == 204
    assert response.body in (b"", "")
    assert stored(memory_api) == [
        ("cpu", {"cpu": "cpu-total", "host": "web-1"}, {"usage_user": "3.2", "usage_idle": "95.7"}),
        ("mem", {"host": "web-1"}, {"used_percent": "41.5", "available": "123456"}),
        ("system", {"host": "db-1"}, {"load1": "0.42", "n_cpus": "4"}),
    ]
    hosts = memory_api.services.host_store.items
    assert set(hosts) == {"web-1", "db-1"}
    assert hosts["web-1"]["state"] == "up"
    assert hosts["web-1"]["series_n"] == 2
    listed = memory_api.services.host_store.catalog("web-1")
    assert [(e.measurement, e.fields) for e in listed] == [
        ("cpu", ("usage_idle", "usage_user")),
        ("mem", ("available", "used_percent")),
    ]


@pytest.mark.parametrize(
    ("path", "scheme", "credential"),
    [
        (V2, "Token", "{t}"),
        (V2, "Bearer", "{t}"),
        (V1, "Token", "{t}"),
        (V1, "Basic", "b64:telegraf:{t}"),
        (V1 + "&u=telegraf&p={t}", None, None),
        (V2, "Basic", "b64::{t}"),
    ],
)
def test_every_influxdb_way_of_sending_the_token_works(memory_api, token, path, scheme, credential):
    headers = {}
    if credential is not None:
        value = credential.format(t=token)
        if value.startswith("b64:"):
            value = base64.b64encode(value[4:].encode()).decode()
        headers["Authorization"] = f"{scheme} {value}"
    response = write(
        memory_api, f"cpu,host=a f=1 {now_ms()}", path=path.format(t=token), headers=headers
    )
    assert response.status_code == 204


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (V2, {}),
        (V2, {"Authorization": "Token fp_aaaaaaaaaaaa_" + "b" * 43}),
        (V2, {"Authorization": "Basic !!!"}),
        (V2 + "&p=whatever", {}),
        (V1, {"Authorization": "Basic " + base64.b64encode(b"user-only").decode()}),
    ],
)
def test_a_missing_or_unknown_token_is_401_in_influxdbs_shape(memory_api, path, headers):
    response = write(memory_api, "cpu,host=a f=1", path=path, headers=headers)
    assert response.status_code == 401
    body = influx_body(response)
    assert body["code"] == "unauthorized"
    assert body["message"]
    assert ("error" in body) == path.startswith("/write")


def test_a_token_for_another_host_is_403(memory_api):
    token = memory_api.token("host:web-1")
    assert write(memory_api, f"cpu,host=web-1 f=1 {now_ms()}", token=token).status_code == 204
    response = write(memory_api, f"cpu,host=web-1 f=1 {now_ms()}\ncpu,host=web-2 f=1", token=token)
    assert response.status_code == 403
    body = influx_body(response)
    assert body["code"] == "forbidden"
    assert "may not post for 'web-2'" in body["message"]


def test_a_partial_write_is_400_naming_each_line_and_column_and_the_rest_is_stored(
    memory_api, token
):
    t = now_ms()
    body = "\n".join(
        [
            f"cpu,host=a f=1 {t}",
            f"cpu,host=a f=oops {t}",
            f"cpu,role=web f=1 {t}",
            f"cpu,host=a f=2 {t + 1}",
        ]
    )
    response = write(memory_api, body, token=token)

    assert response.status_code == 400
    message = influx_body(response)["message"]
    assert influx_body(response)["code"] == "invalid"
    assert message.startswith("partial write: line 2, column 14: invalid field value 'oops'")
    assert "; line 3: no host tag: every line needs host=<name> as a tag" in message
    assert message.endswith(" dropped=2")
    assert [f for _, _, f in stored(memory_api)] == [{"f": "1.0"}, {"f": "2.0"}]
    assert "a" in memory_api.services.host_store.items


def test_a_body_with_nothing_valid_is_400_unable_to_parse(memory_api, token):
    response = write(memory_api, "cpu,host=a\ncpu,host=a f=", token=token, path=V1)
    assert response.status_code == 400
    body = influx_body(response)
    assert body["message"].startswith(
        "unable to parse: line 1, column 11: missing fields; line 2, column 14"
    )
    assert body["error"] == body["message"]  # 1.x clients read `error`


@pytest.mark.parametrize(
    ("path", "stamp"),
    [
        ("/api/v2/write?org=a&bucket=b", lambda ms: ms * 1_000_000 + 123),
        ("/api/v2/write?org=a&bucket=b&precision=ns", lambda ms: ms * 1_000_000),
        ("/api/v2/write?org=a&bucket=b&precision=us", lambda ms: ms * 1_000),
        ("/api/v2/write?org=a&bucket=b&precision=s", lambda ms: ms // 1000),
        ("/write?db=x&precision=n", lambda ms: ms * 1_000_000),
        ("/write?db=x&precision=u", lambda ms: ms * 1_000),
        ("/write?db=x&precision=m", lambda ms: ms // 60_000),
    ],
)
def test_precision_is_honoured(memory_api, token, path, stamp):
    t = now_ms()
    assert (
        write(memory_api, f"cpu,host=a f=1 {stamp(t)}", path=path, token=token).status_code == 204
    )
    [(_, time_ms, _)] = memory_api.services.metric_store.records
    factor = {"s": 1000, "m": 60_000}.get(path.rsplit("=", 1)[-1], 1)
    assert int(time_ms) == t // factor * factor


def test_an_unknown_precision_is_400(memory_api, token):
    response = write(memory_api, "cpu,host=a f=1", path="/api/v2/write?precision=h", token=token)
    assert response.status_code == 400
    assert influx_body(response)["message"] == "precision 'h' is not one of ns, us, ms, s"


def test_gzip_any_content_type_and_the_size_limits(memory_api, token):
    t = now_ms()
    line = f"cpu,host=a f=1 {t}\n".encode()
    for content_type in ("text/plain", "application/octet-stream", ""):
        response = write(
            memory_api,
            gzip.compress(line),
            token=token,
            headers={"Content-Encoding": "gzip", "Content-Type": content_type},
        )
        assert response.status_code == 204
    bomb = gzip.compress(b"#" * (11 * 1024 * 1024))
    response = write(memory_api, bomb, token=token, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert influx_body(response)["code"] == "request too large"
    lines = "".join(f"cpu,host=a f={i} {t}\n" for i in range(5001))
    assert write(memory_api, lines, token=token).status_code == 413
    response = write(memory_api, line, token=token, headers={"Content-Encoding": "br"})
    assert response.status_code == 415
    assert influx_body(response)["code"] == "unsupported media type"


def test_an_empty_body_is_400_for_v2_as_influxdb_2_answers_and_204_for_v1(memory_api, token):
    response = write(memory_api, "", token=token)
    assert (response.status_code, influx_body(response)["message"]) == (
        400,
        "writing requires points",
    )
    assert write(memory_api, "# only a comment\n", token=token, path=V1).status_code == 204


class RefusingStore:
    """A metric store that refuses one point, or is down."""

    def __init__(self, down: bool = False) -> None:
        self.down = down

    def write(self, reports: Sequence[HostReport]) -> list[Rejection]:
        if self.down:
            raise BackendUnavailable("InfluxDB answered 503")
        p = reports[0].points[-1]
        return [Rejection(p.index, p.path, f"{p.path}: refused by InfluxDB: field type conflict")]


def test_points_the_store_refuses_make_a_partial_write(memory_services, memory_api, token):
    memory_services.__dict__["metric_store"] = RefusingStore()
    t = now_ms()
    response = write(memory_api, f"cpu,host=a f=1 {t}\ncpu,host=a f=2 {t + 1}", token=token)
    assert response.status_code == 400
    assert influx_body(response)["message"] == (
        "partial write: line 2: refused by InfluxDB: field type conflict dropped=1"
    )


def test_a_backend_outage_is_503_with_retry_after(memory_services, memory_api, token):
    memory_services.__dict__["metric_store"] = RefusingStore(down=True)
    response = write(memory_api, f"cpu,host=a f=1 {now_ms()}", token=token)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert influx_body(response) == {
        "code": "unavailable",
        "message": "storage is unavailable; retry later",
    }


def test_line_protocol_reaches_timestream_like_a_json_post(api, fleet_token):
    capture = WriteRecordsCapture(api.services.clients.get("timestream-write"))
    t = now_ms()
    body = f'disk,host=web-1,mount=/ used_percent=70.5,state="ok" {t}\n'
    assert write(api, body, token=fleet_token).status_code == 204
    [record] = capture.stored()
    assert dims(record) == {"host": "web-1", "mount": "/"}
    assert measures(record) == {"used_percent": ("70.5", "DOUBLE"), "state": ("ok", "VARCHAR")}
    assert record["Time"] == str(t)
    assert api.services.host_store.get("web-1") is not None


@given(raw=st.binary(max_size=200), path=st.sampled_from([V2, V1, "/api/v2/write?precision=x"]))
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_bytes_never_get_a_5xx(memory_api, token, raw, path):
    response = write(memory_api, raw, token=token, path=path)
    assert response.status_code in (204, 400, 413, 415)
    if response.status_code != 204:
        assert set(influx_body(response)) >= {"code", "message"}
