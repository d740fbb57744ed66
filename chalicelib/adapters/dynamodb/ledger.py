"""DynamoDBLedger: one item per (SNS message, channel) and one per (alert episode, channel).

Table key: `id` (hash) and `channel` (range), both strings.

- `msg#<SNS MessageId>` items are deliveries: state, claims, attempts, last
  response code and error, timestamps, the alert's dedup_key. A conditional
  update claims one, so a redelivered or concurrent copy of a message posts once.
- `alert#<dedup_key>` items count what the channel was sent for the episode
  (firing and resolved), which tells reminders from first notifications and
  a late trigger from a current one.

Every item carries `expires_at` (epoch seconds) for DynamoDB TTL cleanup.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, cast

from aws_lambda_powertools import Logger

from chalicelib.adapters.dynamodb.common import (
    backend,
    epoch_seconds,
    from_item,
    lost_race,
    to_item,
    unavailable,
)
from chalicelib.core.alert_message import AlertMessage, AlertStatus
from chalicelib.core.notify import (
    Channel,
    Claim,
    ClaimStatus,
    Delivery,
    DeliveryRecord,
    DeliveryState,
    Episode,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = Logger(child=True)

DELIVERY_PREFIX = "msg#"
EPISODE_PREFIX = "alert#"
RETENTION = timedelta(days=30)
TTL_ATTRIBUTE = "expires_at"
TABLE = "ledger"


class DeliveryItem(TypedDict):
    """`msg#<SNS MessageId>`: one delivery of a message to a channel."""

    id: str
    channel: str  # Channel
    state: str  # DeliveryState
    claim_id: str
    lease_until: int  # epoch seconds; 0 once finished
    claimed_at: str
    first_claimed_at: str
    claims: int
    dedup_key: str
    alert_id: str
    alert_status: str  # AlertStatus
    severity: str
    expires_at: int  # epoch seconds, DynamoDB TTL
    attempts: NotRequired[int]
    finished_at: NotRequired[str]
    response_code: NotRequired[int]
    error: NotRequired[str]


class EpisodeItem(TypedDict):
    """`alert#<dedup_key>`: what a channel was sent for one alert episode."""

    id: str
    channel: str  # Channel
    firing_sent: NotRequired[int]
    resolved_sent: NotRequired[int]
    last_message_id: str
    last_sent_at: str
    first_sent_at: str
    alert_id: str
    expires_at: int  # epoch seconds, DynamoDB TTL


class DynamoDBLedger:
    def __init__(
        self, client: DynamoDBClient, table: str, retention: timedelta = RETENTION
    ) -> None:
        self.client = client
        self.table = table
        self.retention = retention

    def claim(self, delivery: Delivery, now: datetime, lease: timedelta) -> Claim:
        message_id, channel, message = delivery.message_id, delivery.channel, delivery.message
        from botocore.exceptions import BotoCoreError, ClientError

        claim_id = uuid.uuid4().hex
        values = {
            ":claimed": DeliveryState.CLAIMED.value,
            ":retryable": DeliveryState.FAILED_TEMPORARY.value,
            ":claim_id": claim_id,
            ":lease_until": epoch_seconds(now + lease),
            ":now": now.isoformat(),
            ":now_epoch": epoch_seconds(now),
            ":dedup_key": message["dedup_key"],
            ":alert_id": message["alert_id"],
            ":alert_status": message["status"],
            ":severity": message["severity"],
            ":expires_at": epoch_seconds(now + self.retention),
            ":one": 1,
        }
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(DELIVERY_PREFIX + message_id, channel),
                UpdateExpression=(
                    "SET #state = :claimed, claim_id = :claim_id, lease_until = :lease_until,"
                    " claimed_at = :now, first_claimed_at = if_not_exists(first_claimed_at, :now),"
                    " dedup_key = :dedup_key, alert_id = :alert_id, alert_status = :alert_status,"
                    " severity = :severity, expires_at = :expires_at ADD claims :one"
                ),
                # Free, or left for a retry, or held by an invocation that died.
                ConditionExpression=(
                    "attribute_not_exists(id) OR #state = :retryable"
                    " OR (#state = :claimed AND lease_until < :now_epoch)"
                ),
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=to_item(values),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not lost_race(exc):
                raise unavailable(TABLE, exc) from exc
            old = cast("DeliveryItem", from_item(exc.response.get("Item", {})))  # type: ignore[arg-type]
            previous = DeliveryState(old.get("state", DeliveryState.CLAIMED.value))
            status = ClaimStatus.DONE if previous.final else ClaimStatus.BUSY
            return Claim(status, previous=previous)
        except BotoCoreError as exc:
            raise unavailable(TABLE, exc) from exc
        return Claim(ClaimStatus.CLAIMED, claim_id)

    def finish(
        self, delivery: Delivery, claim: Claim, record: DeliveryRecord, now: datetime
    ) -> None:
        message_id, channel, message = delivery.message_id, delivery.channel, delivery.message
        from botocore.exceptions import BotoCoreError, ClientError

        sets = ["#state = :state", "finished_at = :now", "lease_until = :zero"]
        removes: list[str] = []
        values: dict[str, Any] = {
            ":state": record.state.value,
            ":now": now.isoformat(),
            ":zero": 0,
            ":attempts": record.attempts,
            ":claim_id": claim.claim_id,
        }
        for name, value in (("response_code", record.response_code), ("error", record.error)):
            if value is None:
                removes.append(f"#{name}")
            else:
                sets.append(f"#{name} = :{name}")
                values[f":{name}"] = value
        expression = "SET " + ", ".join(sets) + " ADD attempts :attempts"
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": self._key(DELIVERY_PREFIX + message_id, channel),
            "UpdateExpression": expression,
            # Only the lease holder records the end: a slow invocation whose
            # lease ran out must not overwrite the one that took over.
            "ConditionExpression": "claim_id = :claim_id",
            "ExpressionAttributeNames": {
                "#state": "state",
                "#response_code": "response_code",
                "#error": "error",
            },
            "ExpressionAttributeValues": to_item(values),
        }
        try:
            if record.state is DeliveryState.SENT:
                # One transaction: a delivery recorded as sent is always
                # counted on its episode, or reminders would read as firsts.
                items: list[Any] = [
                    {"Update": update},
                    {"Update": self._episode_update(message_id, channel, message, now)},
                ]
                self.client.transact_write_items(TransactItems=items)
            else:
                self.client.update_item(**update)
        except ClientError as exc:
            if not lost_race(exc):
                raise unavailable(TABLE, exc) from exc
            logger.warning(
                "delivery finished after its lease was taken over",
                extra={"message_id": message_id, "channel": channel.value},
            )
        except BotoCoreError as exc:
            raise unavailable(TABLE, exc) from exc

    def _episode_update(
        self, message_id: str, channel: Channel, message: AlertMessage, now: datetime
    ) -> dict[str, Any]:
        counter = "resolved_sent" if message["status"] == AlertStatus.RESOLVED else "firing_sent"
        return {
            "TableName": self.table,
            "Key": self._key(EPISODE_PREFIX + message["dedup_key"], channel),
            "UpdateExpression": (
                f"ADD {counter} :one SET last_message_id = :message_id, last_sent_at = :now,"
                " first_sent_at = if_not_exists(first_sent_at, :now), alert_id = :alert_id,"
                " expires_at = :expires_at"
            ),
            "ExpressionAttributeValues": to_item(
                {
                    ":one": 1,
                    ":message_id": message_id,
                    ":now": now.isoformat(),
                    ":alert_id": message["alert_id"],
                    ":expires_at": epoch_seconds(now + self.retention),
                }
            ),
        }

    def episode(self, dedup_key: str, channel: Channel) -> Episode:
        found = self._get(EPISODE_PREFIX + dedup_key, channel)
        if found is None:
            return Episode()
        item = cast("EpisodeItem", found)
        return Episode(int(item.get("firing_sent", 0)), int(item.get("resolved_sent", 0)))

    def delivery(self, message_id: str, channel: Channel) -> dict[str, Any] | None:
        """The delivery's item as plain values (for operators and tests)."""
        return self._get(DELIVERY_PREFIX + message_id, channel)

    def _get(self, id_: str, channel: Channel) -> dict[str, Any] | None:
        with backend(TABLE):
            response = self.client.get_item(
                TableName=self.table, Key=self._key(id_, channel), ConsistentRead=True
            )
        item = response.get("Item")
        return from_item(item) if item else None

    @staticmethod
    def _key(id_: str, channel: Channel) -> dict[str, Any]:
        return {"id": {"S": id_}, "channel": {"S": channel.value}}
