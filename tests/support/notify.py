"""The notifier Lambdas over moto (DynamoDB ledger, SSM secrets) and local Slack/PagerDuty."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from chalice.test import Client

from chalicelib.adapters.aws import AwsClients
from chalicelib.settings import Settings
from chalicelib.wiring import Services, use
from fleetpulse.resources import ledger_table, ttl_definitions
from tests.support.webhooks import ScriptedServer

NOW = datetime(2026, 11, 21, 12, 12, tzinfo=UTC)
# The parts of the secrets that must never show up in a log or the ledger.
SLACK_SECRET_PATH = "/services/T0FLEET/B0PULSE/s3cr3tW3bh00kT0k3n"
ROUTING_KEY = "R0UT1NGk3ys3cr3t0123456789abcdef"


@dataclass
class FakeTime:
    """An injected sleep that only records, and a monotonic clock it moves forward.

    With `real=True` the clock also counts real time (HTTP timeouts are real).
    """

    real: bool = False
    slept: list[float] = field(default_factory=list)
    _start: float = field(default_factory=time.monotonic)

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))

    def monotonic(self) -> float:
        base = time.monotonic() - self._start if self.real else 0.0
        return base + sum(self.slept)


@dataclass
class NotifyRig:
    services: Services
    client: Client
    slack: ScriptedServer
    pagerduty: ScriptedServer
    time: FakeTime

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        return self.client.lambda_.invoke(function, event).payload

    def delivery(self, message_id: str, channel: str) -> dict[str, Any] | None:
        from chalicelib.core.notify import Channel

        return self.services.ledger.delivery(message_id, Channel(channel))  # type: ignore[attr-defined]


def notify_settings(pagerduty_url: str, **env: str) -> Settings:
    return Settings.from_env(
        {
            "FLEETPULSE_PAGERDUTY_URL": pagerduty_url + "/v2/enqueue",
            "FLEETPULSE_NOTIFY_CONNECT_TIMEOUT_SECONDS": "0.5",
            "FLEETPULSE_NOTIFY_READ_TIMEOUT_SECONDS": "0.5",
            **env,
        }
    )


def put_secrets(settings: Settings, slack_url: str, ssm: Any = None) -> None:
    ssm = ssm or boto3.client("ssm", region_name="us-east-1")
    ssm.put_parameter(
        Name=settings.notify.slack_webhook_param,
        Value=slack_url + SLACK_SECRET_PATH,
        Type="SecureString",
    )
    ssm.put_parameter(
        Name=settings.notify.pagerduty_routing_key_param, Value=ROUTING_KEY, Type="SecureString"
    )


def build_services(settings: Settings, fake: FakeTime, slack_url: str) -> Services:
    """Services with the ledger table (only: fast) and the secrets in SSM."""
    services = Services(settings, AwsClients(region="us-east-1"), clock=lambda: NOW)
    dynamodb = services.clients.get("dynamodb")
    dynamodb.create_table(**ledger_table(settings))
    for ttl in ttl_definitions(settings):
        dynamodb.update_time_to_live(**ttl)
    put_secrets(settings, slack_url, services.clients.get("ssm"))
    notifications = services.notifications
    notifications.sleep = fake.sleep
    notifications.monotonic = fake.monotonic
    notifications.jitter = lambda: 0.5
    return services


@pytest.fixture
def rig(aws: None, slack: ScriptedServer, pagerduty: ScriptedServer) -> Iterator[NotifyRig]:
    """Both notifier Lambdas under chalice's test client, secrets in SSM, time injected."""
    fake = FakeTime()
    services = build_services(notify_settings(pagerduty.url), fake, slack.url)
    use(services)
    import app

    with Client(app.app, stage_name="dev") as client:
        yield NotifyRig(services, client, slack, pagerduty, fake)
