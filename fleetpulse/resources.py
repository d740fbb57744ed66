"""The AWS resources fleetpulse needs, as API request shapes.

Tests and the local stack create them from these definitions; the
CloudFormation template in infra/ declares the same tables and keys.
"""

from __future__ import annotations

import contextlib
from typing import Any

from chalicelib.settings import Settings


def table_definitions(settings: Settings) -> list[dict[str, Any]]:
    """CreateTable requests for every DynamoDB table (on-demand billing)."""

    def table(name: str, key: str) -> dict[str, Any]:
        return {
            "TableName": name,
            "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": key, "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        }

    return [
        table(settings.tokens_table, "token_id"),
        table(settings.hosts_table, "host"),
        # Open alerts and those resolved within the retention, one item each: the
        # evaluator reads them all with one Scan (docs/ALERTING.md).
        table(settings.alerts_table, "alert_id"),
        table(settings.silences_table, "silence_id"),
        ledger_table(settings),
    ]


def ledger_table(settings: Settings) -> dict[str, Any]:
    """The notification ledger: `id` is `msg#<SNS MessageId>` or `alert#<dedup_key>`."""
    return {
        "TableName": settings.ledger_table,
        "KeySchema": [
            {"AttributeName": "id", "KeyType": "HASH"},
            {"AttributeName": "channel", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "id", "AttributeType": "S"},
            {"AttributeName": "channel", "AttributeType": "S"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


def ttl_definitions(settings: Settings) -> list[dict[str, Any]]:
    """UpdateTimeToLive requests: tables whose items expire on their own."""
    from chalicelib.adapters.ledger import TTL_ATTRIBUTE

    return [
        {
            "TableName": settings.ledger_table,
            "TimeToLiveSpecification": {"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
        }
    ]


def create_all(settings: Settings, clients: Any, memory_retention_hours: int = 24) -> None:
    """Create every table (with TTL where set), the alerts topic (when configured), the
    Timestream database and table (idempotent)."""
    dynamodb = clients.get("dynamodb")
    existing = set(dynamodb.list_tables().get("TableNames", []))
    for definition in table_definitions(settings):
        if definition["TableName"] not in existing:
            dynamodb.create_table(**definition)
    for ttl in ttl_definitions(settings):
        if ttl["TableName"] not in existing:
            dynamodb.update_time_to_live(**ttl)
    if settings.alerts_topic_arn:
        # CreateTopic is idempotent; the name is the ARN's last part.
        clients.get("sns").create_topic(Name=settings.alerts_topic_arn.rsplit(":", 1)[-1])
    ts = clients.get("timestream-write")
    with contextlib.suppress(ts.exceptions.ConflictException):
        ts.create_database(DatabaseName=settings.timestream_database)
    with contextlib.suppress(ts.exceptions.ConflictException):
        ts.create_table(
            DatabaseName=settings.timestream_database,
            TableName=settings.timestream_table,
            RetentionProperties={
                "MemoryStoreRetentionPeriodInHours": memory_retention_hours,
                "MagneticStoreRetentionPeriodInDays": 365,
            },
        )
