"""FLEETPULSE_SCAN_SEGMENTS: how many parallel segments the evaluation's Scan reads."""

from __future__ import annotations

import pytest

from chalicelib.adapters.aws import AwsClients
from chalicelib.settings import Settings, SettingsError
from chalicelib.wiring import Services


def test_the_hosts_scan_reads_four_segments_unless_told():
    assert Settings.from_env({}).scan_segments == 4
    assert Settings.from_env({"FLEETPULSE_SCAN_SEGMENTS": "1"}).scan_segments == 1
    assert Settings.from_env({"FLEETPULSE_SCAN_SEGMENTS": "10"}).scan_segments == 10


@pytest.mark.parametrize("raw", ["0", "11", "-1", "four", "2.5"])
def test_a_segment_count_a_client_cannot_run_is_refused_by_name(raw):
    with pytest.raises(
        SettingsError, match=f"FLEETPULSE_SCAN_SEGMENTS .* from 1 to 10, got '{raw}'"
    ):
        Settings.from_env({"FLEETPULSE_SCAN_SEGMENTS": raw})


def test_the_wired_host_store_reads_the_configured_segments():
    settings = Settings.from_env({"FLEETPULSE_SCAN_SEGMENTS": "6"})
    services = Services(settings, AwsClients("us-east-1"))
    assert services.host_store.scan_segments == 6
