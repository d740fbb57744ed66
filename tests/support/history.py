"""The collector over a real influxd, with a clock the test moves: history written days apart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.core.instants import ms_of_instant
from chalicelib.settings import Settings
from chalicelib.wiring import Services
from tests.support.http import Api, _client
from tests.support.memory import InMemoryHostStore, InMemoryTokenStore

# An hour boundary: 5-minute points fill whole hours, so bucket values are exact.
HISTORY_NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


class HistoryApi(Api):
    clock: Clock
    database: str

    def post_points(
        self,
        token: str,
        host: str,
        measurement: str,
        values: list[tuple[datetime, dict[str, float]]],
        tags: dict[str, str] | None = None,
    ) -> None:
        """Post `values` as the collector would get them, its clock at the newest point."""
        for start in range(0, len(values), 200):
            chunk = values[start : start + 200]
            self.clock.at = chunk[-1][0] + timedelta(seconds=30)
            body = {
                "host": host,
                "points": [
                    {
                        "measurement": measurement,
                        "time": ms_of_instant(at),
                        "tags": tags or {},
                        "fields": fields,
                    }
                    for at, fields in chunk
                ],
            }
            response = self.post("/v1/ingest", body, token=token)
            assert response.status_code == 202, response.body
            assert json_body(response)["rejected"] == [], json_body(response)["rejected"][:3]

    def heartbeat(self, token: str, host: str, at: datetime) -> None:
        """A post with no points at `at`: the host is up then."""
        self.clock.at = at
        body = {"host": host, "heartbeat": {"interval": 60, "state": "alive"}, "points": []}
        response = self.post("/v1/ingest", body, token=token)
        assert response.status_code == 202, response.body

    def series(self, token: str, **params: str) -> Any:
        from urllib.parse import urlencode

        return self.get("/v1/series?" + urlencode(params), token=token)


def json_body(response: Any) -> Any:
    import json

    return json.loads(response.body)


def influx_services(influxd: Any, database: str, clock: Clock) -> Services:
    settings = Settings.from_env(
        {
            "FLEETPULSE_TOKEN_CACHE_SECONDS": "0",
            "FLEETPULSE_STORE": "influxdb",
            "FLEETPULSE_INFLUX_URL": influxd.url,
            "FLEETPULSE_INFLUX_API": "v1",
            "FLEETPULSE_INFLUX_DB": database,
            "FLEETPULSE_INFLUX_USERNAME": influxd.username,
            "FLEETPULSE_INFLUX_TOKEN": influxd.password,
            # Eight days of history go in through the collector: the window a deploy gets
            # from its stage config (365 days), not the 2 h memory store's alone.
            "FLEETPULSE_MAGNETIC_RETENTION_DAYS": "365",
        }
    )
    services = Services(settings, clock=clock)
    services.__dict__["token_store"] = InMemoryTokenStore()
    services.__dict__["host_store"] = InMemoryHostStore()
    return services


@pytest.fixture
def history_api(influxd: Any) -> Iterator[HistoryApi]:
    """The app writing to and reading from its own database on the session's influxd."""
    database = influxd.new_database()
    clock = Clock(HISTORY_NOW)
    services = influx_services(influxd, database, clock)
    for client in _client(services):
        api = HistoryApi(client, services)
        api.clock = clock
        api.database = database
        yield api
