"""SSMParameterSecret against moto: the InfluxDB token read once, errors that never leak it."""

from __future__ import annotations

import boto3
import pytest

from chalicelib.adapters.ssm import SSMParameters, SSMParameterSecret
from chalicelib.core.ports import BackendUnavailable
from chalicelib.settings import Settings
from chalicelib.wiring import Services
from tests.support.influx_v2 import InfluxWriteServer
from tests.unit.test_influx_settings import V2


def test_a_secure_string_is_read_once_and_kept(aws):
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/fleetpulse/dev/influxdb/token", Value="t0ken", Type="SecureString")
    calls = []

    def client():
        calls.append(1)
        return ssm

    secret = SSMParameterSecret(SSMParameters(client), "/fleetpulse/dev/influxdb/token")
    assert secret() == "t0ken"
    ssm.put_parameter(
        Name="/fleetpulse/dev/influxdb/token", Value="rotated", Type="SecureString", Overwrite=True
    )
    assert secret() == "t0ken"  # one read per container
    assert len(calls) == 1
    assert "t0ken" not in repr(secret)


def test_a_missing_parameter_is_backend_unavailable_naming_it(aws):
    secret = SSMParameterSecret(
        SSMParameters(lambda: boto3.client("ssm")), "/fleetpulse/dev/influxdb/none"
    )
    with pytest.raises(BackendUnavailable, match="/fleetpulse/dev/influxdb/none does not exist"):
        secret()


def test_the_store_reads_its_token_from_ssm_at_the_first_write(aws, influx_v2: InfluxWriteServer):
    boto3.client("ssm").put_parameter(
        Name="/fleetpulse/dev/influxdb/token", Value=influx_v2.token, Type="SecureString"
    )
    env = {
        **V2,
        "FLEETPULSE_INFLUX_URL": influx_v2.url,
        "FLEETPULSE_INFLUX_ORG": influx_v2.org,
        "FLEETPULSE_INFLUX_BUCKET": influx_v2.bucket,
        "FLEETPULSE_INFLUX_TOKEN": "",
        "FLEETPULSE_INFLUX_TOKEN_PARAM": "/fleetpulse/dev/influxdb/token",
    }
    from chalicelib.core.models import HostReport, Point

    services = Services(Settings.from_env(env))
    store = services.metric_store
    assert "ssm" not in services.clients._clients  # building the store reads nothing
    report = HostReport("web-1", points=[Point("cpu", 1_795_000_000_000, {}, {"user": 1.0})])
    assert store.write([report]) == []
    assert "ssm" in services.clients._clients
    assert influx_v2.problems == []
    assert influx_v2.requests[0].headers["authorization"] == f"Token {influx_v2.token}"
