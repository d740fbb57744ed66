"""moto-backed AWS for adapter and handler tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from moto import mock_aws

from chalicelib.adapters.aws import AwsClients
from chalicelib.settings import Settings
from chalicelib.wiring import Services
from fleetpulse.resources import create_all

FIXED_NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def aws_services(aws: None) -> Services:
    """Services over moto with every table and the Timestream table created."""
    settings = Settings.from_env({"FLEETPULSE_TOKEN_CACHE_SECONDS": "0"})
    services = Services(settings, AwsClients(region="us-east-1"))
    create_all(settings, services.clients)
    return services


class WriteRecordsCapture:
    """Records every WriteRecords request a boto3 client sends, as sent.

    moto drops CommonAttributes, so tests read what was stored through
    `stored()`, which merges them back the way Timestream does.
    """

    def __init__(self, client: Any) -> None:
        self.requests: list[dict[str, Any]] = []
        client.meta.events.register(
            "provide-client-params.timestream-write.WriteRecords", self._capture
        )

    def _capture(self, params: dict[str, Any], **_: Any) -> None:
        self.requests.append(params)

    def stored(self) -> list[dict[str, Any]]:
        from chalicelib.core.timestream import expand_records

        out: list[dict[str, Any]] = []
        for request in self.requests:
            out.extend(expand_records(request.get("CommonAttributes", {}), request["Records"]))
        return out


def dims(record: dict[str, Any]) -> dict[str, str]:
    return {d["Name"]: d["Value"] for d in record["Dimensions"]}


def measures(record: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {m["Name"]: (m["Value"], m["Type"]) for m in record["MeasureValues"]}
