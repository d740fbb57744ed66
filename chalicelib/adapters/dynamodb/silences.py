"""The silences table: one item per silence, as the API shows it (without its state)."""

from __future__ import annotations

from typing import TYPE_CHECKING, NotRequired, TypedDict, cast

from chalicelib.adapters.dynamodb.common import (
    conditional_write,
    from_item,
    scan_decoded,
    to_item,
)
from chalicelib.core.silences import Silence, silence_from_json

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

TABLE = "silences"


class WeeklyItem(TypedDict):
    days: list[str]  # mon..sun
    start: str  # HH:MM
    end: str
    timezone: str


class SilenceItem(TypedDict):
    """A silence's item (key `silence_id`); instants as ISO-8601 text."""

    silence_id: str
    matchers: dict[str, str]  # label -> pattern
    starts_at: str
    ends_at: NotRequired[str]  # absent: a weekly schedule without an end
    schedule: NotRequired[WeeklyItem]
    comment: str
    created_by: str
    created_at: str


def silence_to_item(silence: Silence) -> SilenceItem:
    stored = silence.as_json(silence.created_at)
    del stored["state"]  # derived from the time it is read at
    return cast("SilenceItem", {k: v for k, v in stored.items() if v is not None})


class DynamoDBSilenceStore:
    """One item per silence (key `silence_id`), as the API shows it."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self.client = client
        self.table = table

    def list(self) -> list[Silence]:
        silences = scan_decoded(
            self.client,
            self.table,
            TABLE,
            lambda item: silence_from_json(from_item(item)),
            True,
        )
        return sorted(silences, key=lambda s: s.created_at)

    def put(self, silence: Silence) -> bool:
        return conditional_write(
            TABLE,
            lambda: self.client.put_item(
                TableName=self.table,
                Item=to_item(silence_to_item(silence)),
                ConditionExpression="attribute_not_exists(silence_id)",
            ),
        )

    def delete(self, silence_id: str) -> bool:
        return conditional_write(
            TABLE,
            lambda: self.client.delete_item(
                TableName=self.table,
                Key={"silence_id": {"S": silence_id}},
                ConditionExpression="attribute_exists(silence_id)",
            ),
        )
