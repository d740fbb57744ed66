"""SNSAlertPublisher: alert transitions to the `alerts` topic (Contract 2)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from chalicelib.core.alert_message import AlertMessage, message_attributes
from chalicelib.core.ports import BackendUnavailable

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient


def email_text(message: AlertMessage) -> tuple[str, str]:
    """A subject and a plain-text body for email subscribers (who would otherwise get JSON)."""
    state = "RESOLVED" if message["status"] == "resolved" else message["severity"].upper()
    subject = f"[{state}] {message['summary']}"
    lines = [
        message["summary"],
        "",
        f"Status:   {message['status']}",
        f"Severity: {message['severity']}",
        f"Host:     {message['host']}",
        f"Rule:     {message['rule']}",
        f"Started:  {message['started_at']}",
    ]
    if message.get("resolved_at"):
        lines.append(f"Resolved: {message['resolved_at']}")
    if message.get("description"):
        lines += ["", message["description"]]
    for link in message.get("links", []):
        lines.append(f"{link.get('text') or 'Link'}: {link['href']}")
    # SNS refuses subjects over 100 characters or with line breaks.
    subject = " ".join(subject.split())
    return (subject if len(subject) <= 100 else subject[:99] + "…"), "\n".join(lines)


class SNSAlertPublisher:
    """Publishes one message per transition with `MessageStructure=json`: subscribers
    that read JSON (the notifier Lambdas) get Contract 2, email gets text."""

    def __init__(self, client: SNSClient, topic_arn: str) -> None:
        self.client = client
        self.topic_arn = topic_arn

    def publish(self, message: AlertMessage) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        subject, body = email_text(message)
        attributes: dict[str, Any] = {
            name: {"DataType": "String", "StringValue": value}
            for name, value in message_attributes(message).items()
        }
        try:
            self.client.publish(
                TopicArn=self.topic_arn,
                MessageStructure="json",
                Message=json.dumps({"default": json.dumps(message), "email": body}),
                Subject=subject,
                MessageAttributes=attributes,
            )
        except (ClientError, BotoCoreError) as exc:
            raise BackendUnavailable(f"SNS publish: {exc}") from exc
