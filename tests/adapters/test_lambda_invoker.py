"""The runner fan-out: one asynchronous invocation per batch, within Lambda's payload limit
(moto does not enforce it; botocore's Stubber checks each request against the real model)."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib.adapters.lambda_invoker import MAX_EVENT_PAYLOAD, LambdaInvoker
from chalicelib.core.ports import BackendUnavailable


@pytest.fixture
def lambda_client():
    client = boto3.client("lambda", region_name="us-east-1")
    with Stubber(client) as stub:
        yield client, stub


def test_a_batch_is_one_event_invocation(lambda_client):
    client, stub = lambda_client
    payload = {"scheduled_at": 1, "runs": [{"location": "us-east-1"}]}
    stub.add_response(
        "invoke",
        {"StatusCode": 202},
        {
            "FunctionName": "fleetpulse-dev-run_checks",
            "InvocationType": "Event",
            "Payload": json.dumps(payload, separators=(",", ":")).encode(),
        },
    )
    LambdaInvoker(client, "fleetpulse-dev-run_checks").invoke(payload)
    stub.assert_no_pending_responses()


def test_a_payload_over_the_async_limit_is_split_before_sending(lambda_client):
    client, stub = lambda_client
    runs = [{"location": "us-east-1", "pad": "x" * 2000} for _ in range(200)]  # ~400 KB
    sizes = []
    client.meta.events.register(
        "provide-client-params.lambda.Invoke",
        lambda params, **_: sizes.append(len(params["Payload"])),
    )
    for _ in range(2):
        stub.add_response("invoke", {"StatusCode": 202})
    LambdaInvoker(client, "runner").invoke({"scheduled_at": 1, "runs": runs})
    stub.assert_no_pending_responses()
    assert len(sizes) == 2
    assert all(size <= MAX_EVENT_PAYLOAD for size in sizes)


def test_a_refused_invocation_is_backend_trouble(lambda_client):
    client, stub = lambda_client
    stub.add_client_error("invoke", "TooManyRequestsException", http_status_code=429)
    with pytest.raises(BackendUnavailable):
        LambdaInvoker(client, "runner").invoke({"runs": []})
