"""The checks table: checks registered through the API, and each check's state per location.

One table, key `pk`:
- `def#<name>`: an API-defined check, its JSON (`spec`) as validated;
- `state#<name>#<location>`: that location's last run and its consecutive failures.

Recording a run is a conditional write on the previous run's instant: two
runs of one check from one location racing (a slow runner and the next
minute's) cannot both count from the same previous state.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict

from chalicelib.core.checks import LocationState
from chalicelib.core.instants import ms_of_instant
from chalicelib.core.ports import BackendUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DEF_PREFIX = "def#"
STATE_PREFIX = "state#"


class DefinitionItem(TypedDict):
    pk: str
    name: str
    spec: str  # the check's JSON
    updated_at: int  # epoch ms


class StateItem(TypedDict):
    pk: str
    name: str
    location: str
    at: int
    up: bool
    fails: int
    reason: str
    severity: str


def _error(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", type(exc).__name__))


class DynamoDBCheckStore:
    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self.client = client
        self.table = table

    def _call(self, call: Callable[[], Any], conditional: bool = False) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return call()
        except ClientError as exc:
            if conditional and _error(exc) == "ConditionalCheckFailedException":
                return False
            raise BackendUnavailable(f"checks table: {_error(exc)}") from exc
        except BotoCoreError as exc:
            raise BackendUnavailable(f"checks table: {exc}") from exc

    def _items(self) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        while True:
            page = self._call(lambda: self.client.scan(**kwargs))
            yield from page.get("Items", [])
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def scan(self) -> tuple[list[dict[str, Any]], dict[str, dict[str, LocationState]]]:
        specs: list[dict[str, Any]] = []
        states: dict[str, dict[str, LocationState]] = {}
        for item in self._items():
            pk = item["pk"]["S"]
            if pk.startswith(DEF_PREFIX):
                specs.append(json.loads(item["spec"]["S"]))
            elif pk.startswith(STATE_PREFIX):
                state = _state(item)
                states.setdefault(item["name"]["S"], {})[item["location"]["S"]] = state
        return specs, states

    def get(self, name: str) -> dict[str, Any] | None:
        reply = self._call(
            lambda: self.client.get_item(
                TableName=self.table, Key={"pk": {"S": DEF_PREFIX + name}}, ConsistentRead=True
            )
        )
        item = reply.get("Item")
        return json.loads(item["spec"]["S"]) if item else None

    def put(self, name: str, spec: dict[str, Any], at: datetime) -> None:
        item = {
            "pk": {"S": DEF_PREFIX + name},
            "name": {"S": name},
            "spec": {"S": json.dumps(spec, sort_keys=True)},
            "updated_at": {"N": str(ms_of_instant(at))},
        }
        self._call(lambda: self.client.put_item(TableName=self.table, Item=item))

    def delete(self, name: str) -> bool:
        reply = self._call(
            lambda: self.client.delete_item(
                TableName=self.table, Key={"pk": {"S": DEF_PREFIX + name}}, ReturnValues="ALL_OLD"
            )
        )
        prefix = f"{STATE_PREFIX}{name}#"
        stale = [i["pk"]["S"] for i in self._items() if i["pk"]["S"].startswith(prefix)]
        for pk in stale:
            self._delete_state(pk)
        return bool(reply.get("Attributes"))

    def _delete_state(self, pk: str) -> None:
        self._call(lambda: self.client.delete_item(TableName=self.table, Key={"pk": {"S": pk}}))

    def state(self, name: str, location: str) -> LocationState | None:
        reply = self._call(
            lambda: self.client.get_item(
                TableName=self.table,
                Key={"pk": {"S": f"{STATE_PREFIX}{name}#{location}"}},
                ConsistentRead=True,
            )
        )
        item = reply.get("Item")
        return _state(item) if item else None

    def record(
        self, name: str, location: str, state: LocationState, previous_at: int | None
    ) -> bool:
        item = {
            "pk": {"S": f"{STATE_PREFIX}{name}#{location}"},
            "name": {"S": name},
            "location": {"S": location},
            "at": {"N": str(state["at"])},
            "up": {"BOOL": state["up"]},
            "fails": {"N": str(state["fails"])},
            "reason": {"S": state["reason"]},
            "severity": {"S": state["severity"] or ""},
        }
        kwargs: dict[str, Any] = {"TableName": self.table, "Item": item}
        if previous_at is None:
            kwargs["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            kwargs["ConditionExpression"] = "#at = :previous AND #at < :at"
            kwargs["ExpressionAttributeNames"] = {"#at": "at"}
            kwargs["ExpressionAttributeValues"] = {
                ":previous": {"N": str(previous_at)},
                ":at": {"N": str(state["at"])},
            }
        return self._call(lambda: self.client.put_item(**kwargs), conditional=True) is not False


def _state(item: dict[str, Any]) -> LocationState:
    return {
        "at": int(item["at"]["N"]),
        "up": bool(item["up"]["BOOL"]),
        "fails": int(item["fails"]["N"]),
        "reason": item.get("reason", {}).get("S", ""),
        "severity": item.get("severity", {}).get("S") or None,
    }
