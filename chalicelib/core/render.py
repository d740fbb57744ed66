"""What each channel is sent: Slack Block Kit, PagerDuty Events API v2 events, email text.

Pure functions of the alert message and the time. Every documented size limit
of the receiving service is enforced here, because a payload over a limit is
refused (a permanent failure) or silently cut by the receiver.
"""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.core.alert_message import AlertMessage, AlertStatus, Link, Severity
from chalicelib.core.notify import Notification

ELLIPSIS = "…"

# Slack Block Kit limits (characters).
SLACK_MAX_BLOCKS = 50
SLACK_HEADER_MAX = 150
SLACK_SECTION_TEXT_MAX = 3000
SLACK_FIELD_MAX = 2000
SLACK_MAX_FIELDS = 10
SLACK_CONTEXT_TEXT_MAX = 3000
SLACK_MAX_CONTEXT_ELEMENTS = 10
SLACK_TEXT_MAX = 3000  # the notification fallback; Slack allows more, nobody reads more

# PagerDuty Events API v2.
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
PAGERDUTY_SUMMARY_MAX = 1024
PAGERDUTY_DEDUP_KEY_MAX = 255
PAGERDUTY_CLIENT = "fleetpulse"

# SNS refuses an email subject of 100 characters or more, or one that is not ASCII.
EMAIL_SUBJECT_MAX = 99
EMAIL_DESCRIPTION_MAX = 8000  # the whole SNS message must stay under 256 KB

SLACK_ICONS = {
    Severity.CRITICAL: ":red_circle:",
    Severity.WARNING: ":large_orange_circle:",
    Severity.INFO: ":large_blue_circle:",
}
SLACK_RESOLVED_ICON = ":white_check_mark:"

# Our three severities map one to one. PagerDuty's `error` sits between
# critical and warning; a fourth Contract 2 severity would be needed to use it.
PAGERDUTY_SEVERITY = {
    Severity.CRITICAL: "critical",
    Severity.WARNING: "warning",
    Severity.INFO: "info",
}


def truncate(text: str, limit: int, ellipsis: str = ELLIPSIS) -> str:
    """`text` cut to at most `limit` characters, ending in `ellipsis` when it was cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - len(ellipsis), 0)] + ellipsis


def parse_instant(value: str | None) -> datetime | None:
    """An ISO-8601 instant as an aware UTC datetime; None when absent or unreadable."""
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)


def firing_for(message: AlertMessage, now: datetime) -> timedelta | None:
    """How long the alert has been firing (until it resolved, for a resolved one)."""
    started_at = parse_instant(message["started_at"])
    if started_at is None:
        return None
    end = now
    if message["status"] == AlertStatus.RESOLVED:
        end = parse_instant(message.get("resolved_at")) or now
    return max(end - started_at, timedelta(0))


def format_duration(duration: timedelta) -> str:
    """`45s`, `12m`, `3h 5m`, `2d 4h`: two units at most, for people."""
    seconds = int(duration.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    minutes, _ = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"


def format_instant(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if at else "unknown"


def format_number(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    if abs(value) >= 1e6:
        return f"{value:,.0f}"
    return f"{value:.6g}"


def value_text(message: AlertMessage) -> str | None:
    """`97.1 (threshold 95)`, or None when the alert carries no value."""
    value, threshold = message.get("value"), message.get("threshold")
    if value is None:
        return None
    text = format_number(value)
    if threshold is not None:
        text += f" (threshold {format_number(threshold)})"
    return text


def all_links(message: AlertMessage, status_page_url: str | None) -> list[Link]:
    """The message's links (runbook, dashboards), then the status page when it is not there."""
    links = [
        Link(href=link["href"], text=link.get("text") or link["href"])
        for link in message.get("links", [])
        if link.get("href")
    ]
    if status_page_url and all(link["href"] != status_page_url for link in links):
        links.append(Link(href=status_page_url, text="Status page"))
    return links


# Slack


def slack_escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn gives a meaning to."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_link(link: Link) -> str:
    # `|` and `>` end the URL part of <url|text>; encode them in the URL itself.
    href = link["href"].replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
    text = slack_escape(link["text"]).replace("|", "¦")
    return f"<{href}|{text}>"


def _slack_field(title: str, value: str) -> dict[str, str]:
    text = f"*{title}*\n{slack_escape(value)}"
    return {"type": "mrkdwn", "text": truncate(text, SLACK_FIELD_MAX)}


def _state_label(notification: Notification) -> str:
    message = notification.message
    if notification.resolved:
        return "RESOLVED"
    label = message["severity"].upper()
    return f"{label}, still firing" if notification.reminder else label


def slack_message(notification: Notification, status_page_url: str | None = None) -> dict[str, Any]:
    """An incoming-webhook body: `text` (the notification fallback) and Block Kit `blocks`.

    Links are mrkdwn links, not buttons: a link button on a message posted
    through an incoming webhook shows a warning to whoever clicks it, because
    Slack sends the click to an app that does not answer.
    """
    message = notification.message
    severity = Severity(message["severity"])
    icon = SLACK_RESOLVED_ICON if notification.resolved else SLACK_ICONS[severity]
    state = _state_label(notification)
    header = truncate(f"{icon} [{state}] {message['summary']}", SLACK_HEADER_MAX)
    # `text` is mrkdwn: unescaped, a host named `<!channel>` would ping everyone.
    fallback = f"[{state}] {message['summary']}"
    if message["host"] not in message["summary"]:
        fallback += f" ({message['host']})"
    text = truncate(slack_escape(fallback), SLACK_TEXT_MAX)

    duration = firing_for(message, notification.now)
    started_at = parse_instant(message["started_at"])
    if notification.resolved:
        lead = f"*Resolved* on *{slack_escape(message['host'])}*"
        if duration is not None:
            lead += f" after {format_duration(duration)}"
        lead += f" (was {message['severity']})."
    elif notification.reminder:
        lead = (
            f"*Still firing* on *{slack_escape(message['host'])}*"
            f" (reminder {notification.reminder})."
        )
    else:
        lead = f"*{message['severity'].capitalize()}* alert on *{slack_escape(message['host'])}*."

    fields = [_slack_field("Host", message["host"]), _slack_field("Rule", message["rule"])]
    value = value_text(message)
    if value is not None:
        fields.append(_slack_field("Value", value))
    if notification.resolved:
        resolved_at = parse_instant(message.get("resolved_at"))
        if duration is not None:
            fields.append(_slack_field("Fired for", format_duration(duration)))
        fields.append(_slack_field("Resolved at", format_instant(resolved_at or notification.now)))
    else:
        if duration is not None:
            fields.append(_slack_field("Firing for", format_duration(duration)))
        fields.append(_slack_field("Severity", message["severity"]))
    fields.append(_slack_field("Started at", format_instant(started_at)))

    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": truncate(lead, 3000)}},
        {"type": "section", "fields": fields[:SLACK_MAX_FIELDS]},
    ]
    if message["description"] and not notification.resolved:
        blocks.append(_mrkdwn_section(slack_escape(message["description"])))
    links = all_links(message, status_page_url)
    if links:
        blocks.append(_mrkdwn_section(_join_within(links, SLACK_SECTION_TEXT_MAX)))
    context: list[str] = []
    if notification.is_test:
        context.append("Test notification sent by `fleetpulse notify test`: no action needed.")
    if message["labels"]:
        labels = "  ".join(
            f"`{slack_escape(k)}={slack_escape(v)}`" for k, v in message["labels"].items()
        )
        context.append(labels)
    context.append(f"{message['kind']} alert · id {slack_escape(message['alert_id'])}")
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": truncate(element, SLACK_CONTEXT_TEXT_MAX)}
                for element in context[:SLACK_MAX_CONTEXT_ELEMENTS]
            ],
        }
    )
    return {"text": text, "blocks": blocks[:SLACK_MAX_BLOCKS]}


def _mrkdwn_section(text: str) -> dict[str, Any]:
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": truncate(text, SLACK_SECTION_TEXT_MAX)},
    }


def _join_within(links: list[Link], limit: int) -> str:
    # Whole links only: half a <url|text> would render as garbage.
    out = ""
    for link in links:
        piece = _slack_link(link)
        candidate = f"{out}  ·  {piece}" if out else piece
        if len(candidate) > limit:
            break
        out = candidate
    return out


# PagerDuty


def pagerduty_dedup_key(dedup_key: str) -> str:
    """The alert's dedup_key within PagerDuty's 255 characters, the same for trigger and resolve.

    A longer key keeps a readable prefix and ends in a hash of the whole key,
    so two long keys that share a prefix stay distinct.
    """
    if len(dedup_key) <= PAGERDUTY_DEDUP_KEY_MAX:
        return dedup_key
    digest = hashlib.sha256(dedup_key.encode()).hexdigest()
    return f"{dedup_key[: PAGERDUTY_DEDUP_KEY_MAX - len(digest) - 1]}#{digest}"


def pagerduty_event(
    notification: Notification,
    routing_key: str,
    status_page_url: str | None = None,
) -> dict[str, Any]:
    """An Events API v2 event: `trigger` for a firing alert, `resolve` for a resolved one.

    A resolve carries only what PagerDuty needs to find the alert: the routing
    key, the action and the dedup_key.
    """
    message = notification.message
    dedup_key = pagerduty_dedup_key(message["dedup_key"])
    if notification.resolved:
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key}
    labels = message["labels"]
    payload: dict[str, Any] = {
        "summary": truncate(message["summary"], PAGERDUTY_SUMMARY_MAX),
        "source": message["host"],
        "severity": PAGERDUTY_SEVERITY[Severity(message["severity"])],
        "component": labels.get("component") or labels.get("service") or message["rule"],
        "class": message["kind"],
    }
    started_at = parse_instant(message["started_at"])
    if started_at is not None:
        payload["timestamp"] = started_at.isoformat()
    group = labels.get("group") or labels.get("role")
    if group:
        payload["group"] = group
    details: dict[str, Any] = {
        "rule": message["rule"],
        "host": message["host"],
        "kind": message["kind"],
        "alert_id": message["alert_id"],
        "started_at": message["started_at"],
    }
    if message["description"]:
        details["description"] = message["description"]
    if message.get("value") is not None:
        details["value"] = message["value"]
    if message.get("threshold") is not None:
        details["threshold"] = message["threshold"]
    if labels:
        details["labels"] = dict(labels)
    duration = firing_for(message, notification.now)
    if duration is not None:
        details["firing_for"] = format_duration(duration)
    payload["custom_details"] = details
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": payload,
        "client": PAGERDUTY_CLIENT,
    }
    if status_page_url:
        event["client_url"] = status_page_url
    links = all_links(message, status_page_url)
    if links:
        event["links"] = [{"href": link["href"], "text": link["text"]} for link in links]
    return event


# Email (the SNS `email` protocol body and subject)


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c if c.isascii() else "?" for c in decomposed if not unicodedata.combining(c))


def email_subject(message: AlertMessage) -> str:
    """`[CRITICAL] summary` or `[RESOLVED] summary`: one ASCII line under 100 characters."""
    state = "RESOLVED" if message["status"] == AlertStatus.RESOLVED else message["severity"].upper()
    subject = " ".join(_ascii(f"[{state}] {message['summary']}").split())
    return truncate(subject, EMAIL_SUBJECT_MAX, "...")


def email_text(message: AlertMessage, now: datetime | None = None) -> tuple[str, str]:
    """A subject and a plain-text body that reads as a message, for email subscribers.

    `now` is when the message is published; without it the body says when the
    alert started but not for how long it has been firing.
    """
    resolved = message["status"] == AlertStatus.RESOLVED
    started_at = parse_instant(message["started_at"])
    end = (parse_instant(message.get("resolved_at")) if resolved else None) or now
    duration = max(end - started_at, timedelta(0)) if end and started_at else None
    if resolved:
        lead = f"RESOLVED: this alert on {message['host']} is no longer firing"
        if duration is not None:
            lead += f" (it fired for {format_duration(duration)})"
    else:
        lead = f"{message['severity'].upper()} alert firing on {message['host']}"
        if duration is not None:
            lead += f" for {format_duration(duration)}"
    lines = [lead + ".", "", message["summary"], ""]
    rows: list[tuple[str, str]] = [
        ("Host", message["host"]),
        ("Rule", f"{message['rule']} ({message['kind']})"),
    ]
    value = value_text(message)
    if value is not None:
        rows.append(("Value", value))
    rows += [("Severity", message["severity"]), ("Status", message["status"])]
    rows.append(("Started", format_instant(started_at)))
    if resolved:
        rows.append(("Resolved", format_instant(parse_instant(message.get("resolved_at")))))
    if message["labels"]:
        rows.append(("Labels", ", ".join(f"{k}={v}" for k, v in message["labels"].items())))
    width = max(len(name) for name, _ in rows) + 2
    lines += [f"{name + ':':<{width}}{value}" for name, value in rows]
    if message["description"]:
        lines += ["", truncate(message["description"], EMAIL_DESCRIPTION_MAX)]
    links = all_links(message, None)
    if links:
        lines += ["", "Links:"]
        lines += [f"  {link['text']}: {link['href']}" for link in links]
    lines += [
        "",
        "--",
        f"fleetpulse alert {message['alert_id']} (dedup key {message['dedup_key']})",
    ]
    return email_subject(message), "\n".join(lines)
