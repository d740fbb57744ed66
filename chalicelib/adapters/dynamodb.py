"""DynamoDB adapters: tokens, hosts, alerts and silences.

Items are read and written with the low-level client and boto3's type
(de)serializer, so the request shapes are exactly what DynamoDB receives.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger

from chalicelib.core.alert_message import AlertKind, AlertStatus, Severity
from chalicelib.core.alerts import AlertRecord, AlertState
from chalicelib.core.heartbeats import DEFAULT_INTERVAL, HostSnapshot
from chalicelib.core.hosts import (
    HistoryPoint,
    HostState,
    HostUpdate,
    SeriesLatest,
    ServiceLatest,
)
from chalicelib.core.instants import instant_of_ms, ms_of_instant
from chalicelib.core.lifecycle import INSTANCE_TAG, LIFECYCLE_ATTRIBUTE
from chalicelib.core.ports import BackendUnavailable
from chalicelib.core.silences import Silence, silence_from_json
from chalicelib.core.tokens import Scope, TokenRecord

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = Logger(child=True)

T = TypeVar("T")

# DynamoDB refuses an UpdateExpression over 4 KB (about 300 assignments here);
# moto, which the local stack runs on, fails on more than about 150. A host
# update is split every 100 assignments: a typical post needs one request.
MAX_ASSIGNMENTS = 100
# DynamoDB numbers span 1e-130 .. 9.99e125 in magnitude.
_DDB_SMALLEST = 1e-130
_DDB_LARGEST = 9.9e125

SERIES_PREFIX = "s#"
SERVICE_PREFIX = "e#"
# The CPU and memory ring: `h#<minute of the hour>` = {"t": ms, "c": busy %, "m": used %}.
HISTORY_PREFIX = "h#"


def to_item(value: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    ser = TypeSerializer()
    return {k: ser.serialize(v) for k, v in value.items()}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
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


def epoch_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def from_epoch_ms(ms: Decimal | int | None) -> datetime | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)


def _client_error(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", type(exc).__name__))


class DynamoDBTokenStore:
    """Tokens keyed by their public id; the token itself is never stored."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self.client = client
        self.table = table

    def get(self, token_id: str) -> TokenRecord | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_item(
                TableName=self.table, Key={"token_id": {"S": token_id}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise BackendUnavailable(f"tokens table: {_client_error(exc)}") from exc
        item = response.get("Item")
        return _token_from_item(from_item(item)) if item else None

    def put(self, record: TokenRecord) -> None:
        self.client.put_item(
            TableName=self.table,
            Item=to_item(_token_to_item(record)),
            ConditionExpression="attribute_not_exists(token_id)",
        )

    def list(self) -> list[TokenRecord]:
        records = _scan_decoded(
            self.client,
            self.table,
            "tokens",
            lambda item: _token_from_item(from_item(item)),
            True,
            raise_errors=True,
        )
        return sorted(records, key=lambda r: r.created_at)

    def revoke(self, token_id: str, at: datetime) -> bool:
        return _conditional_write(
            "tokens",
            lambda: self.client.update_item(
                TableName=self.table,
                Key={"token_id": {"S": token_id}},
                UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :at)",
                ConditionExpression="attribute_exists(token_id)",
                ExpressionAttributeValues={":at": {"S": at.isoformat()}},
            ),
        )

    def touch(self, token_id: str, at: datetime) -> None:
        self.client.update_item(
            TableName=self.table,
            Key={"token_id": {"S": token_id}},
            UpdateExpression="SET last_used_at = :at",
            ConditionExpression="attribute_exists(token_id)",
            ExpressionAttributeValues={":at": {"S": at.isoformat()}},
        )


def _token_to_item(record: TokenRecord) -> dict[str, Any]:
    item: dict[str, Any] = {
        "token_id": record.token_id,
        "token_hash": record.token_hash,
        "scope": str(record.scope),
        "name": record.name,
        "created_at": record.created_at.isoformat(),
    }
    if record.revoked_at:
        item["revoked_at"] = record.revoked_at.isoformat()
    if record.last_used_at:
        item["last_used_at"] = record.last_used_at.isoformat()
    return item


def _token_from_item(item: dict[str, Any]) -> TokenRecord:
    def when(key: str) -> datetime | None:
        value = item.get(key)
        return datetime.fromisoformat(value) if value else None

    created = when("created_at")
    assert created is not None
    return TokenRecord(
        token_id=item["token_id"],
        token_hash=item["token_hash"],
        scope=Scope.parse(item["scope"]),
        name=item.get("name", ""),
        created_at=created,
        revoked_at=when("revoked_at"),
        last_used_at=when("last_used_at"),
    )


class DynamoDBHostStore:
    """One item per host: heartbeat facts, plus one attribute per series and per service.

    Series and services are top-level attributes (`s#cpu|cpu=total`,
    `e#backup`) rather than nested maps, so one UpdateItem can set any of
    them without a read, on the host's first post as on every later one. The
    history ring is the same: at most 60 attributes `h#0`..`h#59`, one set
    per post in the request that carries the heartbeat.
    """

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self.client = client
        self.table = table

    def record(self, update: HostUpdate) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        base, extra = _host_assignments(update)
        try:
            for assignments in _chunks(base, extra):
                self._update(update.host, assignments)
        except ClientError as exc:
            if _client_error(exc) != "ValidationException":
                raise BackendUnavailable(f"hosts table: {_client_error(exc)}") from exc
            # Most likely the item outgrew DynamoDB's 400 KB: the heartbeat
            # still counts, the latest values wait for the evaluator to prune.
            logger.error(
                "host item update refused; recording the heartbeat only",
                extra={"host": update.host, "reason": str(exc)},
            )
            try:
                self._update(update.host, base)
            except (ClientError, BotoCoreError) as again:
                raise BackendUnavailable(f"hosts table: {_client_error(again)}") from again
        except BotoCoreError as exc:
            raise BackendUnavailable(f"hosts table: {exc}") from exc

    def _update(self, host: str, assignments: list[tuple[str, str, Any]]) -> None:
        sets: list[str] = []
        removes: list[str] = []
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        for i, (op, name, value) in enumerate(assignments):
            placeholder = f"#a{i}"
            names[placeholder] = name
            if op == "remove":
                removes.append(placeholder)
            elif op == "if_not_exists":
                values[f":v{i}"] = value
                sets.append(f"{placeholder} = if_not_exists({placeholder}, :v{i})")
            else:
                values[f":v{i}"] = value
                sets.append(f"{placeholder} = :v{i}")
        expression = "SET " + ", ".join(sets)
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        self.client.update_item(
            TableName=self.table,
            Key={"host": {"S": host}},
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=to_item(values),
        )

    def get(self, host: str) -> dict[str, Any] | None:
        """The host's item as plain Python values (numbers as Decimal)."""
        response = self.client.get_item(
            TableName=self.table, Key={"host": {"S": host}}, ConsistentRead=True
        )
        item = response.get("Item")
        return from_item(item) if item else None

    def scan(
        self, fields: Mapping[str, frozenset[str]] | None = None, *, history: bool = False
    ) -> list[HostSnapshot]:
        """One paginated Scan, eventually consistent: every write that acts on what it
        read is conditional, so a read a second old costs a no-op at worst."""
        return _scan_decoded(
            self.client,
            self.table,
            "hosts",
            lambda item: snapshot_from_item(item, fields, history=history),
            False,
        )

    def mark_down(self, host: str, last_seen_at: datetime) -> bool:
        return self._conditional(
            host,
            "SET #state = :down",
            "#state = :up AND last_seen_at = :seen",
            {":down": {"S": HostState.DOWN.value}, ":up": {"S": HostState.UP.value}}
            | {":seen": {"N": str(ms_of_instant(last_seen_at))}},
        )

    def pause(self, host: str) -> bool:
        return self._conditional(
            host,
            "SET #state = :paused",
            "attribute_exists(#host)",
            {":paused": {"S": HostState.PAUSED.value}},
        )

    def resume(self, host: str) -> bool:
        if self._conditional(
            host,
            "SET #state = :up",
            "#state = :paused",
            {":up": {"S": HostState.UP.value}, ":paused": {"S": HostState.PAUSED.value}},
        ):
            return True
        try:
            return self.get(host) is not None  # not paused: nothing to undo
        except Exception as exc:
            raise BackendUnavailable(f"hosts table: {_client_error(exc)}") from exc

    def forget(self, host: str, last_seen_at: datetime) -> bool:
        return _conditional_write(
            "hosts",
            lambda: self.client.delete_item(
                TableName=self.table,
                Key={"host": {"S": host}},
                ConditionExpression="#state = :retired AND last_seen_at = :seen",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":retired": {"S": HostState.RETIRED.value},
                    ":seen": {"N": str(ms_of_instant(last_seen_at))},
                },
            ),
        )

    def prune(self, host: str, series: dict[str, int], services: dict[str, int]) -> bool:
        stale = [(SERIES_PREFIX + k, t) for k, t in series.items()]
        stale += [(SERVICE_PREFIX + k, t) for k, t in services.items()]
        done = True
        for start in range(0, len(stale), MAX_ASSIGNMENTS // 2):
            chunk = stale[start : start + MAX_ASSIGNMENTS // 2]
            names = {"#t": "t"} | {f"#a{i}": name for i, (name, _) in enumerate(chunk)}
            values = {f":t{i}": {"N": str(t)} for i, (_, t) in enumerate(chunk)}
            # Each attribute goes only if it still holds what was read: a post
            # that refreshed it since keeps it.
            condition = " AND ".join(f"#a{i}.#t = :t{i}" for i in range(len(chunk)))
            done = (
                self._conditional(
                    host,
                    "REMOVE " + ", ".join(f"#a{i}" for i in range(len(chunk))),
                    condition,
                    values,
                    names,
                )
                and done
            )
        return done

    def _conditional(
        self,
        host: str,
        update: str,
        condition: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
    ) -> bool:
        all_names = {"#state": "state", "#host": "host", **(names or {})}
        used = {k: v for k, v in all_names.items() if k in update or k in condition}
        return _conditional_write(
            "hosts",
            lambda: self.client.update_item(
                TableName=self.table,
                Key={"host": {"S": host}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=used,
                ExpressionAttributeValues=values,
            ),
        )


def _scan(client: DynamoDBClient, table: str, consistent: bool) -> Iterator[dict[str, Any]]:
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": consistent}
    while True:
        page = client.scan(**kwargs)
        yield from page.get("Items", [])
        last = page.get("LastEvaluatedKey")
        if not last:
            return
        kwargs["ExclusiveStartKey"] = last


def _conditional_write(what: str, call: Callable[[], object]) -> bool:
    """Run one conditional write: True when it took effect, False when its condition
    did not hold (losing a race is a no-op), BackendUnavailable for any other failure."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        call()
    except ClientError as exc:
        if _client_error(exc) == "ConditionalCheckFailedException":
            return False
        raise BackendUnavailable(f"{what} table: {_client_error(exc)}") from exc
    except BotoCoreError as exc:
        raise BackendUnavailable(f"{what} table: {exc}") from exc
    return True


def _scan_decoded(
    client: DynamoDBClient,
    table: str,
    what: str,
    decode: Callable[[dict[str, Any]], T | None],
    consistent: bool,
    *,
    raise_errors: bool = False,
) -> list[T]:
    """Every item of `table`, decoded. An item that cannot be read is logged and
    skipped (one bad item must not stop an evaluation); a table that cannot be
    read is BackendUnavailable, or the client's own error with `raise_errors`."""
    from botocore.exceptions import BotoCoreError, ClientError

    out: list[T] = []
    try:
        for item in _scan(client, table, consistent):
            try:
                value = decode(item)
            except (KeyError, ValueError, TypeError, AssertionError):
                logger.error(f"unreadable {what} item skipped", extra={"item": str(item)[:500]})
                continue
            if value is not None:
                out.append(value)
    except (ClientError, BotoCoreError) as exc:
        if raise_errors:
            raise
        raise BackendUnavailable(f"{what} table: {_client_error(exc)}") from exc
    return out


def _number(raw: dict[str, Any]) -> float:
    return float(raw["N"])


def _ms_instant(raw: dict[str, Any] | None) -> datetime | None:
    if raw is None or "N" not in raw:
        return None
    return instant_of_ms(int(raw["N"]))


def snapshot_from_item(
    item: dict[str, Any],
    wanted: Mapping[str, frozenset[str]] | None = None,
    *,
    history: bool = False,
) -> HostSnapshot | None:
    """A host item, as Scan returns it (low-level), read straight into a HostSnapshot.

    This runs for every host every minute: it reads the known layout directly
    instead of deserializing every attribute with boto3's generic
    TypeDeserializer (about 20 times slower on items with many series), and
    when `wanted` (measurement -> fields some rule reads) is given, only those
    fields: a series no rule reads keeps its time and tags, for staleness.
    The history ring is decoded only when `history` is asked for. An attribute
    that does not have the layout is skipped, never fatal.
    """
    try:
        host = item["host"]["S"]
        last_seen = _ms_instant(item.get("last_seen_at"))
    except (KeyError, TypeError, ValueError):
        return None
    if last_seen is None:
        return None
    try:
        state = HostState(item.get("state", {}).get("S", "up"))
    except ValueError:
        state = HostState.UP
    interval = DEFAULT_INTERVAL
    if "interval_s" in item:
        interval = timedelta(seconds=_number(item["interval_s"]))
    tags: dict[str, str] = {}
    raw_tags = item.get("tags", {}).get("M")
    if raw_tags:
        tags = {k: v["S"] for k, v in raw_tags.items() if "S" in v}
    series: dict[str, SeriesLatest] = {}
    services: dict[str, ServiceLatest] = {}
    ring: list[HistoryPoint] = []
    for name, raw in item.items():
        prefix = name[:2]
        if prefix == SERIES_PREFIX:
            try:
                m = raw["M"]
                measurement = m["m"]["S"]
                fields: dict[str, float | int | bool] = {}
                stored = m["f"]["M"]
                names = stored if wanted is None else wanted.get(measurement, ())
                for field_name in names:
                    v = stored.get(field_name)
                    if v is None:
                        continue
                    number = v.get("N")
                    if number is not None:
                        fields[field_name] = float(number)
                    elif "BOOL" in v:
                        fields[field_name] = v["BOOL"]
                series_tags = m.get("tags", {}).get("M") or {}
                series[name[2:]] = SeriesLatest(
                    measurement,
                    {k: v["S"] for k, v in series_tags.items()},
                    int(m["t"]["N"]),
                    fields,
                )
            except (KeyError, TypeError, ValueError):
                continue
        elif prefix == SERVICE_PREFIX:
            try:
                m = raw["M"]
                ttl = m.get("ttl")
                value = m.get("v")
                services[name[2:]] = ServiceLatest(
                    m["status"]["S"],
                    int(m["t"]["N"]),
                    int(ttl["N"]) if ttl and "N" in ttl else None,
                    m.get("d", {}).get("S", ""),
                    float(value["N"]) if value and "N" in value else None,
                )
            except (KeyError, TypeError, ValueError):
                continue
        elif history and prefix == HISTORY_PREFIX:
            try:
                m = raw["M"]
                cpu, mem = m.get("c"), m.get("m")
                ring.append(
                    HistoryPoint(
                        int(m["t"]["N"]),
                        float(cpu["N"]) if cpu and "N" in cpu else None,
                        float(mem["N"]) if mem and "N" in mem else None,
                    )
                )
            except (KeyError, TypeError, ValueError):
                continue
    agent_name = item.get("agent_name", {}).get("S")
    agent_version = item.get("agent_version", {}).get("S")
    return HostSnapshot(
        host=host,
        state=state,
        last_seen_at=last_seen,
        first_seen_at=_ms_instant(item.get("first_seen_at")) or last_seen,
        interval=interval,
        tags=tags,
        agent_name=agent_name,
        agent_version=agent_version,
        retired_at=_ms_instant(item.get("retired_at")),
        lifecycle=item.get(LIFECYCLE_ATTRIBUTE, {}).get("S"),
        series=series,
        services=services,
        history=tuple(ring),
    )


def _host_assignments(
    update: HostUpdate,
) -> tuple[list[tuple[str, str, Any]], list[tuple[str, str, Any]]]:
    """The heartbeat assignments (always in the first request) and the latest values."""
    seen = epoch_ms(update.seen_at)
    base: list[tuple[str, str, Any]] = [
        ("set", "last_seen_at", seen),
        ("if_not_exists", "first_seen_at", seen),
        ("set", "state", update.state.value),
    ]
    if update.interval_s is not None:
        base.append(("set", "interval_s", update.interval_s))
    if update.tags:
        base.append(("set", "tags", update.tags))
        if update.tags.get(INSTANCE_TAG):  # the key of the instance_id index
            base.append(("set", INSTANCE_TAG, update.tags[INSTANCE_TAG]))
    base.append(("remove", LIFECYCLE_ATTRIBUTE, None))  # a host that posts is back
    if update.agent_name is not None:
        base.append(("set", "agent_name", update.agent_name))
        base.append(("set", "agent_version", update.agent_version or ""))
    if update.state is HostState.RETIRED:
        base.append(("set", "retired_at", seen))
    else:
        base.append(("remove", "retired_at", None))
    if update.history is not None:
        base.append(("set", HISTORY_PREFIX + str(update.history.slot), _history_value(update)))
    extra: list[tuple[str, str, Any]] = []
    for key, s in update.series.items():
        fields = {}
        for name, v in s.fields.items():
            number = v if isinstance(v, bool) else ddb_number(v)
            if number is not None:
                fields[name] = number
        if fields:
            extra.append(
                (
                    "set",
                    SERIES_PREFIX + key,
                    {"m": s.measurement, "tags": s.tags, "t": s.time_ms, "f": fields},
                )
            )
    for service, svc in update.services.items():
        value: dict[str, Any] = {"status": svc.status, "t": svc.time_ms, "d": svc.description}
        if svc.ttl_ms is not None:
            value["ttl"] = svc.ttl_ms
        if svc.value is not None and (number := ddb_number(svc.value)) is not None:
            value["v"] = number
        extra.append(("set", SERVICE_PREFIX + service, value))
    return base, extra


def _history_value(update: HostUpdate) -> dict[str, Any]:
    point = update.history
    assert point is not None
    value: dict[str, Any] = {"t": point.time_ms}
    if point.cpu is not None:
        value["c"] = ddb_number(point.cpu)
    if point.mem is not None:
        value["m"] = ddb_number(point.mem)
    return value


def _chunks(
    base: list[tuple[str, str, Any]], extra: list[tuple[str, str, Any]]
) -> Iterator[list[tuple[str, str, Any]]]:
    """The heartbeat first, with as many latest values as fit; the rest in further requests."""
    chunk = list(base)
    for assignment in extra:
        if len(chunk) == MAX_ASSIGNMENTS:
            yield chunk
            chunk = []
        chunk.append(assignment)
    yield chunk


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def alert_to_item(record: AlertRecord) -> dict[str, Any]:
    """An alert record as plain values for the alerts table (absent values are left out)."""
    item: dict[str, Any] = {
        "alert_id": record.alert_id,
        "kind": record.kind.value,
        "host": record.host,
        "rule": record.rule,
        "state": record.state.value,
        "severity": record.severity.value,
        "summary": record.summary,
        "description": record.description,
        "labels": dict(record.labels),
        "active_at": record.active_at.isoformat(),
        "version": record.version,
    }
    optional: dict[str, Any] = {
        "value": ddb_number(record.value) if record.value is not None else None,
        "threshold": ddb_number(record.threshold) if record.threshold is not None else None,
        "runbook": record.runbook,
        "fired_at": _iso(record.fired_at),
        "resolved_at": _iso(record.resolved_at),
        "clear_since": _iso(record.clear_since),
        "notified": record.notified.value if record.notified else None,
        "notified_at": _iso(record.notified_at),
        "notified_severity": record.notified_severity.value if record.notified_severity else None,
        "outbox": json.dumps(record.outbox) if record.outbox is not None else None,
        "outbox_at": _iso(record.outbox_at),
        "updated_at": _iso(record.updated_at),
    }
    item.update({k: v for k, v in optional.items() if v is not None})
    return item


def alert_from_item(item: dict[str, Any]) -> AlertRecord:
    def number(key: str) -> float | None:
        value = item.get(key)
        return float(value) if value is not None else None

    active_at = _instant(item["active_at"])
    assert active_at is not None
    return AlertRecord(
        alert_id=item["alert_id"],
        kind=AlertKind(item["kind"]),
        host=item["host"],
        rule=item["rule"],
        state=AlertState(item["state"]),
        severity=Severity(item["severity"]),
        summary=item.get("summary", ""),
        active_at=active_at,
        description=item.get("description", ""),
        value=number("value"),
        threshold=number("threshold"),
        labels=dict(item.get("labels", {})),
        runbook=item.get("runbook"),
        fired_at=_instant(item.get("fired_at")),
        resolved_at=_instant(item.get("resolved_at")),
        clear_since=_instant(item.get("clear_since")),
        notified=AlertStatus(item["notified"]) if item.get("notified") else None,
        notified_at=_instant(item.get("notified_at")),
        notified_severity=Severity(item["notified_severity"])
        if item.get("notified_severity")
        else None,
        outbox=json.loads(item["outbox"]) if item.get("outbox") else None,
        outbox_at=_instant(item.get("outbox_at")),
        version=int(item.get("version", 0)),
        updated_at=_instant(item.get("updated_at")),
    )


class DynamoDBAlertStore:
    """One item per alert (key `alert_id`): open alerts and those resolved within the
    retention. Reading "all open alerts" is one Scan of a table that holds little else;
    the history of transitions lives in the metric store as `alert` events."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self.client = client
        self.table = table

    def scan(self) -> list[AlertRecord]:
        return _scan_decoded(
            self.client, self.table, "alerts", lambda item: alert_from_item(from_item(item)), True
        )

    def put(self, record: AlertRecord, expected_version: int | None) -> bool:
        kwargs: dict[str, Any] = {"TableName": self.table, "Item": to_item(alert_to_item(record))}
        if expected_version is None:
            kwargs["ConditionExpression"] = "attribute_not_exists(alert_id)"
        else:
            kwargs["ConditionExpression"] = "#v = :v"
            kwargs["ExpressionAttributeNames"] = {"#v": "version"}
            kwargs["ExpressionAttributeValues"] = {":v": {"N": str(expected_version)}}
        return self._conditional(lambda: self.client.put_item(**kwargs))

    def delete(self, alert_id: str, expected_version: int) -> bool:
        return self._conditional(
            lambda: self.client.delete_item(
                TableName=self.table,
                Key={"alert_id": {"S": alert_id}},
                ConditionExpression="#v = :v",
                ExpressionAttributeNames={"#v": "version"},
                ExpressionAttributeValues={":v": {"N": str(expected_version)}},
            )
        )

    def _conditional(self, call: Callable[[], object]) -> bool:
        return _conditional_write("alerts", call)


class DynamoDBSilenceStore:
    """One item per silence (key `silence_id`), as the API shows it."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self.client = client
        self.table = table

    def list(self) -> list[Silence]:
        silences = _scan_decoded(
            self.client,
            self.table,
            "silences",
            lambda item: silence_from_json(from_item(item)),
            True,
        )
        return sorted(silences, key=lambda s: s.created_at)

    def put(self, silence: Silence) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        stored = silence.as_json(silence.created_at)
        del stored["state"]
        try:
            self.client.put_item(
                TableName=self.table,
                Item=to_item({k: v for k, v in stored.items() if v is not None}),
                ConditionExpression="attribute_not_exists(silence_id)",
            )
        except (ClientError, BotoCoreError) as exc:
            raise BackendUnavailable(f"silences table: {_client_error(exc)}") from exc

    def delete(self, silence_id: str) -> bool:
        return _conditional_write(
            "silences",
            lambda: self.client.delete_item(
                TableName=self.table,
                Key={"silence_id": {"S": silence_id}},
                ConditionExpression="attribute_exists(silence_id)",
            ),
        )
