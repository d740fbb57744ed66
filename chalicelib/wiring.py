"""Builds the adapters and use-cases from settings, lazily: nothing touches AWS at import."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING

from chalicelib.adapters.aws import AwsClients

# Everything below is imported where it is first used: a container pays for
# the settings and each use-case on its first request that needs them.
if TYPE_CHECKING:
    from chalicelib.adapters.http import JsonPoster
    from chalicelib.adapters.pagerduty import PagerDutyNotifier
    from chalicelib.adapters.slack import SlackNotifier
    from chalicelib.adapters.ssm import SSMParameters
    from chalicelib.core.evaluation import AlertingPolicy
    from chalicelib.core.jobs import JobStore
    from chalicelib.core.ports import (
        AlertPublisher,
        AlertStore,
        DeliveryLedger,
        HostStore,
        MetricReader,
        MetricStore,
        SilenceStore,
        TokenStore,
    )
    from chalicelib.services.alerting import AlertingService
    from chalicelib.services.auth import Authenticator
    from chalicelib.services.checks import CheckService
    from chalicelib.services.collectd import CollectdIngest
    from chalicelib.services.ingest import IngestService
    from chalicelib.services.jobs import JobService
    from chalicelib.services.lifecycle import LifecycleService
    from chalicelib.services.line_protocol import LineProtocolIngest
    from chalicelib.services.notify import NotifyService
    from chalicelib.services.remote_write import RemoteWriteIngest
    from chalicelib.services.series import SeriesService
    from chalicelib.services.silences import SilenceService
    from chalicelib.settings import Settings


def utc_now() -> datetime:
    return datetime.now(UTC)


class Services:
    """Everything a handler needs, created on first use and kept for the container's life."""

    def __init__(
        self,
        settings: Settings,
        clients: AwsClients | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self.clients = clients or AwsClients(settings.region, settings.endpoint_url)
        self.clock = clock

    @cached_property
    def metric_store(self) -> MetricStore:
        from chalicelib.settings import MetricBackend, SettingsError

        if self.settings.store is MetricBackend.TIMESTREAM:
            from chalicelib.adapters.timestream import TimestreamMetricStore

            return TimestreamMetricStore(
                self.clients.get("timestream-write"),
                self.settings.timestream_database,
                self.settings.timestream_table,
            )
        if self.settings.store is MetricBackend.INFLUXDB:
            from chalicelib.adapters.influxdb import InfluxDBMetricStore, TokenSource

            token: TokenSource = self.settings.influx_token
            if self.settings.influx_token_param:
                from chalicelib.adapters.ssm import SSMParameterSecret

                token = SSMParameterSecret(self.parameters, self.settings.influx_token_param)
            return InfluxDBMetricStore(self.settings.influx_target, token)
        raise SettingsError(f"no metric store for FLEETPULSE_STORE={self.settings.store!r}")

    @cached_property
    def metric_reader(self) -> MetricReader:
        """History read back from the store `metric_store` writes to."""
        from chalicelib.settings import MetricBackend

        if self.settings.store is MetricBackend.TIMESTREAM:
            from chalicelib.adapters.history import TimestreamMetricReader

            return TimestreamMetricReader(
                self.clients.get("timestream-query"),
                self.settings.timestream_database,
                self.settings.timestream_table,
            )
        from chalicelib.adapters.history import InfluxDBMetricReader
        from chalicelib.adapters.influxdb import TokenSource

        token: TokenSource = self.settings.influx_token
        if self.settings.influx_token_param:
            from chalicelib.adapters.ssm import SSMParameterSecret

            token = SSMParameterSecret(self.parameters, self.settings.influx_token_param)
        return InfluxDBMetricReader(self.settings.influx_target, token)

    @cached_property
    def series(self) -> SeriesService:
        from chalicelib.services.series import SeriesService

        return SeriesService(self.metric_reader)

    @cached_property
    def token_store(self) -> TokenStore:
        from chalicelib.adapters.dynamodb import DynamoDBTokenStore

        return DynamoDBTokenStore(self.clients.get("dynamodb"), self.settings.tokens_table)

    @cached_property
    def host_store(self) -> HostStore:
        from chalicelib.adapters.dynamodb import DynamoDBHostStore
        from chalicelib.adapters.dynamodb.common import SCAN_THROTTLE_PATIENCE_S

        # The hosts table is provisioned by default: its fleet Scan waits out a refusal
        # for capacity rather than failing the minute's evaluation.
        return DynamoDBHostStore(
            self.clients.get("dynamodb"),
            self.settings.hosts_table,
            self.settings.series_table,
            self.settings.scan_segments,
            SCAN_THROTTLE_PATIENCE_S,
        )

    @cached_property
    def authenticator(self) -> Authenticator:
        from chalicelib.services.auth import Authenticator

        return Authenticator(self.token_store, self.settings.token_cache, self.clock)

    @cached_property
    def ingest(self) -> IngestService:
        from chalicelib.core.hosts import Tracking
        from chalicelib.services.ingest import IngestService

        limits = self.settings.limits
        tracking = Tracking(limits.max_tracked_series, limits.max_tracked_services)
        return IngestService(
            self.metric_store,
            self.host_store,
            limits,
            tracking,
            # The rules file, read once per container, as the evaluator reads it.
            watch=lambda: self.alerting_policy.rules.by_measurement,
        )

    @cached_property
    def ledger(self) -> DeliveryLedger:
        from chalicelib.adapters.dynamodb import DynamoDBLedger

        return DynamoDBLedger(self.clients.get("dynamodb"), self.settings.ledger_table)

    @cached_property
    def parameters(self) -> SSMParameters:
        from chalicelib.adapters.ssm import SSMParameters

        return SSMParameters(lambda: self.clients.get("ssm"))

    @cached_property
    def http(self) -> JsonPoster:
        from chalicelib.adapters.http import JsonPoster

        notify = self.settings.notify
        return JsonPoster(notify.connect_timeout, notify.read_timeout, self.clock)

    @cached_property
    def slack_notifier(self) -> SlackNotifier:
        from chalicelib.adapters.slack import SlackNotifier

        notify = self.settings.notify
        url = notify.slack_webhook_url

        def webhook_url() -> str:
            return url or self.parameters.get(notify.slack_webhook_param)

        return SlackNotifier(webhook_url, self.http, notify.status_page_url)

    @cached_property
    def pagerduty_notifier(self) -> PagerDutyNotifier:
        from chalicelib.adapters.pagerduty import PagerDutyNotifier

        notify = self.settings.notify

        def routing_key() -> str:
            return self.parameters.get(notify.pagerduty_routing_key_param)

        return PagerDutyNotifier(
            routing_key, self.http, notify.pagerduty_url, notify.status_page_url
        )

    @cached_property
    def notifications(self) -> NotifyService:
        from chalicelib.core.notify import Channel
        from chalicelib.core.retry import RetryPolicy
        from chalicelib.services.notify import NotifyService

        notify = self.settings.notify
        return NotifyService(
            self.ledger,
            {
                Channel.SLACK: lambda: self.slack_notifier,
                Channel.PAGERDUTY: lambda: self.pagerduty_notifier,
            },
            notify.routes,
            RetryPolicy(max_attempts=notify.max_attempts, deadline=notify.deadline),
            lease=notify.lease,
            clock=self.clock,
        )

    @cached_property
    def line_protocol(self) -> LineProtocolIngest:
        from chalicelib.services.line_protocol import LineProtocolIngest

        return LineProtocolIngest(self.ingest, self.settings.limits)

    @cached_property
    def remote_write(self) -> RemoteWriteIngest:
        from chalicelib.services.remote_write import RemoteWriteIngest

        return RemoteWriteIngest(self.ingest, self.settings.limits)

    @cached_property
    def collectd(self) -> CollectdIngest:
        from chalicelib.services.collectd import CollectdIngest

        return CollectdIngest(self.ingest, self.settings.limits)

    @cached_property
    def alert_store(self) -> AlertStore:
        from chalicelib.adapters.dynamodb import DynamoDBAlertStore

        return DynamoDBAlertStore(self.clients.get("dynamodb"), self.settings.alerts_table)

    @cached_property
    def silence_store(self) -> SilenceStore:
        from chalicelib.adapters.dynamodb import DynamoDBSilenceStore

        return DynamoDBSilenceStore(self.clients.get("dynamodb"), self.settings.silences_table)

    @cached_property
    def alert_publisher(self) -> AlertPublisher:
        from chalicelib.adapters.sns import SNSAlertPublisher

        if not self.settings.alerts_topic_arn:
            from chalicelib.settings import SettingsError

            raise SettingsError(
                "FLEETPULSE_ALERTS_TOPIC_ARN is not set: alerts cannot be published"
            )
        return SNSAlertPublisher(self.clients.get("sns"), self.settings.alerts_topic_arn)

    @cached_property
    def alerting_policy(self) -> AlertingPolicy:
        """The rules file, read once per container; a bad file fails here, loudly."""
        from chalicelib.adapters.rules_file import load_policy

        return load_policy(self.settings)

    @cached_property
    def alerting(self) -> AlertingService:
        from chalicelib.services.alerting import AlertingService

        return AlertingService(
            hosts=self.host_store,
            alerts=self.alert_store,
            silences=self.silence_store,
            publisher=lambda: self.alert_publisher,
            metrics=self.metric_store,
            policy=lambda: self.alerting_policy,
            jobs=self.job_store,
            reader=lambda: self.metric_reader,
        )

    @cached_property
    def checks(self) -> CheckService:
        """Remote checks (docs/CHECKS.md): the file's and the API's, their runs and alerts."""
        from chalicelib.adapters import probes
        from chalicelib.adapters.checks_file import checks_path, load_checks
        from chalicelib.adapters.dynamodb import DynamoDBCheckStore
        from chalicelib.services.checks import CheckService, InProcessInvoker, Invoker

        settings = self.settings
        probes.use_ca_file(settings.checks_ca_file)
        file_checks = load_checks(checks_path(settings.checks_path), settings.checks_location)

        def invoker() -> Invoker:
            if settings.checks_runner:
                from chalicelib.adapters.lambda_invoker import LambdaInvoker

                return LambdaInvoker(self.clients.get("lambda"), settings.checks_runner)
            return InProcessInvoker(self.checks.run_batch)

        home = None
        if settings.checks_home_url:
            from chalicelib.adapters.check_home import HttpCheckHome

            url, literal = settings.checks_home_url, settings.checks_home_token
            param = settings.checks_home_token_param or ""

            def token() -> str:
                return literal or self.parameters.get(param)

            remote = HttpCheckHome(url, token)
            home = lambda: remote  # noqa: E731

        return CheckService(
            home=home,
            store=DynamoDBCheckStore(self.clients.get("dynamodb"), settings.checks_table),
            file_checks=lambda: file_checks,
            metrics=self.metric_store,
            alerts=self.alert_store,
            silences=self.silence_store,
            alerting=lambda: self.alerting,
            invoker=invoker,
            prober=probes.probe,
            clock=self.clock,
            location=settings.checks_location,
            simulate_locations=settings.checks_simulate_locations,
            batch_size=settings.checks_batch,
            window=settings.checks_window,
            status_url=settings.status_url,
        )

    @cached_property
    def job_store(self) -> JobStore:
        from chalicelib.adapters.dynamodb import DynamoDBJobStore

        return DynamoDBJobStore(self.clients.get("dynamodb"), self.settings.jobs_table)

    @cached_property
    def jobs(self) -> JobService:
        from chalicelib.services.jobs import JobService

        return JobService(self.job_store, lambda: self.metric_store, lambda: self.authenticator)

    @cached_property
    def lifecycle(self) -> LifecycleService:
        from chalicelib.adapters.dynamodb import DynamoDBInstanceDirectory
        from chalicelib.services.lifecycle import LifecycleService

        return LifecycleService(
            DynamoDBInstanceDirectory(self.clients.get("dynamodb"), self.settings.hosts_table)
        )

    @cached_property
    def silences(self) -> SilenceService:
        from chalicelib.services.silences import SilenceService

        return SilenceService(self.silence_store)


_services: Services | None = None


def services() -> Services:
    """The container's services, built from the environment on first call."""
    global _services  # noqa: PLW0603 (one set of clients per Lambda container)
    if _services is None:
        from chalicelib.settings import Settings

        _services = Services(Settings.from_env())
    return _services


def use(replacement: Services | None) -> None:
    """Swap the services (tests, the local stack); None rebuilds from the environment."""
    global _services  # noqa: PLW0603
    _services = replacement
