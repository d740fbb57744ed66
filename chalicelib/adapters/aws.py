"""boto3 clients, made on first use and never at import (cold start matters)."""

from __future__ import annotations

import json
import threading
from typing import Any

# Our adapters retry throttling themselves where they must bound the total
# time (an API Gateway request has 29 s); elsewhere botocore's standard mode does.
_ADAPTER_RETRIED = frozenset({"timestream-write"})
# The clients every post uses. botocore's own check of each request against the
# service model costs as much CPU as the rest of a post's AWS calls together
# (bench/cost.py); our code builds these requests from validated input and checks
# every limit the services enforce (chalicelib/core/timestream.py, the DynamoDB
# adapters), and the service still refuses a malformed one.
_UNCHECKED = frozenset({"dynamodb", "timestream-write"})
# The large member of each request a post makes, whose wire form (the JSON protocol) is
# the value itself: the client sends `json.dumps` of the request, made once, instead of
# botocore's walk of the service model over every attribute and record (`serialize_once`).
_HEAVY = {
    "dynamodb": {"UpdateItem": "ExpressionAttributeValues", "PutItem": "Item"},
    "timestream-write": {"WriteRecords": "Records"},
}
_BODY = "fleetpulse_body"


class AwsClients:
    """Creates and caches one boto3 client per service.

    `endpoint_url` points every client at one endpoint (the local stack's
    embedded AWS). It is passed explicitly because Timestream clients do
    endpoint discovery, which the AWS_ENDPOINT_URL variables do not stop.
    """

    def __init__(self, region: str | None = None, endpoint_url: str | None = None) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, service: str) -> Any:
        client = self._clients.get(service)
        if client is None:
            with self._lock:
                client = self._clients.get(service)
                if client is None:
                    client = self._clients[service] = self._make(service)
        return client

    def config(self, service: str) -> Any:
        """The botocore Config of `service`'s client."""
        from botocore.config import Config

        attempts = 1 if service in _ADAPTER_RETRIED else 3
        return Config(
            retries={"mode": "standard", "max_attempts": attempts},
            connect_timeout=3,
            read_timeout=10,
            parameter_validation=service not in _UNCHECKED,
            # A short fixed User-Agent ("fleetpulse Botocore/<version>"): botocore otherwise
            # rebuilds and sanitizes its long one, character by character, on every request.
            user_agent="fleetpulse",
        )

    def _make(self, service: str) -> Any:
        import boto3

        config = self.config(service)
        kwargs: dict[str, Any] = {"config": config}
        if self.region:
            kwargs["region_name"] = self.region
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        client = boto3.client(service, **kwargs)  # type: ignore[call-overload]
        if not config.parameter_validation:  # the check needs the member
            serialize_once(client, service)
        if service == "dynamodb":
            from chalicelib.adapters.dynamodb.common import parse_fast

            parse_fast(client)
        return client

    def close(self) -> None:
        """Close every client's connections (the local stack, before its AWS stops)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()


def serialize_once(client: Any, service: str) -> None:
    """Send the heavy requests of `client` (`_HEAVY`) as `json.dumps` of their parameters.

    For these operations the JSON protocol's body is the parameters themselves (strings,
    numbers, maps and lists, nothing botocore converts): the handler that may provide the
    parameters makes the body once and hands botocore the parameters without the heavy
    member, so it serializes only the rest; the handler before the call puts that body
    in the request.
    A request with anything `json.dumps` does not write as botocore would (bytes, a
    Decimal, a datetime) fails to dump and is left whole to botocore. Only for a client
    that does not validate its parameters (the check would miss the member)."""
    events = client.meta.events
    for operation in _HEAVY.get(service, {}):
        events.register(
            f"provide-client-params.{service}.{operation}",
            _body_made_once,
            unique_id=f"fleetpulse-body-{service}-{operation}",
        )
        events.register(
            f"before-call.{service}.{operation}",
            _body_sent,
            unique_id=f"fleetpulse-send-{service}-{operation}",
        )


def _body_made_once(
    params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
) -> dict[str, Any] | None:
    """The parameters botocore is to serialize: a copy without the heavy member (the
    caller's, which other handlers may hold, are left as they are)."""
    member = _HEAVY.get(model.service_model.service_name, {}).get(model.name)
    if member is None or member not in params:
        return None
    try:
        body = json.dumps(params).encode()
    except (TypeError, ValueError):
        return None
    context[_BODY] = body
    return {k: v for k, v in params.items() if k != member}


def _body_sent(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    body = context.pop(_BODY, None)
    if body is not None:
        params["body"] = body
