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

import threading
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from chalicelib.adapters.dynamodb import from_item, to_item
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
from chalicelib.core.ports import BackendUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = Logger(child=True)

DELIVERY_PREFIX = "msg#"
EPISODE_PREFIX = "alert#"
RETENTION = timedelta(days=30)
TTL_ATTRIBUTE = "expires_at"


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", type(exc).__name__))


def _lost_lease(exc: Exception) -> bool:
    code = _code(exc)
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionCanceledException":
        reasons = getattr(exc, "response", {}).get("CancellationReasons", [])
        return bool(reasons) and reasons[0].get("Code") == "ConditionalCheckFailed"
    return False


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
            ":lease_until": _epoch(now + lease),
            ":now": now.isoformat(),
            ":now_epoch": _epoch(now),
            ":dedup_key": message["dedup_key"],
            ":alert_id": message["alert_id"],
            ":alert_status": message["status"],
            ":severity": message["severity"],
            ":expires_at": _epoch(now + self.retention),
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
            if _code(exc) != "ConditionalCheckFailedException":
                raise BackendUnavailable(f"ledger table: {_code(exc)}") from exc
            old = from_item(exc.response.get("Item", {}))  # type: ignore[arg-type]
            previous = DeliveryState(old.get("state", DeliveryState.CLAIMED.value))
            status = ClaimStatus.DONE if previous.final else ClaimStatus.BUSY
            return Claim(status, previous=previous)
        except BotoCoreError as exc:
            raise BackendUnavailable(f"ledger table: {type(exc).__name__}") from exc
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
            if not _lost_lease(exc):
                raise BackendUnavailable(f"ledger table: {_code(exc)}") from exc
            logger.warning(
                "delivery finished after its lease was taken over",
                extra={"message_id": message_id, "channel": channel.value},
            )
        except BotoCoreError as exc:
            raise BackendUnavailable(f"ledger table: {type(exc).__name__}") from exc

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
                    ":expires_at": _epoch(now + self.retention),
                }
            ),
        }

    def episode(self, dedup_key: str, channel: Channel) -> Episode:
        item = self._get(EPISODE_PREFIX + dedup_key, channel)
        if item is None:
            return Episode()
        return Episode(int(item.get("firing_sent", 0)), int(item.get("resolved_sent", 0)))

    def delivery(self, message_id: str, channel: Channel) -> dict[str, Any] | None:
        """The delivery's item as plain values (for operators and tests)."""
        return self._get(DELIVERY_PREFIX + message_id, channel)

    def _get(self, id_: str, channel: Channel) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_item(
                TableName=self.table, Key=self._key(id_, channel), ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise BackendUnavailable(f"ledger table: {_code(exc)}") from exc
        item = response.get("Item")
        return from_item(item) if item else None

    @staticmethod
    def _key(id_: str, channel: Channel) -> dict[str, Any]:
        return {"id": {"S": id_}, "channel": {"S": channel.value}}


class InMemoryLedger:
    """The same ledger in a dict: for unit tests and quick local runs."""

    def __init__(self) -> None:
        self.deliveries: dict[tuple[str, Channel], dict[str, Any]] = {}
        self.episodes: dict[tuple[str, Channel], Episode] = {}
        self._lock = threading.Lock()

    def claim(self, delivery: Delivery, now: datetime, lease: timedelta) -> Claim:
        message_id, channel, message = delivery.message_id, delivery.channel, delivery.message
        with self._lock:
            item = self.deliveries.get((message_id, channel))
            if item is not None:
                state = DeliveryState(item["state"])
                expired = state is DeliveryState.CLAIMED and item["lease_until"] < _epoch(now)
                if state.final:
                    return Claim(ClaimStatus.DONE, previous=state)
                if state is DeliveryState.CLAIMED and not expired:
                    return Claim(ClaimStatus.BUSY, previous=state)
            claim_id = uuid.uuid4().hex
            item = item or {"claims": 0, "attempts": 0, "first_claimed_at": now.isoformat()}
            item.update(
                state=DeliveryState.CLAIMED.value,
                claim_id=claim_id,
                lease_until=_epoch(now + lease),
                claimed_at=now.isoformat(),
                dedup_key=message["dedup_key"],
                alert_status=message["status"],
                claims=item["claims"] + 1,
            )
            self.deliveries[(message_id, channel)] = item
            return Claim(ClaimStatus.CLAIMED, claim_id)

    def finish(
        self, delivery: Delivery, claim: Claim, record: DeliveryRecord, now: datetime
    ) -> None:
        message_id, channel, message = delivery.message_id, delivery.channel, delivery.message
        with self._lock:
            item = self.deliveries[(message_id, channel)]
            if item["claim_id"] != claim.claim_id:
                return
            item.update(
                state=record.state.value,
                finished_at=now.isoformat(),
                lease_until=0,
                attempts=item["attempts"] + record.attempts,
                response_code=record.response_code,
                error=record.error,
            )
            if record.state is DeliveryState.SENT:
                key = (message["dedup_key"], channel)
                episode = self.episodes.get(key, Episode())
                if message["status"] == AlertStatus.RESOLVED:
                    episode = Episode(episode.firing_sent, episode.resolved_sent + 1)
                else:
                    episode = Episode(episode.firing_sent + 1, episode.resolved_sent)
                self.episodes[key] = episode

    def episode(self, dedup_key: str, channel: Channel) -> Episode:
        return self.episodes.get((dedup_key, channel), Episode())

    def delivery(self, message_id: str, channel: Channel) -> dict[str, Any] | None:
        item = self.deliveries.get((message_id, channel))
        return dict(item) if item else None
