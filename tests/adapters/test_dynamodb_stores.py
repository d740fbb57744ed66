"""The hosts table's item layout and request shapes (moto and the service model).

What every HostStore must do is in test_host_store.py; this is how DynamoDB does it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib.adapters.dynamodb import DynamoDBHostStore, ddb_number
from chalicelib.core.hosts import HostState, HostUpdate, SeriesLatest, ServiceLatest
from chalicelib.core.instants import ms_of_instant
from chalicelib.core.ports import BackendUnavailable

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


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
    assert item["first_seen_at"] == ms_of_instant(NOW)
    assert item["last_seen_at"] == ms_of_instant(NOW + timedelta(minutes=1))
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
    seen = {"N": str(ms_of_instant(NOW))}
    heartbeat_names = {
        "#a0": "last_seen_at",
        "#a1": "first_seen_at",
        "#a2": "state",
        "#a3": "interval_s",
        "#a4": "tags",
        "#a5": "agent_name",
        "#a6": "agent_version",
        "#a7": "retired_at",
        "#a8": "lifecycle",  # a host that posts is back from a lifecycle pause
    }
    heartbeat_values = {
        ":v0": seen,
        ":v1": seen,
        ":v2": {"S": "up"},
        ":v3": {"N": "60"},
        ":v4": {"M": {"role": {"S": "web"}}},
        ":v5": {"S": "fleetpulse-agent"},
        ":v6": {"S": "0.1.0"},
    }
    heartbeat_set = (
        "SET #a0 = :v0, #a1 = if_not_exists(#a1, :v1), #a2 = :v2, #a3 = :v3, #a4 = :v4,"
        " #a5 = :v5, #a6 = :v6"
    )
    stub = Stubber(client)
    stub.add_client_error(
        "update_item",
        "ValidationException",
        "Item size has exceeded the maximum allowed size",
        expected_params={
            "TableName": "hosts",
            "Key": {"host": {"S": "web-1"}},
            "UpdateExpression": heartbeat_set + ", #a9 = :v9 REMOVE #a7, #a8",
            "ExpressionAttributeNames": heartbeat_names | {"#a9": "s#m"},
            "ExpressionAttributeValues": heartbeat_values
            | {
                ":v9": {
                    "M": {
                        "m": {"S": "m"},
                        "tags": {"M": {}},
                        "t": {"N": "1"},
                        "f": {"M": {"v": {"N": "1.0"}}},
                    }
                }
            },
        },
    )
    # The same heartbeat again, without the latest values.
    stub.add_response(
        "update_item",
        {},
        expected_params={
            "TableName": "hosts",
            "Key": {"host": {"S": "web-1"}},
            "UpdateExpression": heartbeat_set + " REMOVE #a7, #a8",
            "ExpressionAttributeNames": heartbeat_names,
            "ExpressionAttributeValues": heartbeat_values,
        },
    )
    with stub:
        store.record(update(series={"m": SeriesLatest("m", {}, 1, {"v": 1.0})}))
    stub.assert_no_pending_responses()


def test_a_refused_heartbeat_is_backend_unavailable():
    client = boto3.client("dynamodb", region_name="us-east-1")
    stub = Stubber(client)
    stub.add_client_error("update_item", "ValidationException", "Item size has exceeded")
    stub.add_client_error("update_item", "ValidationException", "Item size has exceeded")
    with stub, pytest.raises(BackendUnavailable, match="hosts table: ValidationException"):
        DynamoDBHostStore(client, "hosts").record(update())
    stub.assert_no_pending_responses()


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
    t = ms_of_instant(NOW) + 17 * 60_000
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


def test_the_collectors_stores_load_only_their_tables_modules():
    """The package re-exports every store, but a post loads only the tokens and hosts
    modules: not the alerting and notification domain behind the other tables."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from chalicelib.adapters.dynamodb import DynamoDBHostStore, DynamoDBTokenStore\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('chalicelib'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(done.stdout.split())
    assert {"chalicelib.adapters.dynamodb.tokens", "chalicelib.adapters.dynamodb.hosts"} <= loaded
    assert not loaded & {
        "chalicelib.adapters.dynamodb.alerts",
        "chalicelib.adapters.dynamodb.silences",
        "chalicelib.adapters.dynamodb.ledger",
        "chalicelib.core.alerts",
        "chalicelib.core.notify",
    }
