"""The evaluation's read path: Scan pages parsed in one `json.loads` (`parse_scans_fast`)
and read in parallel segments, against botocore's own parse of the same pages.

Two real paths: DynamoDB on moto, and a local DynamoDB endpoint on 127.0.0.1 that serves
Scan pages of a few items each (so every scan paginates), answers Segment/TotalSegments
with disjoint ranges, and can answer throttling (400) or a fault (500) first. The items
it serves are host items written through the real ingest path into moto and read back.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from moto import mock_aws

from chalicelib.adapters.aws import AwsClients
from chalicelib.adapters.dynamodb import DynamoDBHostStore
from chalicelib.adapters.dynamodb.common import (
    BEFORE_PARSE_SCAN,
    FAST_SCAN_ID,
    parse_scans_fast,
    scan_decoded,
    scan_items,
)
from chalicelib.core.hosts import host_update
from chalicelib.core.instants import ms_of_instant
from chalicelib.core.models import Event, EventStatus, HostReport, Point
from chalicelib.core.ports import BackendUnavailable
from chalicelib.settings import Settings
from fleetpulse.resources import table_definitions

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
HOSTS = 25
PREFIX = "com.amazonaws.dynamodb.v20120810#"


def slow(client: Any) -> Any:
    """`client` parsing Scan pages with botocore alone: the fast path's place among its
    handlers is held by one that does nothing."""
    client.meta.events.register(BEFORE_PARSE_SCAN, lambda **_: None, unique_id=FAST_SCAN_ID)
    return client


def bodies_parsed(client: Any) -> list[bytes]:
    """The Scan bodies botocore's parser is handed, from here on."""
    parse_scans_fast(client)  # first: the recorder runs after it
    seen: list[bytes] = []
    client.meta.events.register(
        BEFORE_PARSE_SCAN, lambda response_dict, **_: seen.append(response_dict["body"])
    )
    return seen


def report(i: int, at: datetime) -> HostReport:
    t = ms_of_instant(at)
    return HostReport(
        host=f"host-{i:03d}",
        tags={"role": "web" if i % 2 else "db", "az": f"az{i % 3}"},
        interval_s=60,
        points=[
            Point("cpu", t, {"cpu": "total"}, {"usage_idle": 80.5 - i, "usage_user": 12.25}),
            Point("mem", t, {}, {"used_percent": 41.0 + i / 8, "available": 4e9}),
            Point("disk", t, {"mount": "/", "fs": "ext4"}, {"used_percent": 63.5, "ro": False}),
            Point("system", t, {}, {"load5": i, "n_cpus": 2}),
        ],
        events=[Event("backup", EventStatus.OK, t, 86_400_000, "done", 1.5)],
    )


def snapshots(store: DynamoDBHostStore, **kwargs: Any) -> list[Any]:
    return sorted(store.scan(**kwargs), key=lambda h: h.host)


@pytest.fixture(scope="module")
def moto_hosts() -> Iterator[tuple[Any, str]]:
    """A hosts table on moto holding HOSTS hosts, each posted twice through ingest."""
    with mock_aws():
        client = AwsClients("us-east-1").get("dynamodb")
        [request] = [
            d for d in table_definitions(Settings.from_env({})) if d["TableName"].endswith("-hosts")
        ]
        client.create_table(**request)
        store = DynamoDBHostStore(client, request["TableName"])
        for i in range(HOSTS):
            for minutes in (2, 1):
                at = NOW - timedelta(minutes=minutes, seconds=i)
                store.record(host_update(report(i, at), at))
        yield client, request["TableName"]


@pytest.fixture(scope="module")
def raw_items(moto_hosts: tuple[Any, str]) -> list[dict[str, Any]]:
    """The host items as botocore's own parser gives them, in key order."""
    _, table = moto_hosts
    reader = slow(other_client())
    return sorted(scan_items(reader, table, True), key=lambda item: item["host"]["S"])


def other_client() -> Any:
    """Another client on moto: event handlers are per client."""
    return AwsClients("us-east-1").get("dynamodb")


def test_moto_scan_pages_read_fast_match_botocore_parse(moto_hosts, raw_items):
    client, table = moto_hosts
    parsed = bodies_parsed(client)
    fast_items = sorted(scan_items(client, table, True), key=lambda item: item["host"]["S"])
    assert fast_items == raw_items
    assert len(raw_items) == HOSTS
    # The parser was handed the page without its items.
    assert parsed
    assert all(b'"Items"' not in body for body in parsed)
    assert all("Count" in json.loads(body) for body in parsed)


@pytest.mark.parametrize("segments", [1, 3])
def test_moto_snapshots_read_fast_and_in_segments_match_the_slow_path(moto_hosts, segments):
    client, table = moto_hosts
    expected = snapshots(DynamoDBHostStore(slow(other_client()), table), history=True)
    fast = DynamoDBHostStore(client, table, scan_segments=segments)
    assert snapshots(fast, history=True) == expected
    assert len(expected) == HOSTS
    assert all(h.series and h.services and h.history for h in expected)
    wanted = {"disk": frozenset({"used_percent"})}
    assert snapshots(fast, fields=wanted) == snapshots(
        DynamoDBHostStore(slow(other_client()), table), fields=wanted
    )


class ScanEndpoint:
    """DynamoDB's JSON protocol for Scan over `items`, `per_page` at a time; segment s of
    T is the s-th of T disjoint key ranges. `faults` are answered, one per request, before
    any page: (status, error code), optionally only for one segment."""

    def __init__(self, items: list[dict[str, Any]], per_page: int) -> None:
        self.items = items
        self.per_page = per_page
        self.faults: list[tuple[int, str]] = []
        self.faulty_segment: int | None = None
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests.append(body)
            segment = body.get("Segment")
            if self.faults and self.faulty_segment in (None, segment):
                status, code = self.faults.pop(0)
                return status, {"__type": PREFIX + code, "message": f"{code} (served)"}
        n, total = len(self.items), body.get("TotalSegments", 1)
        lo, hi = (segment or 0) * n // total, ((segment or 0) + 1) * n // total
        start = lo
        last = body.get("ExclusiveStartKey")
        if last:
            keys = [item["host"]["S"] for item in self.items]
            start = keys.index(last["host"]["S"]) + 1
        end = min(hi, start + self.per_page)
        page: dict[str, Any] = {
            "Count": end - start,
            "ScannedCount": end - start,
            "Items": self.items[start:end],
            "ConsumedCapacity": {"TableName": body["TableName"], "CapacityUnits": 1.5},
        }
        if end < hi:
            page["LastEvaluatedKey"] = {"host": self.items[end - 1]["host"]}
        return 200, page

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                assert self.headers["X-Amz-Target"] == "DynamoDB_20120810.Scan"
                status, reply = endpoint.answer(body)
                raw = json.dumps(reply, separators=(",", ":")).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        return Handler


@pytest.fixture
def endpoint(raw_items) -> Iterator[ScanEndpoint]:
    served = ScanEndpoint(raw_items, per_page=4)
    yield served
    served.close()


def http_client(endpoint: ScanEndpoint) -> Any:
    """A client as the Lambda makes it (standard retries, 3 attempts), on the endpoint."""
    return AwsClients("us-east-1", endpoint.url).get("dynamodb")


@pytest.mark.parametrize("segments", [1, 3])
def test_served_pages_paginate_and_read_fast_what_botocore_reads(endpoint, raw_items, segments):
    expected = snapshots(DynamoDBHostStore(slow(http_client(endpoint)), "t"), history=True)
    slow_requests = len(endpoint.requests)
    endpoint.requests.clear()
    client = http_client(endpoint)
    parsed = bodies_parsed(client)
    fast = DynamoDBHostStore(client, "t", scan_segments=segments)
    assert snapshots(fast, history=True) == expected
    assert [h.host for h in expected] == [item["host"]["S"] for item in raw_items]
    # Every page asked for, each once: 25 items 4 a page (per segment when segmented).
    pages = -(-HOSTS // 4) if segments == 1 else sum(-(-n // 4) for n in (8, 8, 9))
    assert len(endpoint.requests) == len(parsed) == pages
    assert slow_requests == -(-HOSTS // 4)
    assert {r.get("Segment") for r in endpoint.requests} == ({None} if segments == 1 else {0, 1, 2})
    assert all(r["ConsistentRead"] is False for r in endpoint.requests)
    assert all(b'"Items"' not in body for body in parsed)


def test_the_rest_of_a_page_is_still_botocore_s(endpoint):
    client = http_client(endpoint)
    parse_scans_fast(client)
    page = client.scan(TableName="t", ReturnConsumedCapacity="TOTAL")
    assert len(page["Items"]) == 4
    assert page["Count"] == page["ScannedCount"] == 4
    assert page["LastEvaluatedKey"] == {"host": {"S": "host-003"}}
    assert page["ConsumedCapacity"] == {"TableName": "t", "CapacityUnits": 1.5}
    assert page["ResponseMetadata"]["HTTPStatusCode"] == 200


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "ProvisionedThroughputExceededException"), (500, "InternalServerError")],
)
@pytest.mark.parametrize("fast", [True, False])
def test_a_throttled_or_failed_page_is_retried_as_before(endpoint, raw_items, status, code, fast):
    client = http_client(endpoint)
    if not fast:
        slow(client)
    endpoint.faults = [(status, code)]
    items = list(scan_items(client, "t", False))
    assert items == raw_items
    assert len(endpoint.requests) == -(-HOSTS // 4) + 1
    assert endpoint.requests[0] == endpoint.requests[1]  # the same page asked again


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "ProvisionedThroughputExceededException"), (500, "InternalServerError")],
)
@pytest.mark.parametrize("fast", [True, False])
def test_a_table_that_keeps_failing_is_backend_unavailable(endpoint, status, code, fast):
    client = http_client(endpoint)
    if not fast:
        slow(client)
    endpoint.faults = [(status, code)] * 10
    with pytest.raises(BackendUnavailable, match=f"hosts table: {code}$"):
        DynamoDBHostStore(client, "t").scan()
    # botocore's standard mode with the Lambda's `max_attempts` of 3: the first
    # attempt and three retries.
    assert len(endpoint.requests) == 4


def test_one_failing_segment_fails_the_scan(endpoint):
    endpoint.faults = [(500, "InternalServerError")] * 10
    endpoint.faulty_segment = 1
    with pytest.raises(BackendUnavailable, match=r"hosts table: InternalServerError$"):
        DynamoDBHostStore(http_client(endpoint), "t", scan_segments=3).scan()
    assert [r["Segment"] for r in endpoint.requests].count(1) == 4


def test_a_page_with_a_binary_attribute_is_left_to_botocore(raw_items):
    items = [dict(item) for item in raw_items]
    items[5]["blob"] = {"B": base64.b64encode(b"\x00\xffbinary").decode()}
    items[6]["blobs"] = {"BS": [base64.b64encode(b"a").decode()]}
    served = ScanEndpoint(items, per_page=4)
    try:
        client = http_client(served)
        parsed = bodies_parsed(client)
        read = list(scan_items(client, "t", False))
        slow_read = list(scan_items(slow(http_client(served)), "t", False))
    finally:
        served.close()
    assert read == slow_read
    assert read[5]["blob"] == {"B": b"\x00\xffbinary"}
    assert read[6]["blobs"] == {"BS": [b"a"]}
    # The page holding them went through botocore whole; the others did not.
    assert [b'"Items"' in body for body in parsed] == [
        False,
        True,
        False,
        False,
        False,
        False,
        False,
    ]


def test_an_unreadable_item_is_skipped_in_any_segment(raw_items):
    items = [dict(item) for item in raw_items]
    items[20] = {"host": {"S": items[20]["host"]["S"]}, "last_seen_at": {"N": "x"}}
    served = ScanEndpoint(items, per_page=4)
    try:
        store = DynamoDBHostStore(http_client(served), "t", scan_segments=3)
        read = [h.host for h in store.scan()]
    finally:
        served.close()
    assert read == [item["host"]["S"] for i, item in enumerate(raw_items) if i != 20]


def test_segments_outside_what_a_client_can_run_are_refused(endpoint):
    for segments in (0, 11):
        with pytest.raises(ValueError, match="segments must be from 1 to 10"):
            scan_decoded(http_client(endpoint), "t", "hosts", dict, False, segments=segments)


def test_the_fast_path_is_registered_once_per_client(endpoint, monkeypatch):
    import types

    from chalicelib.adapters.dynamodb import common

    decoded: list[int] = []

    def loads(body: bytes) -> Any:
        decoded.append(len(body))
        return json.loads(body)

    monkeypatch.setattr(common, "json", types.SimpleNamespace(loads=loads, dumps=json.dumps))
    client = http_client(endpoint)
    for _ in range(3):
        parse_scans_fast(client)
    items = list(scan_items(client, "t", False))  # registers again, too
    assert len(items) == HOSTS
    assert len(decoded) == -(-HOSTS // 4)  # each page decoded once


def test_the_history_ring_is_cut_from_the_page_text_only_when_not_asked_for(raw_items):
    from chalicelib.adapters.dynamodb.hosts import HISTORY_SLOT_TEXT

    assert all(any(k.startswith("h#") for k in item) for item in raw_items)
    # On the real items, compact as DynamoDB sends them: every slot goes, nothing else.
    for item in raw_items:
        text = json.dumps(item, separators=(",", ":")).encode()
        assert json.loads(HISTORY_SLOT_TEXT.sub(b"", text)) == {
            k: v for k, v in item.items() if not k.startswith("h#")
        }
    items = copy.deepcopy(raw_items)
    # Look-alikes that are not ring slots stay: a watched series and a tag named like
    # one, and a slot that comes first in its item (no comma before it: parsed, passed over).
    first = items[3]
    items[3] = {"h#7": first.pop("h#7", {"M": {"t": {"N": "1"}, "c": {"NULL": True}}})} | first
    series = items[4]["w"]["M"]
    series["h#1"] = {"M": {**next(iter(series.values()))["M"], "t": {"N": "1795348780000"}}}
    items[5]["tags"] = {"M": {"h#2": {"S": "x"}, **items[5]["tags"]["M"]}}
    items[6]["h#3"] = {"M": {"t": {"N": "1795348780000"}, "c": {"NULL": True}, "m": {"N": "2.5"}}}
    served = ScanEndpoint(items, per_page=4)
    try:
        for history in (False, True):
            expected = snapshots(DynamoDBHostStore(slow(http_client(served)), "t"), history=history)
            for segments in (1, 3):
                fast = DynamoDBHostStore(http_client(served), "t", scan_segments=segments)
                assert snapshots(fast, history=history) == expected
        with_ring = snapshots(DynamoDBHostStore(http_client(served), "t"), history=True)
    finally:
        served.close()
    assert all(h.history for h in with_ring)
    assert "h#1" in with_ring[4].series
    assert with_ring[5].tags["h#2"] == "x"


def test_a_scan_without_the_ring_parses_pages_without_it(endpoint, monkeypatch):
    import types

    from chalicelib.adapters.dynamodb import common

    parsed: list[bytes] = []

    def loads(body: bytes) -> Any:
        parsed.append(body)
        return json.loads(body)

    monkeypatch.setattr(common, "json", types.SimpleNamespace(loads=loads, dumps=json.dumps))
    store = DynamoDBHostStore(http_client(endpoint), "t", scan_segments=3)
    assert all(not h.history for h in store.scan())
    pages = [body for body in parsed if b'"Items"' in body]
    assert pages
    assert all(b'"h#' not in body for body in pages)
    parsed.clear()
    assert all(h.history for h in store.scan(history=True))
    assert all(b'"h#' in body for body in parsed if b'"Items"' in body)


def single_attempt_client(endpoint: ScanEndpoint) -> Any:
    """A client that makes each request once (botocore retries nothing, waits nothing):
    what is retried below is the adapter's own doing."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url=endpoint.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


@pytest.fixture
def pauses(monkeypatch) -> list[float]:
    """The adapter's pauses between refused pages, recorded instead of slept."""
    from types import SimpleNamespace

    from chalicelib.adapters.dynamodb import common

    seen: list[float] = []
    monkeypatch.setattr(common, "time", SimpleNamespace(sleep=seen.append))
    return seen


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "ThrottlingException"])
def test_a_page_refused_for_capacity_is_waited_out_from_the_same_key(
    endpoint, raw_items, pauses, code
):
    client = single_attempt_client(endpoint)
    store = DynamoDBHostStore(client, "t", scan_patience_s=20.0)
    expected = [h.host for h in snapshots(store, history=True)]
    assert expected == [item["host"]["S"] for item in raw_items]
    endpoint.requests.clear()
    # The third page is refused four times (a provisioned table past its burst).
    endpoint.faults = []
    original = endpoint.answer
    calls = {"n": 0}

    def third_page_refused(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        calls["n"] += 1
        if 3 <= calls["n"] <= 6:
            with endpoint.lock:
                endpoint.requests.append(body)
            return 400, {"__type": PREFIX + code, "message": "throughput exceeded (served)"}
        return original(body)

    endpoint.answer = third_page_refused  # type: ignore[method-assign]
    assert [h.host for h in snapshots(store, history=True)] == expected
    assert pauses == [0.5, 1.0, 1.0, 1.0]  # refused requests cost nothing: ask again soon
    keys = [r.get("ExclusiveStartKey") for r in endpoint.requests]
    assert keys[2:7] == [{"host": {"S": "host-007"}}] * 5  # the same page, asked again
    assert len(endpoint.requests) == -(-HOSTS // 4) + 4


def test_refusals_past_the_patience_are_backend_unavailable(endpoint, pauses):
    endpoint.faults = [(400, "ProvisionedThroughputExceededException")] * 100
    store = DynamoDBHostStore(single_attempt_client(endpoint), "t", scan_patience_s=4.0)
    with pytest.raises(
        BackendUnavailable, match=r"hosts table: ProvisionedThroughputExceededException$"
    ):
        store.scan()
    assert pauses == [0.5, 1.0, 1.0, 1.0, 0.5]  # 4 s in all, the last pause cut to fit
    assert len(endpoint.requests) == 6


def test_only_refusals_for_capacity_are_waited_out(endpoint, pauses):
    endpoint.faults = [(500, "InternalServerError")]
    store = DynamoDBHostStore(single_attempt_client(endpoint), "t", scan_patience_s=20.0)
    with pytest.raises(BackendUnavailable, match=r"hosts table: InternalServerError$"):
        store.scan()
    assert pauses == []
    assert len(endpoint.requests) == 1


def test_the_app_s_host_store_waits_out_a_provisioned_table_s_refusals():
    from chalicelib.adapters.dynamodb.common import SCAN_THROTTLE_PATIENCE_S
    from chalicelib.wiring import Services

    store = Services(Settings.from_env({}), AwsClients("us-east-1")).host_store
    assert isinstance(store, DynamoDBHostStore)
    assert store.scan_patience_s == SCAN_THROTTLE_PATIENCE_S > 0
