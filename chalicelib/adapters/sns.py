"""SNSAlertPublisher: alert transitions to the `alerts` topic (Contract 2)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chalicelib.core.alert_message import AlertMessage, message_attributes
from chalicelib.core.ports import BackendUnavailable
from chalicelib.core.render import email_text

__all__ = ["SNSAlertPublisher", "email_text"]

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient


class SNSAlertPublisher:
    """Publishes one message per transition with `MessageStructure=json`: subscribers
    that read JSON (the notifier Lambdas) get Contract 2 as the `default` body,
    email subscriptions get the `email` body, plain text, with an ASCII subject.

    `clock` says when the message goes out, so the email can say how long the
    alert has been firing.
    """

    def __init__(
        self,
        client: SNSClient,
        topic_arn: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.topic_arn = topic_arn
        self.clock = clock

    def publish(self, message: AlertMessage) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        subject, body = email_text(message, self.clock())
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
