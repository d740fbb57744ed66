"""InfluxDBMetricStore's v2 requests, and every answer, against a local server that checks them.

Debian's InfluxDB serves only the v1 API; `tests.support.influx_v2` checks
what InfluxDB 2.x (Timestream for InfluxDB) requires and answers as scripted.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from chalicelib.adapters.influxdb import InfluxDBMetricStore
from chalicelib.core.influx import InfluxTarget
from chalicelib.core.line_protocol import parse_line
from chalicelib.core.models import HostReport, InfluxApi, Point
from chalicelib.core.ports import BackendUnavailable
from fleetpulse.stack import free_port
from tests.support.influx_v2 import InfluxWriteServer, Reply, Seen

NOW = int(time.time() * 1000)


def store_for(server: InfluxWriteServer, **kw: Any) -> tuple[InfluxDBMetricStore, list[float]]:
    slept: list[float] = []
    target = InfluxTarget(url=server.url, api=InfluxApi.V2, org=server.org, bucket=server.bucket)
    kw.setdefault("sleep", slept.append)
    store = InfluxDBMetricStore(target, kw.pop("token", server.token), **kw)
    return store, slept


def report(n: int = 3, **fields: Any) -> HostReport:
    return HostReport(
        host="web-1",
        tags={"role": "web"},
        points=[
            Point(
                "cpu",
                NOW + i,
                {"cpu": str(i)},
                {"user": 1.5 + i, **fields},
                i,
                f"points[{i}]",
                True,
            )
            for i in range(n)
        ],
    )


def test_v2_writes_carry_org_bucket_ms_precision_token_and_gzip(influx_v2):
    store, _ = store_for(influx_v2, max_lines=40)
    assert store.write([report(50)]) == []
    assert influx_v2.problems == []
    first, second = influx_v2.requests
    assert first.params == {"org": "acme", "bucket": "metrics", "precision": "ms"}
    assert first.headers["authorization"] == "Token s3cret-token"
    assert first.headers["content-type"] == "text/plain; charset=utf-8"
    assert (first.gzipped, len(first.lines), len(second.lines)) == (True, 40, 10)
    line = parse_line(first.lines[0])
    assert (line.measurement, line.tags, line.fields, line.timestamp) == (
        "cpu",
        {"cpu": "0", "host": "web-1", "role": "web"},
        {"user": 1.5},
        NOW,
    )


def test_a_small_body_is_sent_plain(influx_v2):
    store, _ = store_for(influx_v2)
    assert store.write([report(1)]) == []
    [seen] = influx_v2.requests
    assert not seen.gzipped
    assert "content-encoding" not in seen.headers


def test_v1_requests_use_basic_auth_when_a_user_is_set(influx_v1_shape):
    influx_v1_shape.username = "writer"
    target = InfluxTarget(
        url=influx_v1_shape.url, api=InfluxApi.V1, database="metrics", username="writer"
    )
    assert InfluxDBMetricStore(target, influx_v1_shape.token).write([report(2)]) == []
    influx_v1_shape.username = None
    target = InfluxTarget(url=influx_v1_shape.url, api=InfluxApi.V1, database="metrics")
    assert InfluxDBMetricStore(target, influx_v1_shape.token).write([report(2)]) == []
    assert influx_v1_shape.problems == []
    assert len(influx_v1_shape.requests) == 2


def test_a_422_partial_write_reports_the_named_points_and_keeps_the_rest(influx_v2):
    influx_v2.replies.append(
        Reply(
            422,
            {
                "code": "unprocessable entity",
                "message": 'failure writing points to database: partial write: field type conflict: input field "state" on measurement "cpu" is type string, already exists as type float dropped=2',
            },
        )
    )
    store, _ = store_for(influx_v2)
    r = report(5)
    r.points[1].fields["state"] = "up"
    r.points[3].fields["state"] = "down"
    for i in (0, 2, 4):
        r.points[i].fields["state"] = 1.0

    rejected = store.write([r])

    assert [x.path for x in rejected] == ["points[1]", "points[3]"]
    assert "field type conflict" in rejected[0].reason
    assert len(influx_v2.requests) == 1  # dropped=2, both named: nothing to resend


def _refuse_lines_with(marker: str, partial: bool = True):
    """A server that, like InfluxDB, stores what it can and names nothing."""

    def policy(seen: Seen) -> Reply:
        bad = [line for line in seen.lines if marker in line]
        if not bad:
            return Reply(204)
        prefix = "partial write: " if partial else ""
        return Reply(
            400,
            {
                "code": "invalid",
                "message": f"{prefix}points beyond retention policy dropped={len(bad)}",
            },
        )

    return policy


def test_refused_points_are_found_by_halving_when_influxdb_names_none(influx_v2):
    influx_v2.policy = _refuse_lines_with("old=")
    store, _ = store_for(influx_v2)
    r = report(32)
    for i in (5, 6, 30):
        r.points[i].fields["old"] = 1.0

    rejected = store.write([r])

    assert [x.path for x in rejected] == ["points[5]", "points[6]", "points[30]"]
    assert all("points beyond retention policy" in x.reason for x in rejected)
    assert len(influx_v2.requests) < 32


def test_a_batch_refused_whole_is_narrowed_down_too(influx_v2):
    influx_v2.policy = _refuse_lines_with("bad=", partial=False)
    store, _ = store_for(influx_v2)
    r = report(8)
    r.points[6].fields["bad"] = 1.0
    assert [x.path for x in store.write([r])] == ["points[6]"]
    written = {line.split(" ")[0] for line in influx_v2.lines if "bad=" not in line}
    assert len(written) == 7  # every good line was sent again until it was stored


def test_narrowing_stops_at_the_time_budget_and_reports_the_rest(influx_v2):
    influx_v2.policy = _refuse_lines_with("bad=", partial=False)
    ticks = iter(range(1000))
    store, _ = store_for(influx_v2, time_budget=2.5, clock=lambda: float(next(ticks)))
    r = report(16)
    r.points[3].fields["bad"] = 1.0
    rejected = store.write([r])
    assert "points[3]" in [x.path for x in rejected]
    assert any("not narrowed down within the time budget" in x.reason for x in rejected)


def test_413_splits_the_batch(influx_v2):
    def policy(seen: Seen) -> Reply:
        return (
            Reply(413, {"code": "request too large", "message": "too large"})
            if len(seen.lines) > 2
            else Reply()
        )

    influx_v2.policy = policy
    store, _ = store_for(influx_v2)
    assert store.write([report(8)]) == []
    assert sorted(len(s.lines) for s in influx_v2.requests if len(s.lines) <= 2) == [2, 2, 2, 2]


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            401,
            {"code": "unauthorized", "message": "unauthorized access"},
            "refused the credentials",
        ),
        (
            403,
            {"code": "forbidden", "message": "insufficient permissions for write"},
            "refused the credentials",
        ),
        (404, {"code": "not found", "message": 'bucket "metrics" not found'}, "answered 404"),
        (405, "method not allowed", "answered 405"),
    ],
)
def test_misconfiguration_is_backend_unavailable_naming_what_to_check(
    influx_v2, status, body, expected
):
    influx_v2.replies.append(Reply(status, body))
    store, slept = store_for(influx_v2)
    with pytest.raises(BackendUnavailable) as caught:
        store.write([report(1)])
    assert expected in str(caught.value)
    assert "bucket 'metrics' of org 'acme'" in str(caught.value)
    assert influx_v2.token not in str(caught.value)
    assert slept == []  # not retried: only the operator can fix it


def test_a_request_refused_as_such_is_a_setting_to_fix_not_points_to_drop(influx_v2):
    influx_v2.replies.append(Reply(400, {"code": "invalid", "message": "invalid precision"}))
    store, _ = store_for(influx_v2)
    with pytest.raises(BackendUnavailable, match=r"refused the request .* invalid precision"):
        store.write([report(8)])
    assert len(influx_v2.requests) == 1  # nothing resent: no point is at fault


def test_429_waits_as_long_as_retry_after_says(influx_v2):
    influx_v2.replies.append(
        Reply(429, {"code": "too many requests", "message": "slow down"}, {"Retry-After": "2"})
    )
    store, slept = store_for(influx_v2)
    assert store.write([report(2)]) == []
    assert slept == [2.0]
    assert len(influx_v2.requests) == 2


def test_a_retry_after_beyond_the_budget_gives_up_at_once(influx_v2):
    influx_v2.replies.append(
        Reply(503, {"code": "unavailable", "message": "busy"}, {"Retry-After": "60"})
    )
    store, slept = store_for(influx_v2)
    with pytest.raises(BackendUnavailable, match="answered 503: busy, after 1 tries"):
        store.write([report(1)])
    assert slept == []


def test_5xx_is_retried_with_jittered_backoff_then_gives_up(influx_v2):
    influx_v2.policy = lambda seen: Reply(500, {"code": "internal error", "message": "boom"})
    store, slept = store_for(influx_v2, max_attempts=4, base_delay=0.1)
    with pytest.raises(BackendUnavailable, match="answered 500: boom, after 4 tries"):
        store.write([report(1)])
    assert len(slept) == 3
    for n, delay in enumerate(slept):
        assert 0.05 * 2**n <= delay <= 0.1 * 2**n


def test_a_500_then_success_loses_nothing(influx_v2):
    influx_v2.replies.append(Reply(502, "bad gateway"))
    store, slept = store_for(influx_v2)
    assert store.write([report(3)]) == []
    assert len(slept) == 1
    assert len(influx_v2.requests[-1].lines) == 3


def test_a_hung_server_times_out_within_the_budget(influx_v2):
    influx_v2.policy = lambda seen: Reply(204, delay=2.0)
    store, _ = store_for(influx_v2, read_timeout=0.2, max_attempts=2, sleep=time.sleep)
    with pytest.raises(BackendUnavailable, match="unreachable \\(ReadTimeout\\), after 2 tries"):
        store.write([report(1)])


def test_an_unreachable_server_is_backend_unavailable():
    target = InfluxTarget(url=f"http://127.0.0.1:{free_port()}", org="o", bucket="b")
    store = InfluxDBMetricStore(target, "t", sleep=lambda s: None, max_attempts=2)
    with pytest.raises(BackendUnavailable, match="unreachable \\(ConnectionError\\)"):
        store.write([report(1)])
