"""One error rule for every DynamoDB store: a failed condition is a lost race (False, or the
port's own answer), any other ClientError or a transport failure is BackendUnavailable.

The faults are played by botocore's Stubber on the real DynamoDB service model, so every
request the stores make is also checked against what DynamoDB accepts; the transport
failure is a real refused connection on 127.0.0.1.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from chalicelib.adapters.dynamodb import (
    DynamoDBAlertStore,
    DynamoDBCheckStore,
    DynamoDBHostStore,
    DynamoDBInstanceDirectory,
    DynamoDBJobStore,
    DynamoDBLedger,
    DynamoDBSilenceStore,
    DynamoDBTokenStore,
)
from chalicelib.core.alert_message import AlertKind, Severity
from chalicelib.core.alerts import AlertRecord, AlertState
from chalicelib.core.checks import LocationState
from chalicelib.core.hosts import HostState, HostUpdate, SeriesLatest
from chalicelib.core.jobs import JobSpec, new_job
from chalicelib.core.notify import (
    Channel,
    Claim,
    ClaimStatus,
    Delivery,
    DeliveryRecord,
    DeliveryState,
)
from chalicelib.core.ports import BackendUnavailable
from chalicelib.core.silences import parse_silence
from chalicelib.core.tokens import Scope, TokenRecord
from tests.support.alerts import alert

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
# A throttled request (after botocore's own retries) and a fault on DynamoDB's side.
FAULTS = [
    ("ThrottlingException", 400),
    ("ProvisionedThroughputExceededException", 400),
    ("InternalServerError", 500),
]

TOKEN = TokenRecord("abcdefghijkl", "0" * 64, Scope.parse("fleet"), "t", NOW)
HOST = HostUpdate(
    "web-1",
    NOW,
    HostState.UP,
    60,
    {},
    None,
    None,
    series={"m": SeriesLatest("m", {}, 1, {"v": 1.0})},
)
ALERT = AlertRecord(
    alert_id="web-1/disk-full",
    kind=AlertKind.THRESHOLD,
    host="web-1",
    rule="disk-full",
    state=AlertState.FIRING,
    severity=Severity.CRITICAL,
    summary="s",
    active_at=NOW,
    version=1,
)
SILENCE = parse_silence({"matchers": {"host": "*"}, "duration": "1h"}, silence_id="s1", now=NOW)
DELIVERY = Delivery("m-1", Channel.SLACK, alert())
CLAIM = Claim(ClaimStatus.CLAIMED, "c-1")
SENT = DeliveryRecord(DeliveryState.SENT, 1, 200)
FAILED = DeliveryRecord(DeliveryState.FAILED_TEMPORARY, 1, 500, "HTTP 500")

JOB = new_job(JobSpec("backup"), "0b7f5f0e-2a4c-4b8e-9d3f-6c1a2b3c4d5e", NOW)
CHECK_STATE: LocationState = {"at": 2, "up": False, "fails": 1, "reason": "r", "severity": None}

Op = tuple[str, Callable[[Any], object]]  # the client method it calls, and the call

TOKEN_OPS: dict[str, Op] = {
    "get": ("get_item", lambda s: s.get("abcdefghijkl")),
    "put": ("put_item", lambda s: s.put(TOKEN)),
    "list": ("scan", lambda s: s.list()),
    "revoke": ("update_item", lambda s: s.revoke("abcdefghijkl", NOW)),
    "touch": ("update_item", lambda s: s.touch("abcdefghijkl", NOW)),
}
HOST_OPS: dict[str, Op] = {
    "record": ("update_item", lambda s: s.record(HOST)),
    "get": ("get_item", lambda s: s.get("web-1")),
    "snapshot": ("get_item", lambda s: s.snapshot("web-1")),
    "scan": ("scan", lambda s: s.scan()),
    "mark_down": ("update_item", lambda s: s.mark_down("web-1", NOW)),
    "pause": ("update_item", lambda s: s.pause("web-1")),
    "resume": ("update_item", lambda s: s.resume("web-1")),
    "forget": ("delete_item", lambda s: s.forget("web-1", NOW)),
    "prune": ("update_item", lambda s: s.prune("web-1", {"m": 1})),
}
CATALOG_OPS: dict[str, Op] = {
    "catalog": ("get_item", lambda s: s.catalog("web-1")),
}
ALERT_OPS: dict[str, Op] = {
    "scan": ("scan", lambda s: s.scan()),
    "create": ("put_item", lambda s: s.put(ALERT, None)),
    "update": ("put_item", lambda s: s.put(ALERT, 1)),
    "delete": ("delete_item", lambda s: s.delete(ALERT.alert_id, 1)),
}
SILENCE_OPS: dict[str, Op] = {
    "list": ("scan", lambda s: s.list()),
    "put": ("put_item", lambda s: s.put(SILENCE)),
    "delete": ("delete_item", lambda s: s.delete("s1")),
}
LEDGER_OPS: dict[str, Op] = {
    "claim": ("update_item", lambda s: s.claim(DELIVERY, NOW, timedelta(seconds=60))),
    "finish-sent": ("transact_write_items", lambda s: s.finish(DELIVERY, CLAIM, SENT, NOW)),
    "finish-failed": ("update_item", lambda s: s.finish(DELIVERY, CLAIM, FAILED, NOW)),
    "episode": ("get_item", lambda s: s.episode("k", Channel.SLACK)),
    "delivery": ("get_item", lambda s: s.delivery("m-1", Channel.SLACK)),
}
JOB_OPS: dict[str, Op] = {
    "get": ("get_item", lambda s: s.get("backup")),
    "by_ping_id": ("query", lambda s: s.by_ping_id(JOB.ping_id)),
    "scan": ("scan", lambda s: s.scan()),
    "define": ("update_item", lambda s: s.define(JOB.spec, JOB.ping_id, NOW)),
    "create": ("put_item", lambda s: s.create(JOB)),
    "put": ("put_item", lambda s: s.put(JOB, 0)),
    "delete": ("delete_item", lambda s: s.delete("backup")),
}
CHECK_OPS: dict[str, Op] = {
    "scan": ("scan", lambda s: s.scan()),
    "get": ("get_item", lambda s: s.get("db")),
    "put": ("put_item", lambda s: s.put("db", {"name": "db"}, NOW)),
    "delete": ("delete_item", lambda s: s.delete("db")),
    "state": ("get_item", lambda s: s.state("db", "us-east-1")),
    "record": ("put_item", lambda s: s.record("db", "us-east-1", CHECK_STATE, 1)),
}
INSTANCE_OPS: dict[str, Op] = {
    "hosts_of": ("query", lambda s: s.hosts_of("i-0123456789abcdef0")),
    "end": (
        "update_item",
        lambda s: s.end("web-1", "i-0123456789abcdef0", HostState.RETIRED, "terminated", NOW),
    ),
}
STORES = {
    "tokens": DynamoDBTokenStore,
    "hosts": DynamoDBHostStore,
    "alerts": DynamoDBAlertStore,
    "silences": DynamoDBSilenceStore,
    "ledger": DynamoDBLedger,
    "jobs": DynamoDBJobStore,
    "checks": DynamoDBCheckStore,
    "instances": DynamoDBInstanceDirectory,
    "series": lambda client, table: DynamoDBHostStore(client, "hosts", table),
}
# The instance directory is the hosts table's index; the catalog, the host store's.
SHOWN_AS = {"instances": "hosts", "series": "series catalog"}


def named(table: str) -> str:
    return SHOWN_AS.get(table, table)


def client() -> Any:
    return boto3.client("dynamodb", region_name="us-east-1")


def assert_fault_is_backend_unavailable(
    table: str, op: Op, code: str, status: int
) -> BackendUnavailable:
    method, call = op
    dynamodb = client()
    stub = Stubber(dynamodb)
    stub.add_client_error(method, code, "no", http_status_code=status)
    with stub, pytest.raises(BackendUnavailable, match=f"{named(table)} table: {code}") as raised:
        call(STORES[table](dynamodb, table))
    stub.assert_no_pending_responses()
    return raised.value


def each(ops: dict[str, Op]) -> Any:
    return pytest.mark.parametrize(
        ("op", "code", "status"),
        [(op, code, status) for op in ops.values() for code, status in FAULTS],
        ids=[f"{name}-{code}" for name in ops for code, _ in FAULTS],
    )


@each(TOKEN_OPS)
def test_token_store_faults_are_backend_unavailable(op, code, status):
    assert_fault_is_backend_unavailable("tokens", op, code, status)


@each(HOST_OPS)
def test_host_store_faults_are_backend_unavailable(op, code, status):
    assert_fault_is_backend_unavailable("hosts", op, code, status)


@each(ALERT_OPS)
def test_alert_store_faults_are_backend_unavailable(op, code, status):
    assert_fault_is_backend_unavailable("alerts", op, code, status)


@each(SILENCE_OPS)
def test_silence_store_faults_are_backend_unavailable(op, code, status):
    assert_fault_is_backend_unavailable("silences", op, code, status)


@each(LEDGER_OPS)
def test_ledger_faults_are_backend_unavailable(op, code, status):
    assert_fault_is_backend_unavailable("ledger", op, code, status)


@each(JOB_OPS)
def test_job_store_faults_are_backend_unavailable(op, code, status):
    assert_fault_is_backend_unavailable("jobs", op, code, status)


@each(CHECK_OPS)
def test_check_store_faults_are_backend_unavailable(op, code, status):
    assert_fault_is_backend_unavailable("checks", op, code, status)


@each(CATALOG_OPS)
def test_series_catalog_faults_are_backend_unavailable(op, code, status):
    assert_fault_is_backend_unavailable("series", op, code, status)


@each(INSTANCE_OPS)
def test_instance_directory_faults_are_backend_unavailable(op, code, status):
    assert_fault_is_backend_unavailable("instances", op, code, status)


CONDITIONAL = [
    ("tokens", TOKEN_OPS["put"], False),
    ("tokens", TOKEN_OPS["revoke"], False),
    ("tokens", TOKEN_OPS["touch"], None),  # best effort: a token deleted meanwhile
    ("hosts", HOST_OPS["mark_down"], False),
    ("hosts", HOST_OPS["pause"], False),
    ("hosts", HOST_OPS["forget"], False),
    ("hosts", HOST_OPS["prune"], False),
    ("alerts", ALERT_OPS["create"], False),
    ("alerts", ALERT_OPS["update"], False),
    ("alerts", ALERT_OPS["delete"], False),
    ("silences", SILENCE_OPS["put"], False),
    ("silences", SILENCE_OPS["delete"], False),
    ("ledger", LEDGER_OPS["finish-failed"], None),  # the lease was taken over: a no-op
    ("jobs", JOB_OPS["create"], False),
    ("jobs", JOB_OPS["put"], False),
    ("jobs", JOB_OPS["delete"], False),
    ("checks", CHECK_OPS["record"], False),
    ("instances", INSTANCE_OPS["end"], False),
]


@pytest.mark.parametrize(
    ("table", "op", "answer"),
    CONDITIONAL,
    ids=[f"{t}-{m}" for t, (m, _), _ in CONDITIONAL],
)
def test_a_failed_condition_is_a_lost_race_not_an_error(table, op, answer):
    method, call = op
    dynamodb = client()
    stub = Stubber(dynamodb)
    stub.add_client_error(
        method, "ConditionalCheckFailedException", "The conditional request failed"
    )
    with stub:
        assert call(STORES[table](dynamodb, table)) is answer
    stub.assert_no_pending_responses()


def test_resume_of_a_host_that_cannot_be_read_is_backend_unavailable():
    dynamodb = client()
    stub = Stubber(dynamodb)
    stub.add_client_error("update_item", "ConditionalCheckFailedException", "not paused")
    stub.add_client_error("get_item", "InternalServerError", "no", http_status_code=500)
    with stub, pytest.raises(BackendUnavailable, match="hosts table: InternalServerError"):
        DynamoDBHostStore(dynamodb, "hosts").resume("web-1")
    stub.assert_no_pending_responses()


def test_a_claim_lost_to_a_finished_delivery_says_so():
    dynamodb = client()
    stub = Stubber(dynamodb)
    stub.add_client_error(
        "update_item",
        "ConditionalCheckFailedException",
        "The conditional request failed",
        modeled_fields={"Item": {"state": {"S": DeliveryState.SENT.value}}},
    )
    with stub:
        claim = DynamoDBLedger(dynamodb, "ledger").claim(DELIVERY, NOW, timedelta(seconds=60))
    assert (claim.status, claim.previous) == (ClaimStatus.DONE, DeliveryState.SENT)


@pytest.mark.parametrize(
    ("reasons", "lost"),
    [
        ([{"Code": "ConditionalCheckFailed"}, {"Code": "None"}], True),
        ([{"Code": "None"}, {"Code": "ConditionalCheckFailed"}], True),
        ([{"Code": "None"}, {"Code": "ThrottlingError"}], False),
        ([{"Code": "TransactionConflict"}, {"Code": "None"}], False),
    ],
)
def test_a_cancelled_transaction_is_a_lost_race_only_for_a_failed_condition(reasons, lost):
    dynamodb = client()
    stub = Stubber(dynamodb)
    stub.add_client_error(
        "transact_write_items",
        "TransactionCanceledException",
        "Transaction cancelled",
        modeled_fields={"CancellationReasons": reasons},
    )
    ledger = DynamoDBLedger(dynamodb, "ledger")
    with stub:
        if lost:
            assert ledger.finish(DELIVERY, CLAIM, SENT, NOW) is None
        else:
            with pytest.raises(BackendUnavailable, match="TransactionCanceledException"):
                ledger.finish(DELIVERY, CLAIM, SENT, NOW)


@pytest.fixture
def refused_endpoint() -> str:
    """A 127.0.0.1 port with nothing listening: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("table", "op"),
    [
        ("tokens", TOKEN_OPS["get"]),
        ("hosts", HOST_OPS["record"]),
        ("hosts", HOST_OPS["mark_down"]),
        ("alerts", ALERT_OPS["scan"]),
        ("silences", SILENCE_OPS["put"]),
        ("ledger", LEDGER_OPS["claim"]),
        ("ledger", LEDGER_OPS["finish-sent"]),
        ("jobs", JOB_OPS["by_ping_id"]),
        ("checks", CHECK_OPS["record"]),
        ("instances", INSTANCE_OPS["hosts_of"]),
    ],
    ids=lambda v: v if isinstance(v, str) else v[0],
)
def test_an_unreachable_dynamodb_is_backend_unavailable(refused_endpoint, table, op):
    dynamodb = boto3.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url=refused_endpoint,
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=2),
    )
    _, call = op
    with pytest.raises(BackendUnavailable, match=f"{named(table)} table: EndpointConnectionError"):
        call(STORES[table](dynamodb, table))
