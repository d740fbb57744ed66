"""The alerting engine driven by hand: posts and evaluations at given times.

The stores are in memory unless a test passes others (tests/support/stores.py: the
same engine over DynamoDB on moto)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.core.alerts import AlertRecord
from chalicelib.core.evaluation import AlertingPolicy
from chalicelib.core.heartbeats import HostSnapshot
from chalicelib.core.hosts import host_update
from chalicelib.core.instants import ms_of_instant as ms
from chalicelib.core.models import Event, EventStatus, HeartbeatState, HostReport, Point
from chalicelib.core.rules import RuleSet, parse_rules
from chalicelib.core.silences import parse_silence
from chalicelib.services.alerting import AlertingService, EvaluationReport
from tests.support.memory import InMemoryAlertPublisher, InMemoryMetricStore
from tests.support.stores import Stores, memory_stores

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # a Sunday

DISK_RULE: dict[str, Any] = {
    "name": "disk-full",
    "measurement": "disk",
    "field": "used_percent",
    "op": ">",
    "warning": 85,
    "critical": 95,
    "for": "5m",
    "summary": "Disk {tags[mount]} at {value:.0f}% on {host}",
    "runbook": "https://runbooks.example/disk",
}


def rules(*rule_dicts: dict[str, Any], **top: Any) -> RuleSet:
    return parse_rules({"rules": list(rule_dicts), **top})


class Fleet:
    """Hosts post, the evaluator runs; time passed in. `stores`: where hosts, alerts and
    silences live (in memory by default); published messages and points stay in memory."""

    def __init__(
        self, ruleset: RuleSet | None = None, *, stores: Stores | None = None, **policy: Any
    ) -> None:
        stores = stores or memory_stores()
        self.hosts: Any = stores.hosts
        self.alerts: Any = stores.alerts
        self.silences: Any = stores.silences
        self.publisher = InMemoryAlertPublisher()
        self.metrics = InMemoryMetricStore()
        self.policy = AlertingPolicy(ruleset or rules(DISK_RULE), **policy)
        self.service = self.evaluator()

    def evaluator(self) -> AlertingService:
        """Another evaluator over the same stores (they race through compare-and-swap)."""
        return AlertingService(
            hosts=self.hosts,
            alerts=self.alerts,
            silences=self.silences,
            publisher=lambda: self.publisher,
            metrics=self.metrics,
            policy=lambda: self.policy,
        )

    def set_rules(self, ruleset: RuleSet) -> None:
        self.policy = replace(self.policy, rules=ruleset)

    def post(
        self,
        host: str,
        at: datetime,
        *,
        interval: int | None = 60,
        disk: float | None = None,
        mount: str = "/",
        tags: dict[str, str] | None = None,
        shutdown: bool = False,
        events: list[Event] | None = None,
    ) -> None:
        points = []
        if disk is not None:
            points.append(Point("disk", ms(at), {"mount": mount}, {"used_percent": disk}))
        report = HostReport(
            host=host,
            tags=tags or {},
            interval_s=interval,
            state=HeartbeatState.SHUTDOWN if shutdown else HeartbeatState.ALIVE,
            points=points,
            events=events or [],
        )
        # As the ingest does: the host item watches only what the rules would act on.
        self.hosts.record(host_update(report, at, watch=self.policy.rules.by_measurement))

    def evaluate(self, at: datetime) -> EvaluationReport:
        return self.service.evaluate(at)

    def silence(self, at: datetime, **body: Any) -> str:
        silence = parse_silence(body, silence_id=f"s{len(self.silences.list())}", now=at)
        self.silences.put(silence)
        return silence.silence_id

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [dict(m) for m in self.publisher.messages]

    def statuses(self, alert_id: str) -> list[str]:
        return [m["status"] for m in self.publisher.messages if m["alert_id"] == alert_id]

    def state(self, alert_id: str) -> str:
        record = self.stored_alerts().get(alert_id)
        return record.state.value if record else "inactive"

    def stored_alerts(self) -> dict[str, AlertRecord]:
        """Every stored alert record, read through the port."""
        return {r.alert_id: r for r in self.alerts.scan()}

    def stored_hosts(self) -> dict[str, HostSnapshot]:
        """Every host as the store gives it back, history included, read through the port."""
        return {h.host: h for h in self.hosts.scan(history=True)}


def event(
    service: str, status: str, at: datetime, ttl: timedelta | None = None, description: str = ""
) -> Event:
    return Event(
        service,
        EventStatus(status),
        ms(at),
        int(ttl.total_seconds() * 1000) if ttl is not None else None,
        description,
    )
