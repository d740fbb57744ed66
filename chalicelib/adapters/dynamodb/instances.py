"""Hosts by EC2 instance id: a sparse global secondary index on the hosts table.

Each post that carries an `instance_id` tag also sets the item's top-level
`instance_id` attribute (chalicelib.adapters.dynamodb.hosts), the key of the index
`instance_id` (infra/cloudformation/fleetpulse.yaml). Hosts without one are not
in the index, so a lookup is one Query, never a Scan of the fleet.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, TypedDict

from chalicelib.adapters.dynamodb.common import backend, conditional_write
from chalicelib.core.hosts import HostState
from chalicelib.core.instants import ms_of_instant
from chalicelib.core.lifecycle import INSTANCE_TAG, LIFECYCLE_ATTRIBUTE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

INSTANCE_INDEX = "instance_id"


class InstanceKeyItem(TypedDict):
    """What the KEYS_ONLY index holds of a host item (HostItem): its key and the index's."""

    host: str
    instance_id: str


class DynamoDBInstanceDirectory:
    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self.client = client
        self.table = table

    def hosts_of(self, instance_id: str) -> list[str]:
        with backend("hosts"):
            # A KEYS_ONLY index: one small page holds every host an instance ever named.
            page = self.client.query(
                TableName=self.table,
                IndexName=INSTANCE_INDEX,
                KeyConditionExpression="#i = :i",
                ExpressionAttributeNames={"#i": INSTANCE_TAG},
                ExpressionAttributeValues={":i": {"S": instance_id}},
            )
        keys: list[InstanceKeyItem] = [
            {"host": item["host"]["S"], "instance_id": item[INSTANCE_TAG]["S"]}
            for item in page.get("Items", [])
        ]
        return sorted(key["host"] for key in keys)

    def end(self, host: str, instance_id: str, state: HostState, reason: str, at: datetime) -> bool:
        update = "SET #state = :state, #why = :why"
        values = {
            ":state": {"S": state.value},
            ":why": {"S": reason},
            ":i": {"S": instance_id},
        }
        if state is HostState.RETIRED:
            update += ", retired_at = if_not_exists(retired_at, :at)"
            values[":at"] = {"N": str(ms_of_instant(at))}
        return conditional_write(
            "hosts",
            lambda: self.client.update_item(
                TableName=self.table,
                Key={"host": {"S": host}},
                UpdateExpression=update,
                # The index is eventually consistent: the item must still be the instance's.
                ConditionExpression="#i = :i",
                ExpressionAttributeNames={
                    "#state": "state",
                    "#why": LIFECYCLE_ATTRIBUTE,
                    "#i": INSTANCE_TAG,
                },
                ExpressionAttributeValues=values,
            ),
        )
