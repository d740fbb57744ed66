"""boto3 clients, made on first use and never at import (cold start matters)."""

from __future__ import annotations

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
        )

    def _make(self, service: str) -> Any:
        import boto3

        kwargs: dict[str, Any] = {"config": self.config(service)}
        if self.region:
            kwargs["region_name"] = self.region
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        return boto3.client(service, **kwargs)  # type: ignore[call-overload]

    def close(self) -> None:
        """Close every client's connections (the local stack, before its AWS stops)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
