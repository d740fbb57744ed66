"""Notification settings from the environment: defaults per stage, routing, bounds."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.core.alert_message import Severity
from chalicelib.core.notify import Channel
from chalicelib.settings import Settings, SettingsError, alerts_topic_name


def test_defaults_follow_the_stage():
    notify = Settings.from_env({"FLEETPULSE_STAGE": "prod"}).notify
    assert notify.alerts_topic == "fleetpulse-prod-alerts"
    assert notify.slack_webhook_param == "/fleetpulse/prod/slack-webhook-url"
    assert notify.pagerduty_routing_key_param == "/fleetpulse/prod/pagerduty-routing-key"
    assert notify.pagerduty_url == "https://events.pagerduty.com/v2/enqueue"
    assert notify.slack_webhook_url is None
    assert notify.deadline == timedelta(seconds=20)
    assert notify.lease == timedelta(seconds=45)
    assert notify.routes == {
        Channel.SLACK: {Severity.CRITICAL, Severity.WARNING, Severity.INFO},
        Channel.PAGERDUTY: {Severity.CRITICAL},
        Channel.EMAIL: {Severity.CRITICAL, Severity.WARNING},
    }


def test_topic_name_or_arn_from_the_environment():
    assert alerts_topic_name({}) == "fleetpulse-dev-alerts"
    arn = "arn:aws:sns:eu-west-1:123456789012:alerts"
    assert alerts_topic_name({"FLEETPULSE_ALERTS_TOPIC": arn}) == arn


def test_routes_are_configurable():
    notify = Settings.from_env(
        {
            "FLEETPULSE_ROUTE_PAGERDUTY": "critical, warning",
            "FLEETPULSE_ROUTE_SLACK": "all",
            "FLEETPULSE_ROUTE_EMAIL": "none",
        }
    ).notify
    assert notify.routes[Channel.PAGERDUTY] == {Severity.CRITICAL, Severity.WARNING}
    assert notify.routes[Channel.SLACK] == set(Severity)
    assert notify.routes[Channel.EMAIL] == set()


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        (
            {"FLEETPULSE_ROUTE_SLACK": "critical,urgent"},
            "FLEETPULSE_ROUTE_SLACK: unknown severity urgent",
        ),
        ({"FLEETPULSE_NOTIFY_DEADLINE_SECONDS": "soon"}, "must be a number of seconds"),
        ({"FLEETPULSE_NOTIFY_READ_TIMEOUT_SECONDS": "0"}, "must be more than 0"),
        ({"FLEETPULSE_NOTIFY_MAX_ATTEMPTS": "0"}, "1 or more"),
        ({"FLEETPULSE_LEDGER_LEASE_SECONDS": "15"}, "LEASE_SECONDS must be longer than"),
    ],
)
def test_bad_settings_are_named(env, complaint):
    with pytest.raises(SettingsError, match=complaint):
        Settings.from_env(env)
