"""Contract 2: the alert message published to SNS, one per alert transition.

The alerting engine builds these; the notifiers (Slack, PagerDuty, email)
consume them. `dedup_key` is stable for one alert episode, so a PagerDuty
`resolve` closes the incident its `trigger` opened and a reminder never opens
a second one.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Any, TypedDict

MESSAGE_VERSION = 1


class AlertStatus(enum.StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class AlertKind(enum.StrEnum):
    HEARTBEAT = "heartbeat"
    THRESHOLD = "threshold"
    EVENT = "event"
    CHECK = "check"  # remote checks (core/checks.py), decided by their own schedule
    JOB = "job"  # a cron job or service heartbeat that pings (chalicelib/core/jobs.py)


class Link(TypedDict):
    href: str
    text: str


class AlertMessage(TypedDict):
    version: int
    alert_id: str
    dedup_key: str
    status: str  # AlertStatus value
    severity: str  # Severity value
    kind: str  # AlertKind value
    host: str
    rule: str
    summary: str
    description: str
    value: float | None
    threshold: float | None
    labels: dict[str, str]
    started_at: str  # ISO-8601, UTC
    resolved_at: str | None
    links: list[Link]


class InvalidAlertMessage(ValueError):
    """A message on the topic that is not Contract 2: the field and the problem are named."""


_REQUIRED_STR = ("alert_id", "dedup_key", "host", "rule", "summary", "started_at")


def parse_alert_message(raw: Mapping[str, Any]) -> AlertMessage:
    """Check that `raw` is a Contract 2 message and return it typed.

    Unknown extra keys are kept (a newer publisher may add some); a missing or
    mistyped known key raises InvalidAlertMessage naming it.
    """
    if not isinstance(raw, Mapping):
        raise InvalidAlertMessage("message must be a JSON object")
    if raw.get("version") != MESSAGE_VERSION:
        raise InvalidAlertMessage(f"version must be {MESSAGE_VERSION}, got {raw.get('version')!r}")
    for key in _REQUIRED_STR:
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise InvalidAlertMessage(f"{key} must be a non-empty string")
    enums: tuple[tuple[str, type[enum.StrEnum]], ...] = (
        ("status", AlertStatus),
        ("severity", Severity),
        ("kind", AlertKind),
    )
    for key, enum_type in enums:
        if raw.get(key) not in {e.value for e in enum_type}:
            choices = ", ".join(e.value for e in enum_type)
            raise InvalidAlertMessage(f"{key} must be one of {choices}, got {raw.get(key)!r}")
    for key in ("value", "threshold"):
        v = raw.get(key)
        if v is not None and (
            not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v)
        ):
            raise InvalidAlertMessage(f"{key} must be a finite number or null")
    if not isinstance(raw.get("description", ""), str):
        raise InvalidAlertMessage("description must be a string")
    labels = raw.get("labels", {})
    if not isinstance(labels, Mapping) or not all(isinstance(v, str) for v in labels.values()):
        raise InvalidAlertMessage("labels must be an object of strings")
    if raw.get("resolved_at") is not None and not isinstance(raw.get("resolved_at"), str):
        raise InvalidAlertMessage("resolved_at must be an ISO-8601 string or null")
    links = raw.get("links", [])
    if not isinstance(links, list) or not all(
        isinstance(link, Mapping) and isinstance(link.get("href"), str) for link in links
    ):
        raise InvalidAlertMessage('links must be a list of {"href", "text"}')
    message = dict(raw)
    message.setdefault("description", "")
    message.setdefault("labels", {})
    message.setdefault("links", [])
    message.setdefault("resolved_at", None)
    message.setdefault("value", None)
    message.setdefault("threshold", None)
    return message  # type: ignore[return-value]


def message_attributes(message: AlertMessage) -> dict[str, str]:
    """The SNS message attributes subscriptions filter on."""
    return {"severity": message["severity"], "status": message["status"], "host": message["host"]}
