"""The whole app over moto with an alerts topic, a queue reading it, and a clock tests move."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from chalice.test import Client

from chalicelib.adapters.aws import AwsClients
from chalicelib.core.alert_message import parse_alert_message
from chalicelib.core.instants import ms_of_instant
from chalicelib.settings import Settings
from chalicelib.wiring import Services, use
from fleetpulse.resources import create_all
from tests.support.alerting import T0
from tests.support.http import add_token

TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:fleetpulse-dev-alerts"


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> datetime:
        self.at += delta
        return self.at


@dataclass
class AlertingStack:
    client: Client
    services: Services
    clock: Clock
    queue_url: str
    fleet_token: str = ""
    admin_token: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)

    def post(self, host: str, *, disk: float | None = None, **body: Any) -> Any:
        now_ms = ms_of_instant(self.clock())
        payload: dict[str, Any] = {"host": host, "heartbeat": {"interval": 60}, **body}
        if disk is not None:
            payload["points"] = [
                {
                    "measurement": "disk",
                    "time": now_ms,
                    "tags": {"mount": "/"},
                    "fields": {"used_percent": disk},
                }
            ]
        response = self.client.http.post(
            "/v1/ingest",
            headers={
                "Authorization": f"Bearer {self.fleet_token}",
                "Content-Type": "application/json",
            },
            body=json.dumps(payload),
        )
        assert response.status_code == 202, response.body
        return response

    def evaluate(self) -> dict[str, Any]:
        event = self.client.events.generate_cw_event(
            source="aws.events",
            detail_type="Scheduled Event",
            detail={},
            resources=["arn:aws:events:us-east-1:123456789012:rule/fleetpulse-dev-evaluate"],
        )
        return self.client.lambda_.invoke("evaluate", event).payload

    def messages(self) -> list[dict[str, Any]]:
        """Every alert message published so far, as a subscriber reads it."""
        sqs = self.services.clients.get("sqs")
        while True:
            batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not batch:
                break
            for m in batch:
                envelope = json.loads(m["Body"])
                message = parse_alert_message(json.loads(envelope["Message"]))
                attributes = {k: v["Value"] for k, v in envelope["MessageAttributes"].items()}
                self.received.append({**message, "_attributes": attributes})
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
        return self.received

    def request(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token or self.admin_token}"}
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not None:
            headers["Content-Type"] = "application/json"
            kwargs["body"] = json.dumps(body)
        return getattr(self.client.http, method.lower())(path, **kwargs)


def subscribed_queue(clients: AwsClients, topic_arn: str) -> str:
    sqs = clients.get("sqs")
    queue = sqs.create_queue(QueueName=f"alerts-reader-{time.monotonic_ns()}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    clients.get("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    return queue


@pytest.fixture
def alerting_stack(aws: None, tmp_path: Any) -> Iterator[AlertingStack]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - name: disk-full\n"
        "    measurement: disk\n"
        "    field: used_percent\n"
        '    op: ">"\n'
        "    warning: 85\n"
        "    critical: 95\n"
        "    for: 2m\n"
        '    summary: "Disk {tags[mount]} at {value:.0f}% on {host}"\n'
        "    runbook: https://runbooks.example/disk\n"
    )
    settings = Settings.from_env(
        {
            "FLEETPULSE_TOKEN_CACHE_SECONDS": "0",
            "FLEETPULSE_ALERTS_TOPIC_ARN": TOPIC_ARN,
            "FLEETPULSE_RULES": str(rules),
            "FLEETPULSE_STATUS_URL": "https://status.example/status",
        }
    )
    clock = Clock(T0)
    services = Services(settings, AwsClients(region="us-east-1"), clock=clock)
    create_all(settings, services.clients)
    queue = subscribed_queue(services.clients, TOPIC_ARN)
    use(services)
    import app

    with Client(app.app, stage_name="dev") as client:
        stack = AlertingStack(client, services, clock, queue)
        stack.fleet_token = add_token(services, "fleet")
        stack.admin_token = add_token(services, "admin")
        yield stack
