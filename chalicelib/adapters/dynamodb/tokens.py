"""The tokens table: one item per token, keyed by its public id; the secret is never stored."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, NotRequired, TypedDict, cast

from chalicelib.adapters.dynamodb.common import (
    backend,
    conditional_write,
    from_item,
    instant_of_iso,
    scan_decoded,
    to_item,
)
from chalicelib.core.tokens import Scope, TokenRecord

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

TABLE = "tokens"


class TokenItem(TypedDict):
    """A token's item (key `token_id`); instants as ISO-8601 text."""

    token_id: str
    token_hash: str  # SHA-256 of the whole token, hex
    scope: str
    name: str
    created_at: str
    revoked_at: NotRequired[str]
    last_used_at: NotRequired[str]


class DynamoDBTokenStore:
    """Tokens keyed by their public id; the token itself is never stored."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self.client = client
        self.table = table

    def get(self, token_id: str) -> TokenRecord | None:
        with backend(TABLE):
            response = self.client.get_item(
                TableName=self.table, Key={"token_id": {"S": token_id}}, ConsistentRead=True
            )
        item = response.get("Item")
        return token_from_item(cast("TokenItem", from_item(item))) if item else None

    def put(self, record: TokenRecord) -> bool:
        return conditional_write(
            TABLE,
            lambda: self.client.put_item(
                TableName=self.table,
                Item=to_item(token_to_item(record)),
                ConditionExpression="attribute_not_exists(token_id)",
            ),
        )

    def list(self) -> list[TokenRecord]:
        records = scan_decoded(
            self.client,
            self.table,
            TABLE,
            lambda item: token_from_item(cast("TokenItem", from_item(item))),
            True,
        )
        return sorted(records, key=lambda r: r.created_at)

    def revoke(self, token_id: str, at: datetime) -> bool:
        return conditional_write(
            TABLE,
            lambda: self.client.update_item(
                TableName=self.table,
                Key={"token_id": {"S": token_id}},
                UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :at)",
                ConditionExpression="attribute_exists(token_id)",
                ExpressionAttributeValues={":at": {"S": at.isoformat()}},
            ),
        )

    def touch(self, token_id: str, at: datetime) -> None:
        # A token deleted meanwhile has nothing to record: the lost race is a no-op.
        conditional_write(
            TABLE,
            lambda: self.client.update_item(
                TableName=self.table,
                Key={"token_id": {"S": token_id}},
                UpdateExpression="SET last_used_at = :at",
                ConditionExpression="attribute_exists(token_id)",
                ExpressionAttributeValues={":at": {"S": at.isoformat()}},
            ),
        )


def token_to_item(record: TokenRecord) -> TokenItem:
    item: TokenItem = {
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


def token_from_item(item: TokenItem) -> TokenRecord:
    created = instant_of_iso(item["created_at"])
    assert created is not None
    return TokenRecord(
        token_id=item["token_id"],
        token_hash=item["token_hash"],
        scope=Scope.parse(item["scope"]),
        name=item.get("name", ""),
        created_at=created,
        revoked_at=instant_of_iso(item.get("revoked_at")),
        last_used_at=instant_of_iso(item.get("last_used_at")),
    )
