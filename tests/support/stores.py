"""Every store port twice: the in-memory fake and the DynamoDB adapter on moto.

The contract suites in tests/adapters take the `backend` fixture, so each test runs
on both and a fake can never drift from the real store. `backend.make()` gives a
fresh, empty set of stores each call (Hypothesis properties call it per example).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from moto import mock_aws

from chalicelib.adapters.aws import AwsClients
from chalicelib.adapters.dynamodb import (
    DynamoDBAlertStore,
    DynamoDBHostStore,
    DynamoDBInstanceDirectory,
    DynamoDBJobStore,
    DynamoDBLedger,
    DynamoDBSilenceStore,
    DynamoDBTokenStore,
)
from chalicelib.settings import Settings
from fleetpulse.resources import table_definitions
from tests.support.memory import (
    InMemoryAlertStore,
    InMemoryHostStore,
    InMemoryJobStore,
    InMemoryLedger,
    InMemorySilenceStore,
    InMemoryTokenStore,
)

BACKENDS = ["memory", "dynamodb"]


@dataclass(frozen=True)
class Stores:
    tokens: Any  # TokenStore
    hosts: Any  # HostStore
    alerts: Any  # AlertStore
    silences: Any  # SilenceStore
    ledger: Any  # DeliveryLedger
    jobs: Any  # JobStore
    instances: Any  # InstanceDirectory: the hosts above, looked up by EC2 instance id


@dataclass(frozen=True)
class Backend:
    name: str
    make: Callable[[], Stores]
    client: Any = None  # the DynamoDB client, for the moto backend


def memory_stores() -> Stores:
    hosts = InMemoryHostStore()
    return Stores(
        InMemoryTokenStore(),
        hosts,
        InMemoryAlertStore(),
        InMemorySilenceStore(),
        InMemoryLedger(),
        InMemoryJobStore(),
        hosts,
    )


class DynamoDBTables:
    """Fresh copies of the template's tables (same keys), under new names each time."""

    def __init__(self, clients: AwsClients) -> None:
        self.client = clients.get("dynamodb")
        settings = Settings.from_env({})
        self.definitions = {
            "tokens": settings.tokens_table,
            "hosts": settings.hosts_table,
            "alerts": settings.alerts_table,
            "silences": settings.silences_table,
            "ledger": settings.ledger_table,
            "jobs": settings.jobs_table,
            "series": settings.series_table,
        }
        self.requests = {d["TableName"]: d for d in table_definitions(settings)}
        self.scan_segments = settings.scan_segments  # the hosts scan reads as deployed
        self.count = itertools.count()

    def make(self) -> Stores:
        n = next(self.count)
        names = {}
        for role, table in self.definitions.items():
            names[role] = f"{table}-{n}"
            self.client.create_table(**{**self.requests[table], "TableName": names[role]})
        return Stores(
            DynamoDBTokenStore(self.client, names["tokens"]),
            DynamoDBHostStore(self.client, names["hosts"], names["series"], self.scan_segments),
            DynamoDBAlertStore(self.client, names["alerts"]),
            DynamoDBSilenceStore(self.client, names["silences"]),
            DynamoDBLedger(self.client, names["ledger"]),
            DynamoDBJobStore(self.client, names["jobs"]),
            DynamoDBInstanceDirectory(self.client, names["hosts"]),
        )


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "memory":
        yield Backend("memory", memory_stores)
        return
    with mock_aws():
        tables = DynamoDBTables(AwsClients(region="us-east-1"))
        yield Backend("dynamodb", tables.make, tables.client)


@pytest.fixture
def stores(backend: Backend) -> Stores:
    return backend.make()
