"""Ingest limits, with the defaults documented in docs/CONFIGURATION.md.

Several of these are Timestream's own hard limits; they are enforced here
because moto, which the tests run against, enforces none of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import timedelta

# Timestream for LiveAnalytics service limits (AWS docs, "Quotas").
TIMESTREAM_MAX_RECORDS_PER_WRITE = 100
TIMESTREAM_MAX_RECORD_BYTES = 2048
TIMESTREAM_MAX_DIMENSIONS = 128
TIMESTREAM_MAX_DIMENSION_NAME_BYTES = 60
TIMESTREAM_MAX_SERIES_DIMENSION_BYTES = 2048
TIMESTREAM_MAX_MEASURE_NAME_BYTES = 256
TIMESTREAM_MAX_MEASURES_PER_RECORD = 256
TIMESTREAM_MAX_MEASURE_VALUE_BYTES = 2048
TIMESTREAM_FUTURE_WINDOW = timedelta(minutes=15)
# The evaluation's Scan of the hosts table runs its parallel segments on threads of one
# client, whose connection pool holds 10 (botocore's default): FLEETPULSE_SCAN_SEGMENTS.
MAX_SCAN_SEGMENTS = 10


@dataclass(frozen=True, slots=True)
class Limits:
    """What one ingest request may carry. Every field has an env override."""

    max_body_bytes: int = 1024 * 1024  # as sent (compressed or not)
    max_decompressed_bytes: int = 10 * 1024 * 1024  # after gzip: refuses gzip bombs
    max_points: int = 5000
    max_events: int = 1000
    max_hosts: int = 100  # distinct hosts in one request (Vinli and numbat shapes)
    max_tags: int = 32  # per point, and per host
    max_fields: int = 200  # per point
    max_name_bytes: int = 128  # measurement, field and service names
    max_tag_key_bytes: int = TIMESTREAM_MAX_DIMENSION_NAME_BYTES
    max_tag_value_bytes: int = 256
    max_string_field_bytes: int = 1024
    max_host_bytes: int = 253  # a DNS name
    # Latest values one post may add to its host's item (core/hosts.py, Tracking).
    max_tracked_series: int = 200
    max_tracked_services: int = 100
    # Points older than the store's hot window cannot be written (Timestream's
    # memory store) unless the table takes magnetic store writes: then anything
    # the magnetic store still keeps is accepted. Points further ahead than the
    # future window are refused too.
    memory_retention: timedelta = timedelta(hours=2)
    magnetic_retention: timedelta | None = None
    future_window: timedelta = TIMESTREAM_FUTURE_WINDOW

    @property
    def oldest_accepted(self) -> timedelta:
        """How old a point may be and still be stored."""
        if self.magnetic_retention is not None:
            return max(self.magnetic_retention, self.memory_retention)
        return self.memory_retention

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Limits:
        """Read `FLEETPULSE_<FIELD>` overrides (`FLEETPULSE_MAX_POINTS=1000`).

        Durations are given in seconds, except `FLEETPULSE_MEMORY_RETENTION_HOURS` and
        `FLEETPULSE_MAGNETIC_RETENTION_DAYS` (set when the table takes magnetic store
        writes; empty or absent when it does not).
        """
        overrides: dict[str, object] = {}
        for f in fields(cls):
            if f.name == "memory_retention":
                raw = env.get("FLEETPULSE_MEMORY_RETENTION_HOURS")
                if raw is not None:
                    overrides[f.name] = timedelta(
                        hours=_positive_int("memory_retention_hours", raw)
                    )
                continue
            if f.name == "magnetic_retention":
                raw = env.get("FLEETPULSE_MAGNETIC_RETENTION_DAYS")
                if raw:
                    overrides[f.name] = timedelta(
                        days=_positive_int("magnetic_retention_days", raw)
                    )
                continue
            raw = env.get(f"FLEETPULSE_{f.name.upper()}")
            if raw is None:
                continue
            if f.name == "future_window":
                overrides[f.name] = timedelta(seconds=_positive_int(f.name, raw))
            else:
                overrides[f.name] = _positive_int(f.name, raw)
        return cls(**overrides)  # type: ignore[arg-type]


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"FLEETPULSE_{name.upper()} must be an integer, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"FLEETPULSE_{name.upper()} must be positive, got {value}")
    return value
