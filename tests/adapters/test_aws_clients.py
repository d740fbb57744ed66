"""The clients every post uses skip botocore's parameter validation; the requests our code
builds for them stay valid against the service model all the same."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError, ParamValidationError
from botocore.validate import ParamValidator

from chalicelib.adapters.aws import AwsClients
from chalicelib.core.models import Event, EventStatus
from chalicelib.core.timestream import plan_writes
from tests.support.points import NOW, pt, report


def test_the_hot_clients_skip_botocores_check_and_the_others_keep_it(aws):
    clients = AwsClients(region="us-east-1")
    # A malformed request (a number where the model says string) reaches the service,
    # which refuses it (a ClientError, which the adapters turn into BackendUnavailable),
    # instead of failing in botocore.
    with pytest.raises(ClientError):
        clients.get("dynamodb").get_item(TableName="no-such-table", Key={"host": {"S": 1}})
    with pytest.raises(ClientError):
        clients.get("timestream-write").describe_table(DatabaseName="db", TableName=1)
    with pytest.raises(ParamValidationError):
        clients.get("sns").publish(TopicArn=123, Message="x")
    with pytest.raises(ParamValidationError):
        clients.get("sqs").get_queue_url(QueueName=1)


def test_every_planned_write_records_call_is_valid_against_the_service_model():
    model = boto3.session.Session().client("timestream-write", region_name="us-east-1").meta
    shape = model.service_model.operation_model("WriteRecords").input_shape
    later = NOW + 10_000
    points = [
        pt(0, time_ms=NOW, fields={"user": 1.5, "up": True, "state": "ok", "n": 3}),
        pt(1, time_ms=NOW, tags={"cpu": "1"}),
        pt(2, time_ms=later, tags={"role": "db"}),  # overrides a host tag: a call of its own
    ]
    r = report(*points)
    r.events.append(Event("backup", EventStatus.OK, NOW, 60_000, "", None, (), 0, "events[0]"))
    plan = plan_writes([r])
    assert len(plan.requests) == 2
    assert any("Time" in q.common for q in plan.requests)
    for request in plan.requests:
        report_ = ParamValidator().validate(request.params("db", "tbl"), shape)
        assert not report_.has_errors(), report_.generate_report()
