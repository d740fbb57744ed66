"""What every DynamoDB table module shares: the codec, the error rule, conditional writes
and the paginated Scan.

The error rule, for every table: a failed condition is a lost race (False, never an
error); any other `ClientError`, or a `BotoCoreError` (no connection, a timeout), is
`BackendUnavailable`, which the collector answers with 503 and the CLI prints in one line.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger

from chalicelib.core.instants import ms_of_instant
from chalicelib.core.limits import MAX_SCAN_SEGMENTS
from chalicelib.core.ports import BackendUnavailable
from chalicelib.core.text import clip

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = Logger(child=True)

T = TypeVar("T")

CONDITION_FAILED = "ConditionalCheckFailedException"
TRANSACTION_CANCELED = "TransactionCanceledException"
# DynamoDB numbers span 1e-130 .. 9.99e125 in magnitude.
_DDB_SMALLEST = 1e-130
_DDB_LARGEST = 9.9e125
# How much of an unreadable item or a transport error goes into a log line or a reason.
_SHOWN = 500
# A Scan page refused for capacity (a provisioned table past its units and its burst) is
# asked for again after a pause, beyond botocore's own retries, for up to this long in
# all per segment: the minute's evaluation reads late rather than not at all.
SCAN_THROTTLE_PATIENCE_S = 20.0
_FIRST_PAUSE_S = 0.5
_LONGEST_PAUSE_S = 1.0
_THROTTLED = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)


def to_item(value: Mapping[str, Any]) -> dict[str, Any]:
    """Plain Python values as DynamoDB attribute values (`{"S": ...}`, `{"N": ...}`...)."""
    from boto3.dynamodb.types import TypeSerializer

    ser = TypeSerializer()
    return {k: ser.serialize(v) for k, v in value.items()}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """DynamoDB attribute values as plain Python values (numbers as Decimal)."""
    from boto3.dynamodb.types import TypeDeserializer

    de = TypeDeserializer()
    return {k: de.deserialize(v) for k, v in item.items()}


def ddb_number(value: float | int) -> Decimal | None:
    """A number DynamoDB can hold; None when it is too large to store."""
    if isinstance(value, int):
        return Decimal(value) if abs(value) <= _DDB_LARGEST else None
    if not math.isfinite(value) or abs(value) > _DDB_LARGEST:
        return None
    if abs(value) < _DDB_SMALLEST:
        return Decimal(0)
    return Decimal(repr(value))


def epoch_seconds(at: datetime) -> int:
    """Whole epoch seconds, the unit of DynamoDB's TTL attribute."""
    return ms_of_instant(at) // 1000


def instant_of_iso(text: str | None) -> datetime | None:
    """An instant stored as ISO-8601 text (absent or empty: None)."""
    return datetime.fromisoformat(text) if text else None


def error_code(exc: BaseException) -> str:
    """The service's error code of a ClientError; the class name of anything else."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", type(exc).__name__))


def lost_race(exc: BaseException) -> bool:
    """Whether a write failed only because its condition did not hold."""
    code = error_code(exc)
    if code == CONDITION_FAILED:
        return True
    if code == TRANSACTION_CANCELED:
        reasons = (getattr(exc, "response", None) or {}).get("CancellationReasons", [])
        return any(r.get("Code") == "ConditionalCheckFailed" for r in reasons)
    return False


def unavailable(table: str, exc: BaseException) -> BackendUnavailable:
    """The BackendUnavailable a failed call on `table` becomes, naming the service's code."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        return BackendUnavailable(f"{table} table: {error_code(exc)}")
    return BackendUnavailable(f"{table} table: {type(exc).__name__}: {clip(str(exc), _SHOWN)}")


@contextlib.contextmanager
def backend(table: str) -> Iterator[None]:
    """Any botocore failure inside the block is BackendUnavailable."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise unavailable(table, exc) from exc


def conditional_write(table: str, call: Callable[[], object]) -> bool:
    """Run one conditional write: True when it took effect, False when its condition
    did not hold (losing a race is a no-op), BackendUnavailable for any other failure."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        call()
    except ClientError as exc:
        if lost_race(exc):
            return False
        raise unavailable(table, exc) from exc
    except BotoCoreError as exc:
        raise unavailable(table, exc) from exc
    return True


# The fast read path's place among a client's `before-parse` handlers: one per client.
FAST_SCAN_ID = "fleetpulse-fast-scan"
BEFORE_PARSE_SCAN = "before-parse.dynamodb.Scan"
# A binary attribute (`B`, `BS`) arrives base64-encoded; botocore decodes it to bytes and
# `json.loads` would not. No table of ours stores one: a page that has one (or a map key
# spelled "B" or "BS", which is harmless) is left to botocore.
_BINARY = re.compile(rb'"BS?"\s*:')


def parse_scans_fast(client: DynamoDBClient) -> None:
    """Make `client`'s Scan responses parse in one `json.loads` (idempotent, once per client).

    botocore's parser walks the service model for every attribute of every item: about
    4.7 ms of CPU per host item, the whole cost of reading the fleet. The handler runs
    before it on every Scan response; a 200 body is decoded once by the stdlib's C
    parser, its `Items` handed over as they are (the low-level shape: `{"S": ...}`,
    `{"N": "1.5"}`, `{"M": {...}}`, exactly what botocore's parser returns, binary
    aside) and the parser gets only the rest (Count, ScannedCount, LastEvaluatedKey,
    ConsumedCapacity). Anything else, an error above all, is botocore's as before: its
    retries, throttling and `ClientError` are untouched."""
    client.meta.events.register(BEFORE_PARSE_SCAN, _items_parsed_once, unique_id=FAST_SCAN_ID)


# What the Scan running on this thread leaves out of its pages' text (`scan_items`' `skip`).
_skipping = threading.local()
# The item-bearing member of each response the fast path takes, and its JSON type.
_ITEMS: dict[str, tuple[str, type]] = {
    "Scan": ("Items", list),
    "GetItem": ("Item", dict),
    "UpdateItem": ("Attributes", dict),
}


def parse_fast(client: DynamoDBClient) -> None:
    """What `parse_scans_fast` does for Scan, for GetItem's `Item` and UpdateItem's
    `Attributes` (idempotent): a post's UpdateItem returns the host's old item, which
    botocore's parser would walk attribute by attribute. The Scan handler is registered
    where a scan runs (`scan_decoded`)."""
    for operation in ("GetItem", "UpdateItem"):
        client.meta.events.register(
            f"before-parse.dynamodb.{operation}",
            _items_parsed_once,
            unique_id=f"fleetpulse-fast-{operation}",
        )


def _items_parsed_once(
    response_dict: dict[str, Any],
    customized_response_dict: dict[str, Any],
    operation_model: Any = None,
    **_: Any,
) -> None:
    if response_dict.get("status_code") != 200:
        return
    member, kind = _ITEMS.get(getattr(operation_model, "name", "Scan"), _ITEMS["Scan"])
    body = response_dict.get("body")
    if not isinstance(body, bytes) or _BINARY.search(body):
        return
    skip: re.Pattern[bytes] | None = getattr(_skipping, "pattern", None)
    if skip is not None:
        body = skip.sub(b"", body)
    try:
        doc = json.loads(body)
    except ValueError:
        return  # botocore's parser says what is wrong with it
    if not isinstance(doc, dict) or not isinstance(doc.get(member), kind):
        return
    customized_response_dict[member] = doc.pop(member)
    response_dict["body"] = json.dumps(doc).encode()


def scan_items(
    client: DynamoDBClient,
    table: str,
    consistent: bool,
    segment: tuple[int, int] | None = None,
    stop: threading.Event | None = None,
    *,
    skip: re.Pattern[bytes] | None = None,
    patience_s: float = 0.0,
) -> Iterator[dict[str, Any]]:
    """Every item of `table` (or of one `(Segment, TotalSegments)` of it), page after
    page, as the low-level client returns them. `stop` ends it between pages.

    A page refused for capacity beyond botocore's retries is asked for again, from the
    same key, after a pause of half a second, then a second each (a refused request
    costs nothing, and the table earns units every second), up to `patience_s` in all
    (the hosts table's readers: SCAN_THROTTLE_PATIENCE_S).

    `skip`: text the fast path cuts out of each page before parsing it, for attributes
    the reader would pass over anyway (what it matches must be whole attributes, with
    their separating comma). Where the fast path does not run, they are parsed as before."""
    from botocore.exceptions import ClientError

    parse_scans_fast(client)
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": consistent}
    if segment is not None:
        kwargs["Segment"], kwargs["TotalSegments"] = segment
    waited, pause = 0.0, _FIRST_PAUSE_S
    while stop is None or not stop.is_set():
        _skipping.pattern = skip  # botocore calls the handler on this thread
        try:
            page = client.scan(**kwargs)
        except ClientError as exc:
            if error_code(exc) not in _THROTTLED or waited >= patience_s:
                raise
            pause = min(pause, patience_s - waited)
            logger.warning(
                "scan throttled; asking for the page again",
                extra={
                    "table": table,
                    "segment": segment,
                    "pause_s": pause,
                    "code": error_code(exc),
                },
            )
            if stop is not None:
                stop.wait(pause)
            else:
                time.sleep(pause)
            waited, pause = waited + pause, min(pause * 2, _LONGEST_PAUSE_S)
            continue
        finally:
            _skipping.pattern = None
        # Handed over one at a time and let go once decoded: a page in flight per
        # segment is the scan's memory beside what it keeps.
        items = page.get("Items", [])
        items.reverse()
        while items:
            yield items.pop()
        last = page.get("LastEvaluatedKey")
        if not last:
            return
        kwargs["ExclusiveStartKey"] = last


def scan_decoded(
    client: DynamoDBClient,
    table: str,
    what: str,
    decode: Callable[[dict[str, Any]], T | None],
    consistent: bool,
    *,
    segments: int = 1,
    skip: re.Pattern[bytes] | None = None,
    patience_s: float = 0.0,
) -> list[T]:
    """Every item of `table`, decoded (`skip`, `patience_s`: see `scan_items`). An item that cannot be read is logged and
    skipped (one bad item must not stop an evaluation); a table that cannot be
    read is BackendUnavailable.

    With `segments` above 1 the table is read as that many parallel Scan segments
    (DynamoDB's Segment/TotalSegments), each on its own thread, decoded as its pages
    arrive and merged in segment order: the requests overlap, and the parse is cheap
    once botocore no longer walks every attribute (`parse_scans_fast`). One failing segment fails the scan: the
    others stop at their next page."""
    if not 1 <= segments <= MAX_SCAN_SEGMENTS:
        raise ValueError(f"segments must be from 1 to {MAX_SCAN_SEGMENTS}, got {segments}")
    parse_scans_fast(client)  # before the threads: registering is not for many at once
    with _collector_paused():
        if segments == 1:
            with backend(what):
                items = scan_items(client, table, consistent, skip=skip, patience_s=patience_s)
                return _decoded(items, what, decode)
        return _segmented(
            client,
            table,
            what,
            decode,
            consistent,
            segments=segments,
            skip=skip,
            patience_s=patience_s,
        )


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off while a scan builds its objects: a scan makes millions
    of dicts and no cycle, and each collection walks every object alive (the snapshots
    read so far among them): measured, it doubled the cost of parsing a page. Memory is
    freed by reference counting as before; a cycle made meanwhile waits for the next
    collection."""
    import gc

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _segmented(
    client: DynamoDBClient,
    table: str,
    what: str,
    decode: Callable[[dict[str, Any]], T | None],
    consistent: bool,
    *,
    segments: int,
    skip: re.Pattern[bytes] | None,
    patience_s: float,
) -> list[T]:
    from concurrent.futures import ThreadPoolExecutor

    stop = threading.Event()

    def one(segment: int) -> list[T]:
        try:
            items = scan_items(
                client,
                table,
                consistent,
                (segment, segments),
                stop,
                skip=skip,
                patience_s=patience_s,
            )
            return _decoded(items, what, decode)
        except BaseException:
            stop.set()
            raise

    out: list[T] = []
    with backend(what), ThreadPoolExecutor(segments, thread_name_prefix=f"scan-{what}") as pool:
        for part in [pool.submit(one, s) for s in range(segments)]:
            out.extend(part.result())
    return out


def _decoded(
    items: Iterator[dict[str, Any]], what: str, decode: Callable[[dict[str, Any]], T | None]
) -> list[T]:
    out: list[T] = []
    for item in items:
        try:
            value = decode(item)
        except (KeyError, ValueError, TypeError, AssertionError):
            logger.error(f"unreadable {what} item skipped", extra={"item": clip(item, _SHOWN)})
            continue
        if value is not None:
            out.append(value)
    return out
