"""The JobStore contract, held by the in-memory fake and by DynamoDB (moto)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.adapters.aws import AwsClients
from chalicelib.adapters.dynamodb import DynamoDBJobStore
from chalicelib.core.jobs import (
    PING_BURST,
    Job,
    JobSpec,
    Ping,
    PingKind,
    apply_ping,
    new_job,
    parse_spec,
)
from chalicelib.core.ports import BackendUnavailable

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
ID_A = "0b7f5f0e-2a4c-4b8e-9d3f-6c1a2b3c4d5e"
ID_B = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"


@pytest.fixture
def store(stores):
    return stores.jobs


def spec(**raw: object) -> JobSpec:
    return parse_spec("backup", raw)


def test_define_creates_then_replaces_the_definition_keeping_id_and_state(store):
    first = store.define(spec(period="1h"), ID_A, NOW)
    assert (first.ping_id, first.version, first.bucket) == (ID_A, 1, PING_BURST)
    pinged = apply_ping(first, Ping(PingKind.SUCCESS, NOW, 0, None, "done")).job
    assert pinged is not None
    assert store.put(replace(pinged, version=2), 1)
    again = store.define(spec(schedule="0 3 * * *", tz="Europe/Paris"), ID_B, NOW)
    assert again.ping_id == ID_A  # the ping URL survives a new definition
    assert again.version == 3
    assert again.spec.schedule == "0 3 * * *"
    assert again.spec.period is None
    assert again.last_run == pinged.last_run
    assert again.log == "done"
    assert store.get("backup") == again
    assert store.by_ping_id(ID_A) == again
    assert store.by_ping_id(ID_B) is None


def test_put_is_a_compare_and_swap_on_version(store):
    job = store.define(spec(), ID_A, NOW)
    runs = {"": NOW, "1b4e28ba-2fa1-41d2-883f-0016d3cca427": NOW + timedelta(seconds=1)}
    newer = replace(job, version=2, runs=runs, bucket=3.5, bucket_at=NOW)
    assert store.put(newer, 1)
    assert not store.put(replace(newer, version=3), 1)  # lost race: a no-op
    assert store.get("backup") == newer
    assert not store.put(replace(newer, version=3, ping_id=ID_B), 2)  # another job's id


def test_create_refuses_an_existing_slug_and_delete_says_whether_it_existed(store):
    job = new_job(JobSpec("made"), ID_A, NOW)
    assert store.create(job)
    assert not store.create(new_job(JobSpec("made"), ID_B, NOW))
    assert store.get("made") == job
    assert [j.spec.slug for j in store.scan()] == ["made"]
    assert store.delete("made")
    assert not store.delete("made")
    assert store.get("made") is None


def test_a_failing_table_is_backend_unavailable():
    store = DynamoDBJobStore(
        AwsClients(region="us-east-1", endpoint_url="http://127.0.0.1:9").get("dynamodb"),
        "missing",
    )
    with pytest.raises(BackendUnavailable):
        store.get("backup")


def test_a_job_item_round_trips_every_fact(store):
    job = Job(
        spec=spec(
            period="5m",
            grace="1m",
            max_duration="1h",
            min_duration="10s",
            severity="warning",
            labels={"team": "ops"},
            summary="Backups",
            runbook="https://runbooks.example/backup",
        ),
        ping_id=ID_A,
        created_at=NOW,
    )
    assert store.create(job)
    ping = Ping(PingKind.FAIL, NOW + timedelta(minutes=1), 3, None, "x" * 20_000)
    started = apply_ping(job, Ping(PingKind.START, NOW, rid=None)).job
    assert started is not None
    finished = apply_ping(started, replace(ping)).job
    assert finished is not None
    assert store.put(replace(finished, version=1), 0)
    assert store.get("backup") == replace(finished, version=1)
