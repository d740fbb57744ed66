"""Runtime settings, from environment variables (set per stage in .chalice/config.json)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from chalicelib.core.durations import parse_duration
from chalicelib.core.limits import Limits


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    stage: str = "dev"
    region: str | None = None
    endpoint_url: str | None = None  # the local stack's embedded AWS
    tokens_table: str = "fleetpulse-dev-tokens"
    hosts_table: str = "fleetpulse-dev-hosts"
    alerts_table: str = "fleetpulse-dev-alerts"
    silences_table: str = "fleetpulse-dev-silences"
    ledger_table: str = "fleetpulse-dev-ledger"
    alerts_topic_arn: str | None = None
    store: str = "timestream"
    timestream_database: str = "fleetpulse-dev"
    timestream_table: str = "metrics"
    token_cache: timedelta = timedelta(seconds=60)
    limits: Limits = field(default_factory=Limits)
    # Alerting (docs/ALERTING.md).
    rules_path: str | None = None  # None: chalicelib/rules/default.yaml
    heartbeat_grace: timedelta = timedelta(minutes=2)
    outage_share: float = 0.3
    outage_min_hosts: int = 3
    retired_retention: timedelta = timedelta(days=7)
    resolved_retention: timedelta = timedelta(hours=24)
    status_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        stage = env.get("FLEETPULSE_STAGE", "dev")

        def name(var: str, default: str) -> str:
            return env.get(var) or default

        store = env.get("FLEETPULSE_STORE", "timestream")
        if store not in ("timestream", "influxdb"):
            raise SettingsError(f"FLEETPULSE_STORE must be timestream or influxdb, got {store!r}")
        try:
            cache_s = int(env.get("FLEETPULSE_TOKEN_CACHE_SECONDS", "60"))
            limits = Limits.from_env(env)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        if cache_s < 0:
            raise SettingsError("FLEETPULSE_TOKEN_CACHE_SECONDS must be 0 or more")

        def duration(var: str, default: str) -> timedelta:
            try:
                return parse_duration(env.get(var) or default)
            except ValueError as exc:
                raise SettingsError(f"{var} {exc}") from None

        try:
            outage_share = float(env.get("FLEETPULSE_OUTAGE_SHARE") or "0.3")
            outage_min_hosts = int(env.get("FLEETPULSE_OUTAGE_MIN_HOSTS") or "3")
        except ValueError as exc:
            raise SettingsError(f"FLEETPULSE_OUTAGE_SHARE/MIN_HOSTS: {exc}") from None
        if not 0 < outage_share <= 1:
            raise SettingsError("FLEETPULSE_OUTAGE_SHARE must be above 0 and at most 1")
        if outage_min_hosts < 1:
            raise SettingsError("FLEETPULSE_OUTAGE_MIN_HOSTS must be 1 or more")
        return cls(
            stage=stage,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
            endpoint_url=env.get("FLEETPULSE_AWS_ENDPOINT_URL") or env.get("AWS_ENDPOINT_URL"),
            tokens_table=name("FLEETPULSE_TOKENS_TABLE", f"fleetpulse-{stage}-tokens"),
            hosts_table=name("FLEETPULSE_HOSTS_TABLE", f"fleetpulse-{stage}-hosts"),
            alerts_table=name("FLEETPULSE_ALERTS_TABLE", f"fleetpulse-{stage}-alerts"),
            silences_table=name("FLEETPULSE_SILENCES_TABLE", f"fleetpulse-{stage}-silences"),
            ledger_table=name("FLEETPULSE_LEDGER_TABLE", f"fleetpulse-{stage}-ledger"),
            alerts_topic_arn=env.get("FLEETPULSE_ALERTS_TOPIC_ARN") or None,
            store=store,
            timestream_database=name("FLEETPULSE_TIMESTREAM_DATABASE", f"fleetpulse-{stage}"),
            timestream_table=name("FLEETPULSE_TIMESTREAM_TABLE", "metrics"),
            token_cache=timedelta(seconds=cache_s),
            limits=limits,
            rules_path=env.get("FLEETPULSE_RULES") or None,
            heartbeat_grace=duration("FLEETPULSE_HEARTBEAT_GRACE", "2m"),
            outage_share=outage_share,
            outage_min_hosts=outage_min_hosts,
            retired_retention=duration("FLEETPULSE_RETIRED_RETENTION", "7d"),
            resolved_retention=duration("FLEETPULSE_RESOLVED_RETENTION", "24h"),
            status_url=env.get("FLEETPULSE_STATUS_URL") or None,
        )
