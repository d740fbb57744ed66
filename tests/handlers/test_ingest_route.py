"""POST /v1/ingest end to end through chalice's test client, over moto."""

from __future__ import annotations

import gzip
import json
import time
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.aws import WriteRecordsCapture, dims, measures
from tests.support.http import add_token
from tests.support.points import contract_body as contract_example
from tests.support.strategies import json_documents


def now_ms() -> int:
    return int(time.time() * 1000)


def catalog(api, host: str) -> list:
    """The host's series catalog (what its page lists)."""
    return api.services.host_store.catalog(host)


def contract_body() -> dict:
    return contract_example(now_ms())


@pytest.fixture
def capture(api):
    return WriteRecordsCapture(api.services.clients.get("timestream-write"))


def test_health_needs_no_token(api):
    response = api.get("/v1/health")
    assert response.status_code == 200
    assert response.json_body == {"status": "ok"}


def test_contract_example_is_stored_with_its_host_item(api, fleet_token, capture):
    body = contract_body()
    response = api.post("/v1/ingest", body, token=fleet_token)
    assert response.status_code == 202
    assert response.json_body == {"accepted": 2, "rejected": []}

    cpu, event = capture.stored()
    assert dims(cpu) == {"host": "web-1.example.com", "role": "web", "env": "prod", "cpu": "total"}
    assert cpu["MeasureName"] == "cpu"
    assert measures(cpu) == {
        "user": ("3.2", "DOUBLE"),
        "system": ("1.1", "DOUBLE"),
        "idle": ("95.7", "DOUBLE"),
    }
    assert cpu["Time"] == str(body["points"][0]["time"])
    assert dims(event)["service"] == "nginx"
    assert measures(event)["status"] == ("critical", "VARCHAR")

    item = api.services.host_store.get("web-1.example.com")
    assert item["state"] == "up"
    assert item["interval_s"] == 60
    assert item["agent_version"] == "0.1.0"
    assert item["tags"] == {"role": "web", "env": "prod"}
    assert item["series_n"] == 1
    assert "w" not in item  # idle 95.7%: no rule would act on it
    assert [(e.measurement, e.tags, e.fields) for e in catalog(api, "web-1.example.com")] == [
        ("cpu", {"cpu": "total"}, ("idle", "system", "user"))
    ]
    assert item["e#nginx"]["status"] == "critical"


def test_vinli_and_numbat_shapes_end_to_end(api, fleet_token, capture):
    vinli = {
        "data": [
            {
                "points": [{"fields": {"value": "2.98"}, "measurement": "load_average"}],
                "tags": {"hostname": "kube-1", "sample": "1_min"},
            }
        ]
    }
    assert api.post("/v1/ingest", vinli, token=fleet_token).json_body == {
        "accepted": 1,
        "rejected": [],
    }
    numbat = [
        {"host": "db-1", "service": "backup", "status": "okay", "time": now_ms(), "ttl": 90000},
        {"host": "db-2", "service": "backup", "status": "critical", "time": now_ms()},
    ]
    assert api.post("/v1/ingest", numbat, token=fleet_token).json_body == {
        "accepted": 2,
        "rejected": [],
    }
    stored = capture.stored()
    load = stored[0]
    assert dims(load) == {"host": "kube-1", "sample": "1_min"}
    assert measures(load) == {"value": ("2.98", "DOUBLE")}
    assert sorted(dims(r)["host"] for r in stored[1:]) == ["db-1", "db-2"]
    for host in ("kube-1", "db-1", "db-2"):
        assert api.services.host_store.get(host)["state"] == "up"


def test_gzip_bodies_and_their_limits(api, fleet_token, capture):
    response = api.post("/v1/ingest", contract_body(), token=fleet_token, gzip_body=True)
    assert response.status_code == 202
    assert len(capture.stored()) == 2

    bomb = gzip.compress(b" " * 50_000_000)  # 50 MB of spaces, ~50 KB on the wire
    response = api.post(
        "/v1/ingest", token=fleet_token, raw=bomb, headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 413
    assert "inflates to more than" in response.json_body["error"]

    response = api.post(
        "/v1/ingest", token=fleet_token, raw=b"{}", headers={"Content-Encoding": "br"}
    )
    assert response.status_code == 415
    response = api.post(
        "/v1/ingest", token=fleet_token, raw=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert (
        response.json_body["error"]
        == "Content-Type 'text/plain' is not supported; send application/json"
    )


def test_body_over_the_size_limit_is_413(api, fleet_token):
    huge = {"host": "h", "points": [{"measurement": "m", "fields": {"s": "x" * 1000}}] * 1100}
    response = api.post("/v1/ingest", huge, token=fleet_token)
    assert response.status_code == 413


def test_bad_points_are_listed_and_the_rest_stored(api, fleet_token, capture):
    body = contract_body()
    body["points"].append(
        {"measurement": "cpu", "time": now_ms() - 48 * 3_600_000, "fields": {"user": 1}}
    )
    body["points"].append(
        {"measurement": "cpu", "fields": {"user": "NaN"}, "tags": {"cpu": {"x": 1}}}
    )
    response = api.post("/v1/ingest", body, token=fleet_token)
    assert response.status_code == 202
    result = response.json_body
    assert result["accepted"] == 2
    assert [(r["index"], r["path"]) for r in result["rejected"]] == [
        (1, "points[1]"),
        (2, "points[2]"),
    ]
    assert "h old; the store accepts points up to 2 h old" in result["rejected"][0]["reason"]
    assert (
        "points[2].tags.cpu: tag value must be a string, got object"
        in result["rejected"][1]["reason"]
    )
    assert len(capture.stored()) == 2


def test_nothing_valid_is_a_400_naming_every_problem(api, fleet_token, capture):
    response = api.post(
        "/v1/ingest",
        {
            "host": "h",
            "points": [
                {"measurement": "a b", "fields": {"x": 1}},
                {"measurement": "m", "fields": []},
            ],
        },
        token=fleet_token,
    )
    assert response.status_code == 400
    assert response.json_body["error"] == "no valid point or event in the request"
    assert [d["path"] for d in response.json_body["details"]] == [
        "points[0].measurement",
        "points[1].fields",
    ]
    assert capture.requests == []


@pytest.mark.parametrize(
    ("authorization", "status", "error"),
    [
        (None, 401, "missing credentials: send 'Authorization: Bearer <token>'"),
        ("Basic dXNlcjpwYXNz", 401, "missing credentials: send 'Authorization: Bearer <token>'"),
        ("Bearer not-a-token", 401, "unknown or revoked token"),
        ("Bearer fp_aaaaaaaaaaaa_" + "b" * 43, 401, "unknown or revoked token"),
    ],
)
def test_missing_and_unknown_tokens_are_401(api, authorization, status, error, capture):
    headers = {"Authorization": authorization} if authorization else {}
    response = api.post("/v1/ingest", contract_body(), headers=headers)
    assert (response.status_code, response.json_body["error"]) == (status, error)
    assert capture.requests == []


def test_revoked_token_is_401(api):
    token = api.token("fleet")
    assert api.post("/v1/ingest", contract_body(), token=token).status_code == 202
    [record] = api.services.token_store.list()
    api.services.token_store.revoke(record.token_id, datetime.now(UTC))
    response = api.post("/v1/ingest", contract_body(), token=token)
    assert response.status_code == 401


def test_host_scoped_tokens_post_only_for_their_host(api, capture):
    own = api.token("host:web-1.example.com")
    other = api.token("host:web-2")
    assert api.post("/v1/ingest", contract_body(), token=own).status_code == 202
    response = api.post("/v1/ingest", contract_body(), token=other)
    assert response.status_code == 403
    assert "may not post for 'web-1.example.com'" in response.json_body["details"][0]["message"]
    # a list of events for two hosts needs the right to post for both
    events = [
        {"host": "web-2", "service": "s", "status": "ok"},
        {"host": "web-3", "service": "s", "status": "ok"},
    ]
    assert api.post("/v1/ingest", events, token=other).status_code == 403
    assert len(capture.requests) == 1


def test_admin_tokens_and_the_influx_token_scheme_are_accepted(api):
    admin = api.token("admin")
    assert api.post("/v1/ingest", contract_body(), token=admin).status_code == 202
    fleet = api.token("fleet")
    response = api.post("/v1/ingest", contract_body(), headers={"Authorization": f"Token {fleet}"})
    assert response.status_code == 202


def test_a_failing_backend_is_503_with_retry_after(api, fleet_token):
    api.services.clients.get("timestream-write").delete_table(
        DatabaseName="fleetpulse-dev", TableName="metrics"
    )
    response = api.post("/v1/ingest", contract_body(), token=fleet_token)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert response.json_body == {"error": "storage is unavailable; retry later"}
    # the host was not marked as seen: the agent will resend the whole post
    assert api.services.host_store.get("web-1.example.com") is None


def test_a_retried_post_stores_nothing_twice(memory_api):
    token = memory_api.token("fleet")
    body = contract_body()
    first = memory_api.post("/v1/ingest", body, token=token)
    again = memory_api.post("/v1/ingest", body, token=token)
    assert first.json_body == again.json_body == {"accepted": 2, "rejected": []}
    store = memory_api.services.metric_store
    assert len(store.records) == 2
    changed = json.loads(json.dumps(body))
    changed["points"][0]["fields"]["user"] = 50.0
    response = memory_api.post("/v1/ingest", changed, token=token)
    assert response.json_body["rejected"][0]["path"] == "points[0]"
    assert "a different value is already stored" in response.json_body["rejected"][0]["reason"]


def test_tokens_never_reach_the_logs(api, capsys, caplog):
    token = api.token("fleet")
    revoked_id = api.services.token_store.list()[0].token_id
    api.post("/v1/ingest", contract_body(), token=token)
    api.post("/v1/ingest", {"host": "h", "points": [{"bad": 1}]}, token=token)
    api.post("/v1/ingest", contract_body(), token=token + "x")
    api.services.token_store.revoke(revoked_id, datetime.now(UTC))
    api.post("/v1/ingest", contract_body(), token=token)
    api.services.clients.get("timestream-write").delete_table(
        DatabaseName="fleetpulse-dev", TableName="metrics"
    )
    api.post(
        "/v1/ingest",
        contract_body(),
        headers={"Authorization": f"Bearer {add_token(api.services, 'fleet')}"},
    )
    out = capsys.readouterr()
    logged = out.out + out.err + caplog.text
    assert "backend unavailable" in logged  # logs were captured at all
    assert "fp_" not in logged


def emf_blobs(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]


def test_metrics_count_points_and_statuses(api, fleet_token, capsys, monkeypatch):
    import app

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    monkeypatch.setattr(app, "METRICS_FLUSH_SECONDS", 0.0)  # a line each request
    body = contract_body()
    body["points"].append({"measurement": "cpu", "time": 1, "fields": {"x": 1}})
    api.post("/v1/ingest", body, token=fleet_token)
    api.post("/v1/ingest", body)
    blobs = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith('{"_aws"')
    ]
    assert blobs[0]["PointsAccepted"] == [2.0]
    assert blobs[0]["PointsRejected"] == [1.0]
    assert blobs[0]["Status202"] == [1.0]
    assert blobs[1]["Status401"] == [1.0]


def test_metrics_go_out_once_a_minute_with_every_posts_values(
    api, fleet_token, capsys, monkeypatch
):
    import app

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    clock = [1_000.0]
    monkeypatch.setattr(app.time, "monotonic", lambda: clock[0])
    app._last_flush[0] = clock[0]
    for _ in range(3):
        clock[0] += 10
        api.post("/v1/ingest", contract_body(), token=fleet_token)
    assert emf_blobs(capsys.readouterr().out) == []  # held: under a minute since the last
    clock[0] += 31
    api.post("/v1/ingest", contract_body(), token=fleet_token)
    (blob,) = emf_blobs(capsys.readouterr().out)
    assert blob["Status202"] == [1.0] * 4
    assert blob["PointsAccepted"] == [blob["PointsAccepted"][0]] * 4
    clock[0] += 1
    api.post("/v1/ingest", contract_body(), token=fleet_token)
    assert emf_blobs(capsys.readouterr().out) == []  # the next minute starts afresh


json_bodies = json_documents(max_text=10, max_list=3, max_leaves=25)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=json_bodies | st.builds(lambda b: b, st.binary(max_size=200)), gz=st.booleans())
def test_any_body_gets_a_2xx_or_4xx_never_a_5xx(memory_api, body, gz):
    token = memory_api.token("fleet")
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = memory_api.post("/v1/ingest", token=token, raw=raw, gzip_body=gz)
    assert response.status_code in (202, 400, 403, 413)
    assert isinstance(response.json_body, dict)


def test_a_host_sending_thousands_of_new_series_has_them_stored_but_not_all_tracked(
    api, fleet_token, capture
):
    t = now_ms()
    points = [
        {"measurement": "statsd", "time": t, "tags": {"key": f"user-{i:04d}"}, "fields": {"n": i}}
        for i in range(5000)
    ]
    response = api.post(
        "/v1/ingest", {"host": "storm-1", "points": points}, token=fleet_token, gzip_body=True
    )
    assert response.status_code == 202
    cap = api.services.settings.limits.max_tracked_series
    assert response.json_body == {
        "accepted": 5000,
        "rejected": [],
        "untracked": {"series": 5000 - cap, "services": 0},
    }
    assert len(capture.stored()) == 5000  # every point is in the metric store
    tracked = [e.tags["key"] for e in catalog(api, "storm-1")]
    assert tracked == [f"user-{i:04d}" for i in range(cap)]
    assert api.services.host_store.get("storm-1")["series_n"] == 5000
