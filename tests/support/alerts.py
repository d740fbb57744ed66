"""Contract 2 alert messages and SNS Lambda events for the notification tests."""

from __future__ import annotations

import json
import uuid
from typing import Any

from chalicelib.core.alert_message import AlertMessage, parse_alert_message


def alert(**overrides: Any) -> AlertMessage:
    """A firing critical threshold alert; keyword arguments replace fields."""
    return parse_alert_message(raw_alert(**overrides))


def raw_alert(**overrides: Any) -> dict[str, Any]:
    """The same alert as a plain dict, not yet checked against Contract 2."""
    m: dict[str, Any] = {
        "version": 1,
        "alert_id": "a-1",
        "dedup_key": "fleetpulse/web-1/disk-full/1",
        "status": "firing",
        "severity": "critical",
        "kind": "threshold",
        "host": "web-1",
        "rule": "disk-full",
        "summary": "Disk / at 97% on web-1",
        "description": "above 95 for 5m",
        "value": 97.1,
        "threshold": 95.0,
        "labels": {"mount": "/"},
        "started_at": "2026-11-21T12:00:00+00:00",
        "resolved_at": None,
        "links": [{"href": "https://runbooks.example/disk", "text": "Runbook"}],
    }
    m.update(overrides)
    return m


def resolved(**overrides: Any) -> AlertMessage:
    return alert(status="resolved", resolved_at="2026-11-21T12:32:00+00:00", **overrides)


def sns_event(message: Any, message_id: str | None = None) -> dict[str, Any]:
    """An SNS → Lambda event as Lambda delivers it (one record), with its own MessageId.

    `message` is a Contract 2 dict (sent as JSON, as the `default` body is) or a raw string.
    """
    body = message if isinstance(message, str) else json.dumps(message)
    attributes = {}
    if isinstance(message, dict):
        attributes = {
            name: {"Type": "String", "Value": message[name]}
            for name in ("severity", "status", "host")
            if name in message
        }
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:fleetpulse-dev-alerts:sub",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": message_id or str(uuid.uuid4()),
                    "TopicArn": "arn:aws:sns:us-east-1:123456789012:fleetpulse-dev-alerts",
                    "Subject": "",
                    "Message": body,
                    "Timestamp": "2026-11-21T12:05:00.000Z",
                    "MessageAttributes": attributes,
                },
            }
        ]
    }
