"""DynamoDB adapters, one module per table, over one shared helper module.

- `common`: the codec (`to_item`, `from_item`, `ddb_number`), the error rule
  (a failed condition is a lost race, False; any other botocore error is
  BackendUnavailable), conditional writes and the paginated Scan.
- `tokens`, `hosts`, `alerts`, `silences`, `ledger`, `jobs`, `checks`: one store
  each, with its item layout as TypedDicts; `instances`: the hosts table looked up
  by EC2 instance id (its `instance_id` index).

Items are read and written with the low-level client and boto3's type
(de)serializer, so the request shapes are exactly what DynamoDB receives.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chalicelib.adapters.dynamodb.alerts import (
        AlertItem,
        DynamoDBAlertStore,
        alert_from_item,
        alert_to_item,
    )
    from chalicelib.adapters.dynamodb.checks import (
        DefinitionItem,
        DynamoDBCheckStore,
        StateItem,
    )
    from chalicelib.adapters.dynamodb.common import ddb_number, from_item, to_item
    from chalicelib.adapters.dynamodb.hosts import (
        DynamoDBHostStore,
        HostItem,
        UpdateOp,
        snapshot_from_item,
    )
    from chalicelib.adapters.dynamodb.instances import DynamoDBInstanceDirectory, InstanceKeyItem
    from chalicelib.adapters.dynamodb.jobs import (
        DynamoDBJobStore,
        JobItem,
        LastRunItem,
        job_from_item,
        job_to_item,
    )
    from chalicelib.adapters.dynamodb.ledger import DynamoDBLedger
    from chalicelib.adapters.dynamodb.silences import DynamoDBSilenceStore, SilenceItem
    from chalicelib.adapters.dynamodb.tokens import DynamoDBTokenStore, TokenItem

# Each name loads only its table's module: the collector's first post needs the tokens
# and hosts tables, not the alerting and notification domain behind the others.
_HOMES = {
    "AlertItem": "alerts",
    "DynamoDBAlertStore": "alerts",
    "alert_from_item": "alerts",
    "alert_to_item": "alerts",
    "DefinitionItem": "checks",
    "DynamoDBCheckStore": "checks",
    "StateItem": "checks",
    "ddb_number": "common",
    "from_item": "common",
    "to_item": "common",
    "DynamoDBHostStore": "hosts",
    "HostItem": "hosts",
    "UpdateOp": "hosts",
    "snapshot_from_item": "hosts",
    "DynamoDBInstanceDirectory": "instances",
    "InstanceKeyItem": "instances",
    "DynamoDBJobStore": "jobs",
    "JobItem": "jobs",
    "LastRunItem": "jobs",
    "job_from_item": "jobs",
    "job_to_item": "jobs",
    "DynamoDBLedger": "ledger",
    "DynamoDBSilenceStore": "silences",
    "SilenceItem": "silences",
    "DynamoDBTokenStore": "tokens",
    "TokenItem": "tokens",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)


__all__ = [
    "AlertItem",
    "DefinitionItem",
    "DynamoDBAlertStore",
    "DynamoDBCheckStore",
    "DynamoDBHostStore",
    "DynamoDBInstanceDirectory",
    "DynamoDBJobStore",
    "DynamoDBLedger",
    "DynamoDBSilenceStore",
    "DynamoDBTokenStore",
    "HostItem",
    "InstanceKeyItem",
    "JobItem",
    "LastRunItem",
    "SilenceItem",
    "StateItem",
    "TokenItem",
    "UpdateOp",
    "alert_from_item",
    "alert_to_item",
    "ddb_number",
    "from_item",
    "job_from_item",
    "job_to_item",
    "snapshot_from_item",
    "to_item",
]
