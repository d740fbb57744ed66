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
from chalicelib.core.models import HostReport, Point
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
    # The watched series: one map, replaced whole by each post.
    assert item["w"] == {"mem": {"m": "mem", "tags": {}, "t": 2000, "f": {"used_percent": 41}}}
    assert item["e#backup"] == {"status": "ok", "t": 2000, "d": ""}
    store.record(update(seen_at=NOW + timedelta(minutes=2)))
    assert "w" not in store.get("web-1")


def test_retire_then_come_back(aws_services):
    store = aws_services.host_store
    store.record(update(state=HostState.RETIRED))
    assert store.get("web-1")["state"] == "retired"
    assert "retired_at" in store.get("web-1")
    store.record(update(seen_at=NOW + timedelta(hours=1)))
    item = store.get("web-1")
    assert item["state"] == "up"
    assert "retired_at" not in item


def test_many_services_are_split_across_requests_but_all_land(aws_services):
    client = aws_services.clients.get("dynamodb")
    calls = []
    client.meta.events.register(
        "provide-client-params.dynamodb.UpdateItem", lambda params, **_: calls.append(params)
    )
    services = {f"svc-{i}": ServiceLatest("ok", 1000, None, "", None) for i in range(600)}
    aws_services.host_store.record(update(services=services))
    assert len(calls) > 1
    assert all(len(c["UpdateExpression"]) < 4096 for c in calls)
    item = aws_services.host_store.get("web-1")
    assert sum(1 for k in item if k.startswith("e#")) == 600


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
        "#a9": "w",  # no watched series: none kept
        "#a10": "series_n",
    }
    heartbeat_values = {
        ":v0": seen,
        ":v1": seen,
        ":v2": {"S": "up"},
        ":v3": {"N": "60"},
        ":v4": {"M": {"role": {"S": "web"}}},
        ":v5": {"S": "fleetpulse-agent"},
        ":v6": {"S": "0.1.0"},
        ":v10": {"N": "0"},
    }
    heartbeat_set = (
        "SET #a0 = :v0, #a1 = if_not_exists(#a1, :v1), #a2 = :v2, #a3 = :v3, #a4 = :v4,"
        " #a5 = :v5, #a6 = :v6, #a10 = :v10"
    )
    stub = Stubber(client)
    stub.add_client_error(
        "update_item",
        "ValidationException",
        "Item size has exceeded the maximum allowed size",
        expected_params={
            "TableName": "hosts",
            "Key": {"host": {"S": "web-1"}},
            "UpdateExpression": heartbeat_set + ", #a11 = :v11 REMOVE #a7, #a8, #a9",
            "ExpressionAttributeNames": heartbeat_names | {"#a11": "e#svc"},
            "ExpressionAttributeValues": heartbeat_values
            | {":v11": {"M": {"status": {"S": "ok"}, "t": {"N": "1"}, "d": {"S": ""}}}},
            "ReturnValues": "ALL_OLD",
        },
    )
    # The same heartbeat again, without the services.
    stub.add_response(
        "update_item",
        {},
        expected_params={
            "TableName": "hosts",
            "Key": {"host": {"S": "web-1"}},
            "UpdateExpression": heartbeat_set + " REMOVE #a7, #a8, #a9",
            "ExpressionAttributeNames": heartbeat_names,
            "ExpressionAttributeValues": heartbeat_values,
            "ReturnValues": "ALL_OLD",
        },
    )
    with stub:
        store.record(update(services={"svc": ServiceLatest("ok", 1, None, "", None)}))
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
    store.record(update(history=HistoryPoint(t + 5 * 60_000, None, 41.0)))
    assert len(calls) == 2  # no extra request, no read
    item = store.get("web-1")
    assert item["h#3"] == {"t": t, "c": Decimal("12.5"), "m": Decimal("40.0")}
    assert item["h#4"] == {"t": t + 5 * 60_000, "m": Decimal("41.0")}
    [plain] = store.scan()
    assert plain.history == ()
    [snapshot] = store.scan(history=True)
    assert sorted(snapshot.history, key=lambda p: p.time_ms) == [
        HistoryPoint(t, 12.5, 40.0),
        HistoryPoint(t + 5 * 60_000, None, 41.0),
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


def agent_post(at: datetime, *, disk: float = 40.0, extra: bool = False) -> HostReport:
    t = ms_of_instant(at)
    points = [
        Point("cpu", t, {"cpu": "total"}, {"idle": 80.0, "user": 15.0, "system": 5.0}),
        Point("memory", t, {}, {"used_percent": 41.0, "available": 123456}),
        Point("disk", t, {"mount": "/"}, {"used_percent": disk, "free": 1e9}),
    ]
    if extra:
        points.append(Point("disk", t, {"mount": "/data"}, {"used_percent": 10.0}))
    return HostReport(host="web-1", tags={"role": "web"}, interval_s=60, points=points)


def test_a_quiet_post_is_one_update_item_and_the_catalog_is_written_on_change(aws_services):
    from chalicelib.core.hosts import host_update
    from chalicelib.core.rules import parse_rules

    watch = parse_rules(
        {
            "rules": [
                {
                    "name": "d",
                    "measurement": "disk",
                    "field": "used_percent",
                    "op": ">",
                    "warning": 85,
                }
            ]
        }
    ).by_measurement
    client = aws_services.clients.get("dynamodb")
    calls: list[tuple[str, str]] = []
    for op in ("UpdateItem", "GetItem", "PutItem", "Query", "Scan", "DeleteItem"):
        client.meta.events.register(
            f"provide-client-params.dynamodb.{op}",
            lambda params, op=op, **_: calls.append((op, params["TableName"])),
        )
    store = aws_services.host_store
    hosts, series = aws_services.settings.hosts_table, aws_services.settings.series_table

    def post(at: datetime, **kwargs: object) -> list[tuple[str, str]]:
        calls.clear()
        store.record(host_update(agent_post(at, **kwargs), at, watch=watch))  # type: ignore[arg-type]
        return list(calls)

    # The first post writes the catalog (merged into what it holds), then its digest.
    written = [
        ("UpdateItem", hosts),
        ("GetItem", series),
        ("PutItem", series),
        ("UpdateItem", hosts),
    ]
    assert post(NOW) == written
    # Same series and fields, other values: one request.
    assert post(NOW + timedelta(minutes=1)) == [("UpdateItem", hosts)]
    assert post(NOW + timedelta(minutes=2), disk=95.0) == [("UpdateItem", hosts)]
    # A new series changes the catalog.
    assert post(NOW + timedelta(minutes=3), extra=True) == written
    assert post(NOW + timedelta(minutes=4), extra=True) == [("UpdateItem", hosts)]
    assert [e.tags for e in store.catalog("web-1") if e.measurement == "disk"] == [
        {"mount": "/"},
        {"mount": "/data"},
    ]
    item = store.get("web-1")
    assert item["series_n"] == 4
    assert len(item["cat"]) == 2


def test_a_failed_catalog_write_is_backend_unavailable_and_tried_again_by_the_next_post():
    client = boto3.client("dynamodb", region_name="us-east-1")
    store = DynamoDBHostStore(client, "hosts", "series")
    from chalicelib.core.hosts import host_update

    stub = Stubber(client)
    stub.add_response("update_item", {})  # the heartbeat: no digest yet
    stub.add_response("get_item", {})  # the catalog holds nothing yet
    stub.add_client_error("put_item", "ThrottlingException", "slow down")
    with stub, pytest.raises(BackendUnavailable, match="series catalog table: Throttling"):
        store.record(host_update(agent_post(NOW), NOW))
    stub.assert_no_pending_responses()
    # The digest was not recorded: the next post writes the catalog.
    stub = Stubber(client)
    stub.add_response("update_item", {})
    stub.add_response("get_item", {})
    stub.add_response("put_item", {})  # the catalog
    stub.add_response("update_item", {})  # then its digest
    with stub:
        store.record(host_update(agent_post(NOW), NOW))
    stub.assert_no_pending_responses()


def test_a_host_forgotten_while_its_catalog_is_written_is_a_lost_race():
    client = boto3.client("dynamodb", region_name="us-east-1")
    store = DynamoDBHostStore(client, "hosts", "series")
    from chalicelib.core.hosts import host_update

    stub = Stubber(client)
    stub.add_response("update_item", {})
    stub.add_response("get_item", {})
    stub.add_response("put_item", {})
    stub.add_client_error("update_item", "ConditionalCheckFailedException", "gone")
    with stub:
        store.record(host_update(agent_post(NOW), NOW))
    stub.assert_no_pending_responses()


def test_what_an_older_layout_left_in_the_item_goes_with_the_next_post(aws_services):
    from chalicelib.core.hosts import HISTORY_SLOTS

    client = aws_services.clients.get("dynamodb")
    table = aws_services.settings.hosts_table
    old = {
        "host": {"S": "web-1"},
        "last_seen_at": {"N": str(ms_of_instant(NOW))},
        "state": {"S": "up"},
        **{f"s#disk|mount=/d{i}": {"M": {"m": {"S": "disk"}}} for i in range(150)},
        **{f"h#{slot}": {"M": {"t": {"N": "1"}}} for slot in range(60)},
    }
    client.put_item(TableName=table, Item=old)
    store = aws_services.host_store
    store.record(update(seen_at=NOW + timedelta(minutes=1)))
    item = store.get("web-1")
    assert not [k for k in item if k.startswith("s#")]
    assert sorted(k for k in item if k.startswith("h#")) == sorted(
        f"h#{slot}" for slot in range(HISTORY_SLOTS)
    )
    calls: list[str] = []
    client.meta.events.register(
        "provide-client-params.dynamodb.UpdateItem", lambda params, **_: calls.append("u")
    )
    store.record(update(seen_at=NOW + timedelta(minutes=2)))
    assert calls == ["u"]  # once done, a post is one request again


def test_the_catalog_is_stored_compressed_and_an_older_layout_still_reads(aws_services):
    import json
    import zlib

    from chalicelib.core.hosts import host_update

    store = aws_services.host_store
    client = aws_services.clients.get("dynamodb")
    table = aws_services.settings.series_table
    store.record(host_update(agent_post(NOW, extra=True), NOW))
    item = client.get_item(TableName=table, Key={"host": {"S": "web-1"}})["Item"]
    assert set(item) == {"host", "z"}
    packed = item["z"]["B"]
    entries = json.loads(zlib.decompress(packed))
    unpacked = len(json.dumps(entries, separators=(",", ":")))
    assert len(packed) < unpacked * 0.6  # names, tags and fields repeat
    assert sorted(e["m"] for e in entries.values()) == ["cpu", "disk", "disk", "memory"]
    expected = store.catalog("web-1")
    assert [(e.measurement, e.tags) for e in expected] == [
        ("cpu", {"cpu": "total"}),
        ("disk", {"mount": "/"}),
        ("disk", {"mount": "/data"}),
        ("memory", {}),
    ]
    # An item of the older layout (the map `s`, uncompressed) reads the same.
    client.put_item(
        TableName=table,
        Item={
            "host": {"S": "web-1"},
            "s": {
                "M": {
                    key: {
                        "M": {
                            "m": {"S": e["m"]},
                            "tags": {"M": {k: {"S": v} for k, v in e["tags"].items()}},
                            "f": {"L": [{"S": f} for f in e["f"]]},
                            "t": {"N": str(e["t"])},
                        }
                    }
                    for key, e in entries.items()
                }
            },
        },
    )
    assert store.catalog("web-1") == expected
    # One that does not unpack is an empty catalog, not a failed page.
    client.put_item(TableName=table, Item={"host": {"S": "web-1"}, "z": {"B": b"not zlib"}})
    assert store.catalog("web-1") == []
