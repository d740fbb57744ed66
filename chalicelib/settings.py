"""Runtime settings, from environment variables (set per stage in .chalice/config.json)."""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from chalicelib.core.alert_message import Severity
from chalicelib.core.durations import parse_duration
from chalicelib.core.influx import InfluxTarget
from chalicelib.core.limits import MAX_SCAN_SEGMENTS, Limits
from chalicelib.core.models import InfluxApi
from chalicelib.core.notify import Channel
from chalicelib.core.render import PAGERDUTY_EVENTS_URL
from chalicelib.names import alerts_topic_name


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


class MetricBackend(enum.StrEnum):
    """FLEETPULSE_STORE: where points (and alert annotations) are written."""

    TIMESTREAM = "timestream"
    INFLUXDB = "influxdb"


# Which severities each channel takes (SNS filter policies on `severity`, and
# a guard in the notifier Lambdas): docs/NOTIFICATIONS.md, Routing.
DEFAULT_ROUTES: dict[Channel, frozenset[Severity]] = {
    Channel.SLACK: frozenset(Severity),
    Channel.PAGERDUTY: frozenset({Severity.CRITICAL}),
    Channel.EMAIL: frozenset({Severity.CRITICAL, Severity.WARNING}),
}


def parse_severities(var: str, value: str) -> frozenset[Severity]:
    """`critical,warning`, `all` or `none`."""
    words = {w.strip().lower() for w in value.split(",") if w.strip()}
    if words == {"all"}:
        return frozenset(Severity)
    if words in ({"none"}, set()):
        return frozenset()
    known = {s.value for s in Severity}
    unknown = sorted(words - known)
    if unknown:
        raise SettingsError(
            f"{var}: unknown severity {', '.join(unknown)} (use {', '.join(sorted(known))}, all or none)"
        )
    return frozenset(Severity(w) for w in words)


@dataclass(frozen=True)
class NotifySettings:
    """The notifier Lambdas and the routing of alerts to channels."""

    alerts_topic: str = "fleetpulse-dev-alerts"
    # A literal webhook URL (the local stack, tests); otherwise it is read from SSM.
    slack_webhook_url: str | None = None
    slack_webhook_param: str = "/fleetpulse/dev/slack-webhook-url"
    pagerduty_url: str = PAGERDUTY_EVENTS_URL
    pagerduty_routing_key_param: str = "/fleetpulse/dev/pagerduty-routing-key"
    status_page_url: str | None = None
    routes: Mapping[Channel, frozenset[Severity]] = field(default_factory=lambda: DEFAULT_ROUTES)
    alert_emails: tuple[str, ...] = ()
    failure_queue: str = "fleetpulse-dev-notify-failures"
    connect_timeout: timedelta = timedelta(seconds=3.05)
    read_timeout: timedelta = timedelta(seconds=5)
    # The whole delivery (attempts and waits) in one invocation; the notifier
    # Lambdas' timeout (30 s) leaves room for the ledger around it.
    deadline: timedelta = timedelta(seconds=20)
    max_attempts: int = 5
    # Longer than the notifier Lambdas' timeout (30 s): a live invocation never
    # loses its claim. Shorter than the minute before Lambda's first retry: a
    # crashed invocation's claim is free again when the retry comes.
    lease: timedelta = timedelta(seconds=45)

    @classmethod
    def from_env(cls, env: Mapping[str, str], stage: str) -> NotifySettings:
        def seconds(var: str, default: float) -> timedelta:
            raw = env.get(var)
            try:
                value = float(raw) if raw else default
            except ValueError:
                raise SettingsError(f"{var} must be a number of seconds, got {raw!r}") from None
            if value <= 0:
                raise SettingsError(f"{var} must be more than 0")
            return timedelta(seconds=value)

        routes = {
            channel: parse_severities(var, env[var]) if var in env else DEFAULT_ROUTES[channel]
            for channel, var in (
                (Channel.SLACK, "FLEETPULSE_ROUTE_SLACK"),
                (Channel.PAGERDUTY, "FLEETPULSE_ROUTE_PAGERDUTY"),
                (Channel.EMAIL, "FLEETPULSE_ROUTE_EMAIL"),
            )
        }
        try:
            max_attempts = int(env.get("FLEETPULSE_NOTIFY_MAX_ATTEMPTS") or 5)
        except ValueError:
            raise SettingsError("FLEETPULSE_NOTIFY_MAX_ATTEMPTS must be a whole number") from None
        if max_attempts < 1:
            raise SettingsError("FLEETPULSE_NOTIFY_MAX_ATTEMPTS must be 1 or more")
        deadline = seconds("FLEETPULSE_NOTIFY_DEADLINE_SECONDS", 20)
        lease = seconds("FLEETPULSE_LEDGER_LEASE_SECONDS", 45)
        if lease <= deadline:
            raise SettingsError(
                "FLEETPULSE_LEDGER_LEASE_SECONDS must be longer than FLEETPULSE_NOTIFY_DEADLINE_SECONDS"
            )
        return cls(
            alerts_topic=alerts_topic_name(env),
            slack_webhook_url=env.get("FLEETPULSE_SLACK_WEBHOOK_URL") or None,
            slack_webhook_param=env.get("FLEETPULSE_SLACK_WEBHOOK_PARAM")
            or f"/fleetpulse/{stage}/slack-webhook-url",
            pagerduty_url=env.get("FLEETPULSE_PAGERDUTY_URL") or PAGERDUTY_EVENTS_URL,
            pagerduty_routing_key_param=env.get("FLEETPULSE_PAGERDUTY_ROUTING_KEY_PARAM")
            or f"/fleetpulse/{stage}/pagerduty-routing-key",
            status_page_url=env.get("FLEETPULSE_STATUS_URL") or None,
            routes=routes,
            alert_emails=tuple(
                e.strip() for e in env.get("FLEETPULSE_ALERT_EMAILS", "").split(",") if e.strip()
            ),
            failure_queue=env.get("FLEETPULSE_NOTIFY_FAILURE_QUEUE")
            or f"fleetpulse-{stage}-notify-failures",
            connect_timeout=seconds("FLEETPULSE_NOTIFY_CONNECT_TIMEOUT_SECONDS", 3.05),
            read_timeout=seconds("FLEETPULSE_NOTIFY_READ_TIMEOUT_SECONDS", 5),
            deadline=deadline,
            max_attempts=max_attempts,
            lease=lease,
        )


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
    jobs_table: str = "fleetpulse-dev-jobs"
    series_table: str = "fleetpulse-dev-series"  # each host's series catalog (host page)
    ping_base_url: str | None = None  # jobs' ping URLs; None: the request's own (docs/JOBS.md)
    alerts_topic_arn: str | None = None
    store: MetricBackend = MetricBackend.TIMESTREAM
    timestream_database: str = "fleetpulse-dev"
    timestream_table: str = "metrics"
    token_cache: timedelta = timedelta(seconds=60)
    limits: Limits = field(default_factory=Limits)
    notify: NotifySettings = field(default_factory=NotifySettings)
    # FLEETPULSE_STORE=influxdb (docs/INFLUXDB.md)
    influx_url: str | None = None
    influx_api: InfluxApi = InfluxApi.V2
    influx_db: str | None = None  # v1
    influx_org: str | None = None  # v2
    influx_bucket: str | None = None  # v2
    influx_username: str | None = None  # v1 basic auth, the token being the password
    influx_token: str | None = field(default=None, repr=False)
    influx_token_param: str | None = None  # SSM SecureString name, read on first write

    @property
    def influx_target(self) -> InfluxTarget:
        return InfluxTarget(
            url=self.influx_url or "",
            api=self.influx_api,
            database=self.influx_db,
            org=self.influx_org,
            bucket=self.influx_bucket,
            username=self.influx_username,
        )

    # Alerting (docs/ALERTING.md).
    rules_path: str | None = None  # None: chalicelib/rules/default.yaml
    heartbeat_grace: timedelta = timedelta(minutes=2)
    outage_share: float = 0.3
    outage_min_hosts: int = 3
    retired_retention: timedelta = timedelta(days=7)
    resolved_retention: timedelta = timedelta(hours=24)
    # Parallel segments of the evaluation's Scan of the hosts table (docs/ARCHITECTURE.md).
    scan_segments: int = 4
    status_url: str | None = None
    # GET /status without a token (docs/LOCAL.md, the status page).
    status_public: bool = False
    # Remote checks (docs/CHECKS.md).
    checks_path: str | None = None  # None: chalicelib/checks/default.yaml
    checks_table: str = "fleetpulse-dev-checks"
    checks_runner: str | None = None  # the runner Lambda; None: batches run in-process
    checks_location: str = "us-east-1"  # this deployment's location; default: its region
    checks_simulate_locations: bool = False  # the local stack runs every location itself
    checks_batch: int = 50
    checks_window: timedelta = timedelta(minutes=1)
    checks_ca_file: str | None = None  # an extra CA bundle for http/tls checks
    # A location away from home: the home collector's URL, and its fleet token's SSM name
    # (or the token itself, for the local stack and tests).
    checks_home_url: str | None = None
    checks_home_token_param: str | None = None
    checks_home_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        stage = env.get("FLEETPULSE_STAGE", "dev")

        def name(var: str, default: str) -> str:
            return env.get(var) or default

        raw_store = env.get("FLEETPULSE_STORE", MetricBackend.TIMESTREAM)
        try:
            store = MetricBackend(raw_store)
        except ValueError:
            raise SettingsError(
                f"FLEETPULSE_STORE must be timestream or influxdb, got {raw_store!r}"
            ) from None
        try:
            cache_s = int(env.get("FLEETPULSE_TOKEN_CACHE_SECONDS", "60"))
            limits = Limits.from_env(env)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        if cache_s < 0:
            raise SettingsError("FLEETPULSE_TOKEN_CACHE_SECONDS must be 0 or more")
        influx = _influx_settings(env) if store is MetricBackend.INFLUXDB else {}

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
        scan_segments = _scan_segments(env)
        return cls(
            stage=stage,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
            endpoint_url=env.get("FLEETPULSE_AWS_ENDPOINT_URL") or env.get("AWS_ENDPOINT_URL"),
            tokens_table=name("FLEETPULSE_TOKENS_TABLE", f"fleetpulse-{stage}-tokens"),
            hosts_table=name("FLEETPULSE_HOSTS_TABLE", f"fleetpulse-{stage}-hosts"),
            alerts_table=name("FLEETPULSE_ALERTS_TABLE", f"fleetpulse-{stage}-alerts"),
            silences_table=name("FLEETPULSE_SILENCES_TABLE", f"fleetpulse-{stage}-silences"),
            ledger_table=name("FLEETPULSE_LEDGER_TABLE", f"fleetpulse-{stage}-ledger"),
            jobs_table=name("FLEETPULSE_JOBS_TABLE", f"fleetpulse-{stage}-jobs"),
            series_table=name("FLEETPULSE_SERIES_TABLE", f"fleetpulse-{stage}-series"),
            ping_base_url=env.get("FLEETPULSE_PING_BASE_URL") or None,
            alerts_topic_arn=env.get("FLEETPULSE_ALERTS_TOPIC_ARN") or None,
            store=store,
            timestream_database=name("FLEETPULSE_TIMESTREAM_DATABASE", f"fleetpulse-{stage}"),
            timestream_table=name("FLEETPULSE_TIMESTREAM_TABLE", "metrics"),
            token_cache=timedelta(seconds=cache_s),
            limits=limits,
            notify=NotifySettings.from_env(env, stage),
            **influx,  # type: ignore[arg-type]
            rules_path=env.get("FLEETPULSE_RULES") or None,
            heartbeat_grace=duration("FLEETPULSE_HEARTBEAT_GRACE", "2m"),
            outage_share=outage_share,
            outage_min_hosts=outage_min_hosts,
            retired_retention=duration("FLEETPULSE_RETIRED_RETENTION", "7d"),
            resolved_retention=duration("FLEETPULSE_RESOLVED_RETENTION", "24h"),
            scan_segments=scan_segments,
            status_url=env.get("FLEETPULSE_STATUS_URL") or None,
            status_public=_flag(env, "FLEETPULSE_STATUS_PUBLIC"),
            **_checks_settings(env, stage, duration),  # type: ignore[arg-type]
        )


def _scan_segments(env: Mapping[str, str]) -> int:
    """FLEETPULSE_SCAN_SEGMENTS: 1 to MAX_SCAN_SEGMENTS."""
    raw = env.get("FLEETPULSE_SCAN_SEGMENTS") or "4"
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_SCAN_SEGMENTS:
        raise SettingsError(
            f"FLEETPULSE_SCAN_SEGMENTS must be a whole number from 1 to {MAX_SCAN_SEGMENTS}, got {raw!r}"
        )
    return int(raw)


def _checks_settings(
    env: Mapping[str, str], stage: str, duration: Callable[[str, str], timedelta]
) -> dict[str, object]:
    """The FLEETPULSE_CHECKS* variables (docs/CHECKS.md)."""
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    try:
        batch = int(env.get("FLEETPULSE_CHECKS_BATCH") or "50")
    except ValueError:
        raise SettingsError("FLEETPULSE_CHECKS_BATCH must be a whole number") from None
    if not 1 <= batch <= 500:
        raise SettingsError("FLEETPULSE_CHECKS_BATCH must be from 1 to 500")
    home_url = env.get("FLEETPULSE_CHECKS_HOME_URL") or None
    token_param = env.get("FLEETPULSE_CHECKS_HOME_TOKEN_PARAM") or None
    token = env.get("FLEETPULSE_CHECKS_HOME_TOKEN") or None
    if home_url is not None:
        if not home_url.startswith(("https://", "http://")):
            raise SettingsError(
                f"FLEETPULSE_CHECKS_HOME_URL must be an http(s) URL, got {home_url!r}"
            )
        if (token is None) == (token_param is None):
            raise SettingsError(
                "FLEETPULSE_CHECKS_HOME_URL needs FLEETPULSE_CHECKS_HOME_TOKEN_PARAM "
                "(or FLEETPULSE_CHECKS_HOME_TOKEN), one of them"
            )
    window = duration("FLEETPULSE_CHECKS_WINDOW", "1m")
    if not timedelta(seconds=10) <= window <= timedelta(minutes=1):
        raise SettingsError("FLEETPULSE_CHECKS_WINDOW must be from 10s to 1m")
    return {
        "checks_path": env.get("FLEETPULSE_CHECKS") or None,
        "checks_table": env.get("FLEETPULSE_CHECKS_TABLE") or f"fleetpulse-{stage}-checks",
        "checks_runner": env.get("FLEETPULSE_CHECKS_RUNNER") or None,
        "checks_location": env.get("FLEETPULSE_CHECKS_LOCATION") or region,
        "checks_simulate_locations": _flag(env, "FLEETPULSE_CHECKS_SIMULATE_LOCATIONS"),
        "checks_batch": batch,
        "checks_window": window,
        "checks_ca_file": env.get("FLEETPULSE_CHECKS_CA_FILE") or None,
        "checks_home_url": home_url,
        "checks_home_token_param": token_param,
        "checks_home_token": token,
    }


def _flag(env: Mapping[str, str], var: str) -> bool:
    raw = (env.get(var) or "false").strip().lower()
    if raw not in ("true", "false", "1", "0", "yes", "no"):
        raise SettingsError(f"{var} must be true or false, got {raw!r}")
    return raw in ("true", "1", "yes")


def _influx_settings(env: Mapping[str, str]) -> dict[str, object]:
    """The FLEETPULSE_INFLUX_* variables, checked; every error names the variable."""

    def get(var: str) -> str | None:
        return (env.get(f"FLEETPULSE_INFLUX_{var}") or "").strip() or None

    url = get("URL")
    if url is None:
        raise SettingsError("FLEETPULSE_INFLUX_URL is required when FLEETPULSE_STORE=influxdb")
    if not url.startswith(("http://", "https://")):
        raise SettingsError(
            f"FLEETPULSE_INFLUX_URL must be an http:// or https:// URL, got {url!r}"
        )
    api_name = get("API") or InfluxApi.V2.value
    try:
        api = InfluxApi(api_name)
    except ValueError:
        raise SettingsError(f"FLEETPULSE_INFLUX_API must be v1 or v2, got {api_name!r}") from None
    token, token_param = get("TOKEN"), get("TOKEN_PARAM")
    if token and token_param:
        raise SettingsError(
            "set FLEETPULSE_INFLUX_TOKEN or FLEETPULSE_INFLUX_TOKEN_PARAM, not both"
        )
    out: dict[str, object] = {
        "influx_url": url,
        "influx_api": api,
        "influx_token": token,
        "influx_token_param": token_param,
    }
    if api is InfluxApi.V1:
        if get("DB") is None:
            raise SettingsError("FLEETPULSE_INFLUX_DB is required when FLEETPULSE_INFLUX_API=v1")
        out["influx_db"] = get("DB")
        out["influx_username"] = get("USERNAME")
        return out
    for var in ("ORG", "BUCKET"):
        if get(var) is None:
            raise SettingsError(
                f"FLEETPULSE_INFLUX_{var} is required when FLEETPULSE_INFLUX_API=v2"
            )
    if not (token or token_param):
        raise SettingsError(
            "FLEETPULSE_INFLUX_TOKEN or FLEETPULSE_INFLUX_TOKEN_PARAM is required when "
            "FLEETPULSE_INFLUX_API=v2"
        )
    if get("USERNAME"):
        raise SettingsError("FLEETPULSE_INFLUX_USERNAME applies to FLEETPULSE_INFLUX_API=v1 only")
    out["influx_org"] = get("ORG")
    out["influx_bucket"] = get("BUCKET")
    return out
