"""The collector app under chalice's test client, over moto or in-memory stores."""

from __future__ import annotations

import gzip
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from chalice.test import Client

from chalicelib.core.tokens import ID_BYTES, SECRET_BYTES, Scope, TokenRecord, mint, token_hash
from chalicelib.settings import Settings
from chalicelib.wiring import Services, use
from tests.support.memory import InMemoryHostStore, InMemoryMetricStore, InMemoryTokenStore


def add_token(services: Services, scope: str, name: str = "test") -> str:
    token_id, token = mint(secrets.token_bytes(ID_BYTES + SECRET_BYTES))
    services.token_store.put(
        TokenRecord(token_id, token_hash(token), Scope.parse(scope), name, datetime.now(UTC))
    )
    return token


class Api:
    """A chalice test client that speaks fleetpulse: JSON, gzip, tokens."""

    def __init__(self, client: Client, services: Services) -> None:
        self.client = client
        self.services = services

    def token(self, scope: str = "fleet") -> str:
        return add_token(self.services, scope)

    def post(
        self,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        raw: bytes | None = None,
        gzip_body: bool = False,
        headers: dict[str, str] | None = None,
    ) -> Any:
        data = raw if raw is not None else json.dumps(body).encode()
        h = {"Content-Type": "application/json"}
        if gzip_body:
            data = gzip.compress(data)
            h["Content-Encoding"] = "gzip"
        if token:
            h["Authorization"] = f"Bearer {token}"
        h.update(headers or {})
        return self.client.http.post(path, headers=h, body=data)

    def get(self, path: str, *, token: str | None = None) -> Any:
        h = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.http.get(path, headers=h)


def _client(services: Services) -> Iterator[Client]:
    use(services)
    import app

    with Client(app.app, stage_name="dev") as client:
        yield client


@pytest.fixture
def api(aws_services: Services) -> Iterator[Api]:
    """The app over moto (DynamoDB, Timestream)."""
    for client in _client(aws_services):
        yield Api(client, aws_services)


@pytest.fixture
def memory_services() -> Services:
    services = Services(Settings.from_env({"FLEETPULSE_TOKEN_CACHE_SECONDS": "0"}))
    # cached_property values can be set directly: the in-memory fakes stand in.
    services.__dict__["metric_store"] = InMemoryMetricStore()
    services.__dict__["token_store"] = InMemoryTokenStore()
    services.__dict__["host_store"] = InMemoryHostStore()
    return services


@pytest.fixture
def memory_api(memory_services: Services) -> Iterator[Api]:
    """The app over in-memory stores: fast, for properties over many inputs."""
    for client in _client(memory_services):
        yield Api(client, memory_services)


@pytest.fixture
def fleet_token(api: Api) -> str:
    return api.token("fleet")
