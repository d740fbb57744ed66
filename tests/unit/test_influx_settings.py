"""FLEETPULSE_STORE=influxdb: the variables, their checks, and the store they build."""

from __future__ import annotations

import pytest

from chalicelib.adapters.influxdb import InfluxDBMetricStore
from chalicelib.adapters.ssm import SSMParameterSecret
from chalicelib.core.models import InfluxApi
from chalicelib.settings import Settings, SettingsError
from chalicelib.wiring import Services

V2 = {
    "FLEETPULSE_STORE": "influxdb",
    "FLEETPULSE_INFLUX_URL": "https://influx.example.com:8086",
    "FLEETPULSE_INFLUX_ORG": "acme",
    "FLEETPULSE_INFLUX_BUCKET": "fleetpulse",
    "FLEETPULSE_INFLUX_TOKEN": "t0ken",
}
V1 = {
    "FLEETPULSE_STORE": "influxdb",
    "FLEETPULSE_INFLUX_URL": "http://127.0.0.1:8086",
    "FLEETPULSE_INFLUX_API": "v1",
    "FLEETPULSE_INFLUX_DB": "fleetpulse",
}


def test_v2_is_the_default_api_and_the_token_is_never_in_repr():
    s = Settings.from_env(V2)
    assert (s.store, s.influx_api, s.influx_org, s.influx_bucket) == (
        "influxdb",
        InfluxApi.V2,
        "acme",
        "fleetpulse",
    )
    assert s.influx_token == "t0ken"
    assert "t0ken" not in repr(s)
    target = s.influx_target
    assert target.write_url == "https://influx.example.com:8086/api/v2/write"
    assert target.write_params == {"org": "acme", "bucket": "fleetpulse", "precision": "ms"}


def test_v1_needs_only_url_and_database():
    s = Settings.from_env({**V1, "FLEETPULSE_INFLUX_USERNAME": "writer"})
    target = s.influx_target
    assert (target.api, target.database, target.username) == (InfluxApi.V1, "fleetpulse", "writer")
    assert target.write_url == "http://127.0.0.1:8086/write"
    assert target.write_params == {"db": "fleetpulse", "precision": "ms"}


def test_influx_variables_are_ignored_for_timestream():
    s = Settings.from_env({"FLEETPULSE_INFLUX_API": "v9"})
    assert (s.store, s.influx_url) == ("timestream", None)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {**V2, "FLEETPULSE_INFLUX_URL": ""},
            "FLEETPULSE_INFLUX_URL is required when FLEETPULSE_STORE=influxdb",
        ),
        (
            {**V2, "FLEETPULSE_INFLUX_URL": "influx:8086"},
            "FLEETPULSE_INFLUX_URL must be an http:// or https:// URL",
        ),
        ({**V2, "FLEETPULSE_INFLUX_API": "v3"}, "FLEETPULSE_INFLUX_API must be v1 or v2, got 'v3'"),
        (
            {**V2, "FLEETPULSE_INFLUX_ORG": ""},
            "FLEETPULSE_INFLUX_ORG is required when FLEETPULSE_INFLUX_API=v2",
        ),
        (
            {**V2, "FLEETPULSE_INFLUX_BUCKET": " "},
            "FLEETPULSE_INFLUX_BUCKET is required when FLEETPULSE_INFLUX_API=v2",
        ),
        (
            {**V2, "FLEETPULSE_INFLUX_TOKEN": ""},
            "FLEETPULSE_INFLUX_TOKEN or FLEETPULSE_INFLUX_TOKEN_PARAM is required",
        ),
        ({**V2, "FLEETPULSE_INFLUX_TOKEN_PARAM": "/p"}, "not both"),
        (
            {**V2, "FLEETPULSE_INFLUX_USERNAME": "u"},
            "FLEETPULSE_INFLUX_USERNAME applies to FLEETPULSE_INFLUX_API=v1 only",
        ),
        (
            {**V1, "FLEETPULSE_INFLUX_DB": ""},
            "FLEETPULSE_INFLUX_DB is required when FLEETPULSE_INFLUX_API=v1",
        ),
        ({"FLEETPULSE_STORE": "influx"}, "FLEETPULSE_STORE must be timestream or influxdb"),
    ],
)
def test_each_mistake_names_its_variable(env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_the_influxdb_store_is_built_lazily_from_settings():
    services = Services(Settings.from_env(V2))
    store = services.metric_store
    assert isinstance(store, InfluxDBMetricStore)
    assert store.target == services.settings.influx_target
    assert store._session is None  # no connection until the first write


def test_a_token_parameter_becomes_a_secret_read_at_the_first_write_not_before():
    # That the first write reads it from SSM: tests/adapters/test_ssm_secret.py, on moto.
    env = {
        **V2,
        "FLEETPULSE_INFLUX_TOKEN": "",
        "FLEETPULSE_INFLUX_TOKEN_PARAM": "/fleetpulse/dev/influxdb/token",
    }
    services = Services(Settings.from_env(env))
    store = services.metric_store
    assert isinstance(store._token, SSMParameterSecret)
    assert store._token.name == "/fleetpulse/dev/influxdb/token"
    assert "ssm" not in services.clients._clients  # the SSM client waits for the first write
