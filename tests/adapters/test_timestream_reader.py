"""TimestreamMetricReader: SQL checked against the service model (Stubber) and moto's queue."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import boto3
import pytest
import requests
from botocore.stub import Stubber

from chalicelib.adapters.history import TimestreamMetricReader
from chalicelib.core.instants import ms_of_instant
from chalicelib.core.ports import BackendUnavailable
from chalicelib.core.series import MAX_SERIES, SeriesQuery, Stat, TooManySeries
from chalicelib.core.timestream_sql import timestream_sql

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
COLUMNS = [
    {"Name": "host", "Type": {"ScalarType": "VARCHAR"}},
    {"Name": "t", "Type": {"ScalarType": "BIGINT"}},
    {"Name": "v", "Type": {"ScalarType": "DOUBLE"}},
]


def query(**kw) -> SeriesQuery:
    base = {
        "measurement": "cpu",
        "field": "user",
        "start_at": NOW - timedelta(hours=2),
        "end_at": NOW,
        "step": timedelta(hours=1),
        "stat": Stat.AVG,
        "host": "web-1",
    }
    return SeriesQuery(**{**base, **kw})


def row(host: str, t: datetime, v: float) -> dict:
    return {
        "Data": [
            {"ScalarValue": host},
            {"ScalarValue": str(ms_of_instant(t))},
            {"ScalarValue": repr(v)},
        ]
    }


def page(rows: list[dict], token: str | None = None) -> dict:
    out = {"QueryId": "q-1", "Rows": rows, "ColumnInfo": COLUMNS}
    if token:
        out["NextToken"] = token
    return out


@pytest.fixture
def client():
    # An explicit endpoint turns endpoint discovery off (the Stubber would see it).
    return boto3.client(
        "timestream-query",
        region_name="us-east-1",
        endpoint_url="https://query.timestream.us-east-1.amazonaws.com",
    )


def test_every_page_is_read_and_the_requests_fit_the_service_model(client):
    q = query()
    sql = timestream_sql(q, "fleetpulse-dev", "metrics")
    reader = TimestreamMetricReader(client, "fleetpulse-dev", "metrics", page_rows=2)
    with Stubber(client) as stub:
        stub.add_response(
            "query",
            page([row("web-1", NOW - timedelta(hours=2), 1.5)], token="page-2"),
            {"QueryString": sql, "MaxRows": 2},
        )
        stub.add_response(
            "query",
            page([], token="page-3"),
            {"QueryString": sql, "MaxRows": 2, "NextToken": "page-2"},
        )
        stub.add_response(
            "query",
            page([row("web-1", NOW - timedelta(hours=1), 2.5)]),
            {"QueryString": sql, "MaxRows": 2, "NextToken": "page-3"},
        )
        series = reader.read(q)
        stub.assert_no_pending_responses()
    assert [s.as_json() for s in series] == [
        {
            "tags": {"host": "web-1"},
            "points": [
                [ms_of_instant(NOW - timedelta(hours=2)), 1.5],
                [ms_of_instant(NOW - timedelta(hours=1)), 2.5],
            ],
        }
    ]


def test_throttling_and_a_missing_table(client):
    reader = TimestreamMetricReader(client, "db", "metrics")
    with Stubber(client) as stub:
        stub.add_client_error("query", "ThrottlingException", "slow down", 400)
        with pytest.raises(BackendUnavailable):
            reader.read(query())
        stub.add_client_error(
            "query", "ValidationException", "The table metrics does not exist.", 400
        )
        assert reader.read(query()) == []


def test_names_and_values_are_quoted_as_timestream_reads_them():
    sql = timestream_sql(
        query(host="a' OR '1'='1", field='u"ser', measurement="c'pu", tags={'pa"th': "x'y"}),
        'fleet"db',
        "metrics",
    )
    assert "\"host\" = 'a'' OR ''1''=''1'" in sql
    assert 'avg("u""ser")' in sql
    assert "measure_name = 'c''pu'" in sql
    assert "\"pa\"\"th\" = 'x''y'" in sql
    assert 'FROM "fleet""db"."metrics"' in sql
    # Outside quoted tokens only our own SQL remains.
    unquoted = []
    in_single = in_double = False
    for ch in sql:
        if ch == "'" and not in_double:
            in_single = not in_single
        elif ch == '"' and not in_single:
            in_double = not in_double
        elif not (in_single or in_double):
            unquoted.append(ch)
    assert not re.search(r"\bOR\b", "".join(unquoted))


def test_a_fleet_query_groups_by_host_in_one_request(client):
    q = query(host=None, step=None)
    sql = timestream_sql(q, "db", "metrics")
    assert 'GROUP BY "host" ORDER BY' in sql
    rows = [row(f"web-{i}", q.start_at, float(i)) for i in range(3)]
    with Stubber(client) as stub:
        stub.add_response("query", page(rows), {"QueryString": sql, "MaxRows": 1000})
        series = TimestreamMetricReader(client, "db", "metrics").read(q)
    assert {s.tags["host"]: s.points for s in series} == {
        f"web-{i}": [(q.start_ms, float(i))] for i in range(3)
    }


def test_more_series_than_the_cap_is_refused(client):
    q = query(host=None)
    rows = [row(f"h{i}", NOW, 1.0) for i in range(MAX_SERIES + 1)]
    with Stubber(client) as stub:
        stub.add_response("query", page(rows))
        with pytest.raises(TooManySeries):
            TimestreamMetricReader(client, "db", "metrics").read(q)


def test_pages_queued_in_moto_are_followed_to_the_last(aws):
    client = boto3.client("timestream-query", region_name="us-east-1")
    q = query()
    sql = timestream_sql(q, "db", "metrics")
    first = page([row("web-1", NOW - timedelta(hours=2), 3.0)], token="next")
    last = page([row("web-1", NOW - timedelta(hours=1), 4.0)])
    requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/timestream/query-results",
        json={"results": {sql: [first, last]}},
        timeout=10,
    ).raise_for_status()
    series = TimestreamMetricReader(client, "db", "metrics").read(q)
    assert [v for _, v in series[0].points] == [3.0, 4.0]
