"""Shared fixtures. Nothing in the suite can reach real AWS: credentials are fake."""

from __future__ import annotations

import os

import pytest

# Set before anything imports boto3 or powertools.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_METRICS_NAMESPACE": "fleetpulse",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
)
for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "FLEETPULSE_AWS_ENDPOINT_URL"):
    os.environ.pop(var, None)

from tests.support.alerting_aws import alerting_stack  # noqa: E402
from tests.support.aws import aws, aws_services  # noqa: E402
from tests.support.history import history_api  # noqa: E402
from tests.support.http import (  # noqa: E402
    api,
    fleet_token,
    memory_api,
    memory_services,
)
from tests.support.influx_v2 import influx_v1_shape, influx_v2  # noqa: E402
from tests.support.influxd import influxd  # noqa: E402
from tests.support.notify import rig  # noqa: E402
from tests.support.targets import dns_server, pki, tcp_ports, trusted_ca, web  # noqa: E402
from tests.support.webhooks import pagerduty, slack  # noqa: E402

__all__ = [
    "alerting_stack",
    "api",
    "aws",
    "aws_services",
    "dns_server",
    "fleet_token",
    "history_api",
    "influx_v1_shape",
    "influx_v2",
    "influxd",
    "memory_api",
    "memory_services",
    "pagerduty",
    "pki",
    "rig",
    "slack",
    "tcp_ports",
    "trusted_ca",
    "web",
]


@pytest.fixture(autouse=True)
def _reset_services():
    """Each test starts with no cached services (the app builds them lazily)."""
    from chalicelib.wiring import use

    use(None)
    yield
    use(None)
