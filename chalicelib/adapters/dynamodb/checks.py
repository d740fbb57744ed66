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
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict, cast

from chalicelib.adapters.dynamodb.common import (
    backend,
    conditional_write,
    from_item,
    scan_items,
    to_item,
)
from chalicelib.core.checks import LocationState
from chalicelib.core.instants import ms_of_instant

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

TABLE = "checks"
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
    severity: str  # empty: none


def state_to_item(name: str, location: str, state: LocationState) -> StateItem:
    return {
        "pk": f"{STATE_PREFIX}{name}#{location}",
        "name": name,
        "location": location,
        "at": state["at"],
        "up": state["up"],
        "fails": state["fails"],
        "reason": state["reason"],
        "severity": state["severity"] or "",
    }


def state_from_item(item: StateItem) -> LocationState:
    return {
        "at": int(item["at"]),
        "up": bool(item["up"]),
        "fails": int(item["fails"]),
        "reason": str(item.get("reason", "")),
        "severity": str(item.get("severity") or "") or None,
    }


class DynamoDBCheckStore:
    """API-defined checks and per-location states. A ClientError is BackendUnavailable,
    except a failed condition, which is a lost race: False."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self.client = client
        self.table = table

    def _items(self) -> Iterator[dict[str, Any]]:
        with backend(TABLE):
            for raw in scan_items(self.client, self.table, True):
                yield from_item(raw)

    def scan(self) -> tuple[list[dict[str, Any]], dict[str, dict[str, LocationState]]]:
        specs: list[dict[str, Any]] = []
        states: dict[str, dict[str, LocationState]] = {}
        for item in self._items():
            pk = str(item["pk"])
            if pk.startswith(DEF_PREFIX):
                specs.append(json.loads(cast("DefinitionItem", item)["spec"]))
            elif pk.startswith(STATE_PREFIX):
                state_item = cast("StateItem", item)
                states.setdefault(state_item["name"], {})[state_item["location"]] = state_from_item(
                    state_item
                )
        return specs, states

    def get(self, name: str) -> dict[str, Any] | None:
        with backend(TABLE):
            reply = self.client.get_item(
                TableName=self.table, Key={"pk": {"S": DEF_PREFIX + name}}, ConsistentRead=True
            )
        item = reply.get("Item")
        return json.loads(cast("DefinitionItem", from_item(item))["spec"]) if item else None

    def put(self, name: str, spec: dict[str, Any], at: datetime) -> None:
        item: DefinitionItem = {
            "pk": DEF_PREFIX + name,
            "name": name,
            "spec": json.dumps(spec, sort_keys=True),
            "updated_at": ms_of_instant(at),
        }
        with backend(TABLE):
            self.client.put_item(TableName=self.table, Item=to_item(item))

    def delete(self, name: str) -> bool:
        with backend(TABLE):
            reply = self.client.delete_item(
                TableName=self.table, Key={"pk": {"S": DEF_PREFIX + name}}, ReturnValues="ALL_OLD"
            )
        prefix = f"{STATE_PREFIX}{name}#"
        stale = [str(i["pk"]) for i in self._items() if str(i["pk"]).startswith(prefix)]
        for pk in stale:
            with backend(TABLE):
                self.client.delete_item(TableName=self.table, Key={"pk": {"S": pk}})
        return bool(reply.get("Attributes"))

    def state(self, name: str, location: str) -> LocationState | None:
        with backend(TABLE):
            reply = self.client.get_item(
                TableName=self.table,
                Key={"pk": {"S": f"{STATE_PREFIX}{name}#{location}"}},
                ConsistentRead=True,
            )
        item = reply.get("Item")
        return state_from_item(cast("StateItem", from_item(item))) if item else None

    def record(
        self, name: str, location: str, state: LocationState, previous_at: int | None
    ) -> bool:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Item": to_item(state_to_item(name, location, state)),
        }
        if previous_at is None:
            kwargs["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            kwargs["ConditionExpression"] = "#at = :previous AND #at < :at"
            kwargs["ExpressionAttributeNames"] = {"#at": "at"}
            kwargs["ExpressionAttributeValues"] = {
                ":previous": {"N": str(previous_at)},
                ":at": {"N": str(state["at"])},
            }
        return conditional_write(TABLE, lambda: self.client.put_item(**kwargs))
