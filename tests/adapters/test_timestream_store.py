"""TimestreamMetricStore against moto, and against a stubbed client for what moto cannot do."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib.adapters.timestream import TimestreamMetricStore
from chalicelib.core.models import Event, EventStatus, HostReport, Point
from chalicelib.core.ports import BackendUnavailable
from tests.support.aws import WriteRecordsCapture, dims, measures

NOW = 1_795_000_000_000


def points(n: int, start: int = 0) -> list[Point]:
    return [
        Point(
            "cpu",
            NOW + i,
            {"cpu": str(i % 4)},
            {"user": 1.5 + i, "idle": 90},
            i,
            f"points[{i}]",
            True,
        )
        for i in range(start, start + n)
    ]


def report(n: int = 3) -> HostReport:
    return HostReport(host="web-1", tags={"role": "web"}, points=points(n))


def test_writes_reach_timestream_in_batches_of_100(aws_services):
    client = aws_services.clients.get("timestream-write")
    capture = WriteRecordsCapture(client)
    store = TimestreamMetricStore(client, "fleetpulse-dev", "metrics")
    r = report(230)
    r.events.append(Event("backup", EventStatus.OK, NOW, 60_000, "", None, (), 0, "events[0]"))

    assert store.write([r]) == []

    assert [len(req["Records"]) for req in capture.requests] == [100, 100, 31]
    stored = capture.stored()
    assert len(stored) == 231
    first = stored[0]
    assert dims(first) == {"host": "web-1", "role": "web", "cpu": "0"}
    assert measures(first) == {"user": ("1.5", "DOUBLE"), "idle": ("90", "DOUBLE")}
    assert first["MeasureValueType"] == "MULTI"
    assert first["TimeUnit"] == "MILLISECONDS"
    assert {r["MeasureName"] for r in stored} == {"cpu", "event"}
    # moto kept every record it was sent (without the common attributes it drops)
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.timestreamwrite.models import timestreamwrite_backends

    table = (
        timestreamwrite_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
        .databases["fleetpulse-dev"]
        .tables["metrics"]
    )
    assert len(table.records) == 231


def stubbed() -> tuple[TimestreamMetricStore, Stubber, list[float]]:
    client = boto3.client(
        "timestream-write",
        region_name="us-east-1",
        endpoint_url="https://ingest.timestream.invalid",
    )
    slept: list[float] = []
    store = TimestreamMetricStore(client, "db", "tbl", sleep=slept.append, max_wait=60)
    return store, Stubber(client), slept


def test_rejected_records_are_reported_per_point_and_the_rest_counts_as_written():
    store, stub, _ = stubbed()
    stub.add_client_error(
        "write_records",
        service_error_code="RejectedRecordsException",
        service_message="One or more records have been rejected.",
        http_status_code=419,
        response_meta={},
        modeled_fields={
            "RejectedRecords": [
                {"RecordIndex": 1, "Reason": "The record timestamp is outside the time range"},
                {
                    "RecordIndex": 2,
                    "Reason": "A record with a different value exists",
                    "ExistingVersion": 1,
                },
            ]
        },
    )
    with stub:
        rejected = store.write([report(3)])
    assert [(r.index, r.path) for r in rejected] == [(1, "points[1]"), (2, "points[2]")]
    assert "outside the time range" in rejected[0].reason
    assert "a different value is already stored for this series and time" in rejected[1].reason
    stub.assert_no_pending_responses()


def test_throttling_is_retried_with_backoff_then_succeeds():
    store, stub, slept = stubbed()
    for _ in range(3):
        stub.add_client_error("write_records", "ThrottlingException", "Rate exceeded", 429)
    stub.add_response(
        "write_records", {"RecordsIngested": {"Total": 3, "MemoryStore": 3, "MagneticStore": 0}}
    )
    with stub:
        assert store.write([report(3)]) == []
    assert len(slept) == 3
    # exponential, jittered: each wait at most double the one before's ceiling
    assert 0.05 <= slept[0] <= 0.1
    assert 0.1 <= slept[1] <= 0.2
    assert 0.2 <= slept[2] <= 0.4


def test_throttling_that_never_ends_is_backend_unavailable():
    store, stub, slept = stubbed()
    for _ in range(5):
        stub.add_client_error("write_records", "ThrottlingException", "Rate exceeded", 429)
    with stub, pytest.raises(BackendUnavailable, match="still throttling after 5 tries"):
        store.write([report(3)])
    assert len(slept) == 4


@pytest.mark.parametrize(
    "code", ["AccessDeniedException", "ResourceNotFoundException", "InvalidEndpointException"]
)
def test_backend_faults_are_backend_unavailable(code):
    store, stub, _ = stubbed()
    stub.add_client_error("write_records", code, "nope", 400)
    with stub, pytest.raises(BackendUnavailable, match=code):
        store.write([report(1)])


def test_a_validation_error_refuses_the_points_instead_of_failing_the_request():
    store, stub, _ = stubbed()
    stub.add_client_error("write_records", "ValidationException", "Measure name exceeds limit", 400)
    with stub:
        rejected = store.write([report(2)])
    assert [r.index for r in rejected] == [0, 1]
    assert "Measure name exceeds limit" in rejected[0].reason


def test_what_the_planner_refuses_never_reaches_timestream():
    store, stub, _ = stubbed()
    r = HostReport(
        host="h",
        points=[Point("m", NOW, {}, {f"f{i}": 1.0 for i in range(300)}, 0, "points[0]", True)],
    )
    with stub:  # no response queued: any call would fail the test
        rejected = store.write([r])
    assert "300 fields" in rejected[0].reason
