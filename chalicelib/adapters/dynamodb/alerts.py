"""The alerts table: one item per alert, every write a compare-and-swap on `version`."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, cast

from chalicelib.adapters.dynamodb.common import (
    conditional_write,
    ddb_number,
    from_item,
    instant_of_iso,
    scan_decoded,
    to_item,
)
from chalicelib.core.alert_message import AlertKind, AlertStatus, Severity
from chalicelib.core.alerts import AlertRecord, AlertState
from chalicelib.core.instants import iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

TABLE = "alerts"


class AlertItem(TypedDict):
    """An alert's item (key `alert_id`); instants as ISO-8601 text, absent values left out."""

    alert_id: str
    kind: str  # AlertKind
    host: str
    rule: str
    state: str  # AlertState
    severity: str  # Severity
    summary: str
    description: str
    labels: dict[str, str]
    active_at: str
    version: int
    value: NotRequired[Decimal]
    threshold: NotRequired[Decimal]
    runbook: NotRequired[str]
    fired_at: NotRequired[str]
    resolved_at: NotRequired[str]
    clear_since: NotRequired[str]
    notified: NotRequired[str]  # AlertStatus
    notified_at: NotRequired[str]
    notified_severity: NotRequired[str]  # Severity
    outbox: NotRequired[str]  # the Contract 2 message owed, as JSON
    outbox_at: NotRequired[str]
    updated_at: NotRequired[str]


def alert_to_item(record: AlertRecord) -> AlertItem:
    """An alert record as plain values for the alerts table (absent values are left out)."""
    item: AlertItem = {
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
        "fired_at": iso(record.fired_at, timespec="auto"),
        "resolved_at": iso(record.resolved_at, timespec="auto"),
        "clear_since": iso(record.clear_since, timespec="auto"),
        "notified": record.notified.value if record.notified else None,
        "notified_at": iso(record.notified_at, timespec="auto"),
        "notified_severity": record.notified_severity.value if record.notified_severity else None,
        "outbox": json.dumps(record.outbox) if record.outbox is not None else None,
        "outbox_at": iso(record.outbox_at, timespec="auto"),
        "updated_at": iso(record.updated_at, timespec="auto"),
    }
    item.update(cast("AlertItem", {k: v for k, v in optional.items() if v is not None}))
    return item


def alert_from_item(item: AlertItem) -> AlertRecord:
    value, threshold = item.get("value"), item.get("threshold")
    active_at = instant_of_iso(item["active_at"])
    assert active_at is not None
    notified_severity = item.get("notified_severity")
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
        value=float(value) if value is not None else None,
        threshold=float(threshold) if threshold is not None else None,
        labels=dict(item.get("labels", {})),
        runbook=item.get("runbook"),
        fired_at=instant_of_iso(item.get("fired_at")),
        resolved_at=instant_of_iso(item.get("resolved_at")),
        clear_since=instant_of_iso(item.get("clear_since")),
        notified=AlertStatus(item["notified"]) if item.get("notified") else None,
        notified_at=instant_of_iso(item.get("notified_at")),
        notified_severity=Severity(notified_severity) if notified_severity else None,
        outbox=json.loads(item["outbox"]) if item.get("outbox") else None,
        outbox_at=instant_of_iso(item.get("outbox_at")),
        version=int(item.get("version", 0)),
        updated_at=instant_of_iso(item.get("updated_at")),
    )


class DynamoDBAlertStore:
    """One item per alert (key `alert_id`): open alerts and those resolved within the
    retention. Reading "all open alerts" is one Scan of a table that holds little else;
    the history of transitions lives in the metric store as `alert` events."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self.client = client
        self.table = table

    def scan(self) -> list[AlertRecord]:
        return scan_decoded(
            self.client,
            self.table,
            TABLE,
            lambda item: alert_from_item(cast("AlertItem", from_item(item))),
            True,
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
        return conditional_write(TABLE, call)
