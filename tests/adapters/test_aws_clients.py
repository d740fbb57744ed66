"""The clients every post uses skip botocore's parameter validation; the requests our code
builds for them stay valid against the service model all the same."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.config import Config
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


def _sent_bodies(client: Any) -> list[bytes]:
    """The bodies `client` puts on the wire, from here on."""
    seen: list[bytes] = []
    client.meta.events.register(
        "before-send.*.*", lambda request, **_: seen.append(bytes(request.body or b""))
    )
    return seen


def _unchecked(service: str) -> Any:
    """A plain boto3 client without our handlers, validation off as the app's are."""
    return boto3.client(service, region_name="us-east-1", config=Config(parameter_validation=False))


def _old(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


def test_the_heavy_requests_go_out_byte_for_byte_as_botocore_would_send_them(aws):
    ours, theirs = AwsClients(region="us-east-1").get("dynamodb"), _unchecked("dynamodb")
    theirs.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "host", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "host", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    values = {
        ":w": {
            "M": {"cpu,cpu=total": {"M": {"f": {"M": {"u": {"N": "12.5"}}}, "ok": {"BOOL": True}}}}
        },
        ":s": {"S": 'é ünïcode " quote'},
        ":l": {"L": [{"N": "1"}, {"NULL": True}, {"SS": ["a", "b"]}]},
    }
    kwargs = {
        "TableName": "t",
        "Key": {"host": {"S": "web-1"}},
        "UpdateExpression": "SET #w = :w, #s = :s, #l = :l",
        "ExpressionAttributeNames": {"#w": "w", "#s": "s", "#l": "l"},
        "ExpressionAttributeValues": values,
    }
    item = {"host": {"S": "web-2"}, "s": {"M": {"k": {"L": [{"S": "f"}]}}}}
    # What botocore's serializer is handed: the rest, not the heavy member.
    serialized: list[list[str]] = []
    for operation in ("UpdateItem", "PutItem"):
        ours.meta.events.register(
            f"before-parameter-build.dynamodb.{operation}",
            lambda params, **_: serialized.append(sorted(params)),
        )
    bodies = []
    for client in (ours, theirs):
        sent = _sent_bodies(client)
        client.update_item(**kwargs)
        client.put_item(TableName="t", Item=item)
        bodies.append(sent)
    assert bodies[0] == bodies[1]
    assert len(bodies[0]) == 2
    assert serialized == [
        ["ExpressionAttributeNames", "Key", "TableName", "UpdateExpression"],
        ["TableName"],
    ]
    got = theirs.get_item(TableName="t", Key={"host": {"S": "web-1"}}, ConsistentRead=True)
    assert got["Item"]["w"] == values[":w"]


def test_a_request_json_cannot_write_as_botocore_does_is_left_to_botocore(aws):
    ours, theirs = AwsClients(region="us-east-1").get("dynamodb"), _unchecked("dynamodb")
    theirs.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "host", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "host", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    # Bytes go out base64-encoded: json.dumps cannot write them, botocore does.
    item = {"host": {"S": "h"}, "b": {"B": b"\x00\xffbin"}}
    bodies = []
    for client in (ours, theirs):
        sent = _sent_bodies(client)
        client.put_item(TableName="t", Item=item)
        bodies.append(sent)
    assert bodies[0] == bodies[1]
    assert b'"B": "AP9iaW4="' in bodies[0][0]
    got = ours.get_item(TableName="t", Key={"host": {"S": "h"}})
    assert got["Item"]["b"] == {"B": b"\x00\xffbin"}  # the binary guard: botocore parsed it


def test_the_old_item_and_a_read_item_parse_as_botocore_parses_them(aws):
    ours, theirs = AwsClients(region="us-east-1").get("dynamodb"), _unchecked("dynamodb")
    theirs.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "host", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "host", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    parsed: list[bytes] = []
    for operation in ("GetItem", "UpdateItem"):
        ours.meta.events.register_last(
            f"before-parse.dynamodb.{operation}",
            lambda response_dict, **_: parsed.append(response_dict["body"]),
        )
    w = {"M": {"k": {"M": {"t": {"N": "1763726400000"}, "tags": {"M": {"a": {"S": "b"}}}}}}}
    answers = []
    for client, host in ((ours, "a"), (theirs, "b")):
        update = {
            "TableName": "t",
            "Key": {"host": {"S": host}},
            "UpdateExpression": "SET #w = :w, #c = :c",
            "ExpressionAttributeNames": {"#w": "w", "#c": "cat"},
            "ExpressionAttributeValues": {":w": w, ":c": {"L": [{"S": "d1"}]}},
            "ReturnValues": "ALL_OLD",
        }
        first = _old(client.update_item(**update))
        second = client.update_item(**update)["Attributes"]
        read = client.get_item(TableName="t", Key={"host": {"S": host}})["Item"]
        missing = _old(client.get_item(TableName="t", Key={"host": {"S": "none"}}))
        answers.append((first, {**second, "host": None}, {**read, "host": None}, missing))
    assert answers[0] == answers[1]
    assert answers[0][1]["w"] == w
    # botocore's parser was handed the rest, not the item.
    assert all(b'"Item"' not in body and b'"Attributes"' not in body for body in parsed)
    # A failed condition is botocore's ClientError as before.
    with pytest.raises(ClientError) as failed:
        ours.update_item(
            **{
                **update,
                "Key": {"host": {"S": "a"}},
                "ConditionExpression": "attribute_not_exists(#w)",
            }
        )
    assert failed.value.response["Error"]["Code"] == "ConditionalCheckFailedException"


def test_write_records_go_out_as_botocore_would_send_them(aws):
    ours = AwsClients(region="us-east-1").get("timestream-write")
    theirs = _unchecked("timestream-write")
    theirs.create_database(DatabaseName="db")
    theirs.create_table(DatabaseName="db", TableName="tbl")
    later = NOW + 10_000
    r = report(pt(0, time_ms=NOW, fields={"user": 1.5, "up": True, "n": 3}), pt(1, time_ms=later))
    bodies = []
    for client in (ours, theirs):
        sent = _sent_bodies(client)
        for request in plan_writes([r]).requests:
            client.write_records(**request.params("db", "tbl"))
        bodies.append([b for b in sent if b'"Records"' in b])
    assert bodies[0] == bodies[1]
    assert bodies[0]
