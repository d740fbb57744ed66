"""The checks table over moto: API checks, per-location state, and races between runs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib.adapters.dynamodb import DynamoDBCheckStore
from chalicelib.core.checks import LocationState
from chalicelib.core.ports import BackendUnavailable

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(aws_services) -> DynamoDBCheckStore:
    return DynamoDBCheckStore(
        aws_services.clients.get("dynamodb"), aws_services.settings.checks_table
    )


def state(at: int, fails: int) -> LocationState:
    return {"at": at, "up": fails == 0, "fails": fails, "reason": "r", "severity": None}


def test_checks_and_states_come_back_from_one_scan(store):
    store.put("api", {"name": "api", "type": "tcp", "host": "h", "port": 1}, T0)
    assert store.record("api", "us-east-1", state(1000, 1), None)
    assert store.record("api", "eu-west-1", state(1000, 0), None)
    specs, states = store.scan()
    assert specs == [{"name": "api", "type": "tcp", "host": "h", "port": 1}]
    assert states == {"api": {"us-east-1": state(1000, 1), "eu-west-1": state(1000, 0)}}
    assert store.get("api") == specs[0]
    assert store.get("nope") is None


def test_a_run_counts_from_the_state_it_read_or_loses_the_race(store):
    assert store.record("api", "us-east-1", state(1000, 1), None)
    assert not store.record("api", "us-east-1", state(2000, 1), None)  # one already exists
    assert store.record("api", "us-east-1", state(2000, 2), 1000)
    assert not store.record("api", "us-east-1", state(3000, 2), 1000)  # read before 2000
    assert not store.record("api", "us-east-1", state(1500, 2), 2000)  # older than stored
    assert store.state("api", "us-east-1") == state(2000, 2)


def test_delete_removes_the_check_and_its_state(store):
    store.put("api", {"name": "api"}, T0)
    store.record("api", "us-east-1", state(1000, 0), None)
    store.record("api-2", "us-east-1", state(1000, 0), None)
    assert store.delete("api")
    assert not store.delete("api")
    assert store.state("api", "us-east-1") is None
    assert store.state("api-2", "us-east-1") is not None


def test_a_missing_table_is_backend_trouble(aws_services):
    missing = DynamoDBCheckStore(aws_services.clients.get("dynamodb"), "no-such-table")
    with pytest.raises(BackendUnavailable):
        missing.scan()
    with pytest.raises(BackendUnavailable):
        missing.record("a", "b", state(1, 0), None)
