"""DynamoDB token and host stores against moto."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib.adapters.dynamodb import DynamoDBHostStore, ddb_number
from chalicelib.core.hosts import HostState, HostUpdate, SeriesLatest, ServiceLatest
from chalicelib.core.ports import BackendUnavailable
from chalicelib.core.tokens import ID_BYTES, SECRET_BYTES, Scope, TokenRecord, mint, token_hash

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def token_record(scope: str = "fleet", name: str = "") -> TokenRecord:
    token_id, token = mint(os.urandom(ID_BYTES + SECRET_BYTES))
    return TokenRecord(token_id, token_hash(token), Scope.parse(scope), name, NOW)


def test_tokens_round_trip_list_revoke_and_touch(aws_services):
    store = aws_services.token_store
    a, b = token_record("fleet", "user-data"), token_record("host:web-1")
    b = TokenRecord(b.token_id, b.token_hash, b.scope, b.name, NOW + timedelta(minutes=1))
    store.put(a)
    store.put(b)
    assert store.get(a.token_id) == a
    assert store.get("nosuchtoken12") is None
    assert [r.token_id for r in store.list()] == [a.token_id, b.token_id]

    assert store.revoke(a.token_id, NOW + timedelta(hours=1))
    assert store.revoke(a.token_id, NOW + timedelta(hours=2))  # revoking twice keeps the first time
    assert store.get(a.token_id).revoked_at == NOW + timedelta(hours=1)
    assert not store.revoke("nosuchtoken12", NOW)

    store.touch(b.token_id, NOW + timedelta(minutes=5))
    assert store.get(b.token_id).last_used_at == NOW + timedelta(minutes=5)
    assert store.get(b.token_id).scope == Scope.parse("host:web-1")
    with pytest.raises(Exception, match="ConditionalCheckFailed"):
        store.put(a)  # ids never collide silently


def update(**overrides) -> HostUpdate:
    base = {
        "host": "web-1",
        "seen_at": NOW,
        "state": HostState.UP,
        "interval_s": 60,
        "tags": {"role": "web"},
        "agent_name": "fleetpulse-agent",
        "agent_version": "0.1.0",
    }
    base.update(overrides)
    return HostUpdate(**base)


def test_first_and_later_posts_update_one_item(aws_services):
    store = aws_services.host_store
    first = update(
        series={
            "cpu|cpu=total": SeriesLatest("cpu", {"cpu": "total"}, 1000, {"user": 3.25, "up": True})
        },
        services={"backup": ServiceLatest("critical", 1000, 90_000, "disk full", 97.5)},
    )
    store.record(first)
    later = update(
        seen_at=NOW + timedelta(minutes=1),
        interval_s=None,
        tags={},
        agent_name=None,
        series={"mem": SeriesLatest("mem", {}, 2000, {"used_percent": 41})},
        services={"backup": ServiceLatest("ok", 2000, None, "", None)},
    )
    store.record(later)
    item = store.get("web-1")
    assert item["first_seen_at"] == int(NOW.timestamp() * 1000)
    assert item["last_seen_at"] == int((NOW + timedelta(minutes=1)).timestamp() * 1000)
    assert item["interval_s"] == 60  # a post that does not say keeps what the host said
    assert item["tags"] == {"role": "web"}
    assert item["agent_version"] == "0.1.0"
    assert item["state"] == "up"
    assert item["s#cpu|cpu=total"]["f"] == {"user": Decimal("3.25"), "up": True}
    assert item["s#mem"]["f"] == {"used_percent": 41}
    assert item["e#backup"] == {"status": "ok", "t": 2000, "d": ""}


def test_retire_then_come_back(aws_services):
    store = aws_services.host_store
    store.record(update(state=HostState.RETIRED))
    assert store.get("web-1")["state"] == "retired"
    assert "retired_at" in store.get("web-1")
    store.record(update(seen_at=NOW + timedelta(hours=1)))
    item = store.get("web-1")
    assert item["state"] == "up"
    assert "retired_at" not in item


def test_many_series_are_split_across_requests_but_all_land(aws_services):
    client = aws_services.clients.get("dynamodb")
    calls = []
    client.meta.events.register(
        "provide-client-params.dynamodb.UpdateItem", lambda params, **_: calls.append(params)
    )
    series = {
        f"net|iface=eth{i}": SeriesLatest("net", {"iface": f"eth{i}"}, 1000, {"rx": float(i)})
        for i in range(600)
    }
    aws_services.host_store.record(update(series=series))
    assert len(calls) > 1
    assert all(len(c["UpdateExpression"]) < 4096 for c in calls)
    item = aws_services.host_store.get("web-1")
    assert sum(1 for k in item if k.startswith("s#")) == 600


def test_an_item_dynamodb_refuses_still_records_the_heartbeat():
    client = boto3.client("dynamodb", region_name="us-east-1")
    store = DynamoDBHostStore(client, "hosts")
    stub = Stubber(client)
    stub.add_client_error(
        "update_item", "ValidationException", "Item size has exceeded the maximum allowed size"
    )
    stub.add_response("update_item", {})
    with stub:
        store.record(update(series={"m": SeriesLatest("m", {}, 1, {"v": 1.0})}))
    stub.assert_no_pending_responses()


def test_host_table_faults_are_backend_unavailable():
    client = boto3.client("dynamodb", region_name="us-east-1")
    stub = Stubber(client)
    stub.add_client_error("update_item", "ProvisionedThroughputExceededException", "slow down")
    with stub, pytest.raises(BackendUnavailable, match="ProvisionedThroughputExceeded"):
        DynamoDBHostStore(client, "hosts").record(update())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3.25, Decimal("3.25")),
        (1e-200, Decimal(0)),
        (1e200, None),
        (10**130, None),
        (7, Decimal(7)),
        (-0.5, Decimal("-0.5")),
    ],
)
def test_numbers_outside_dynamodbs_range(value, expected):
    assert ddb_number(value) == expected


def test_the_history_slot_rides_in_the_heartbeat_request(aws_services):
    from chalicelib.core.hosts import HistoryPoint

    client = aws_services.clients.get("dynamodb")
    calls = []
    client.meta.events.register(
        "provide-client-params.dynamodb.UpdateItem", lambda params, **_: calls.append(params)
    )
    store = aws_services.host_store
    t = int(NOW.timestamp() * 1000) + 17 * 60_000
    store.record(update(history=HistoryPoint(t, 12.5, 40.0)))
    store.record(update(history=HistoryPoint(t + 60_000, None, 41.0)))
    assert len(calls) == 2  # no extra request, no read
    item = store.get("web-1")
    assert item["h#17"] == {"t": t, "c": Decimal("12.5"), "m": Decimal("40.0")}
    assert item["h#18"] == {"t": t + 60_000, "m": Decimal("41.0")}
    [plain] = store.scan()
    assert plain.history == ()
    [snapshot] = store.scan(history=True)
    assert sorted(snapshot.history, key=lambda p: p.time_ms) == [
        HistoryPoint(t, 12.5, 40.0),
        HistoryPoint(t + 60_000, None, 41.0),
    ]
