"""DynamoDB adapters: tokens and hosts.

Items are read and written with the low-level client and boto3's type
(de)serializer, so the request shapes are exactly what DynamoDB receives.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from chalicelib.core.hosts import HostState, HostUpdate
from chalicelib.core.ports import BackendUnavailable
from chalicelib.core.tokens import Scope, TokenRecord

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = Logger(child=True)

# DynamoDB refuses an UpdateExpression over 4 KB (about 300 assignments here);
# moto, which the local stack runs on, fails on more than about 150. A host
# update is split every 100 assignments: a typical post needs one request.
MAX_ASSIGNMENTS = 100
# DynamoDB numbers span 1e-130 .. 9.99e125 in magnitude.
_DDB_SMALLEST = 1e-130
_DDB_LARGEST = 9.9e125

SERIES_PREFIX = "s#"
SERVICE_PREFIX = "e#"


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
        records = [_token_from_item(from_item(item)) for item in self._scan()]
        return sorted(records, key=lambda r: r.created_at)

    def _scan(self) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("scan")
        for page in paginator.paginate(TableName=self.table):
            yield from page.get("Items", [])

    def revoke(self, token_id: str, at: datetime) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.update_item(
                TableName=self.table,
                Key={"token_id": {"S": token_id}},
                UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :at)",
                ConditionExpression="attribute_exists(token_id)",
                ExpressionAttributeValues={":at": {"S": at.isoformat()}},
            )
        except ClientError as exc:
            if _client_error(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

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
    them without a read, on the host's first post as on every later one.
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
    if update.agent_name is not None:
        base.append(("set", "agent_name", update.agent_name))
        base.append(("set", "agent_version", update.agent_version or ""))
    if update.state is HostState.RETIRED:
        base.append(("set", "retired_at", seen))
    else:
        base.append(("remove", "retired_at", None))
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
