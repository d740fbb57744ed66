"""The alerting use-cases: evaluate the fleet on a schedule; list hosts and alerts.

An evaluation reads three things (one Scan of hosts, one of alerts, one of
silences), hands them to the pure core with the time, and writes only what
the core returns: host writes, then each alert change with a compare-and-swap,
then its notification, then the confirmation of that notification.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from chalicelib.core.alerts import (
    AlertChange,
    AlertRecord,
    AlertState,
    confirm_sent,
    transition_point,
)
from chalicelib.core.errors import InvalidPayload, NotFound, Problem
from chalicelib.core.evaluation import AlertingPolicy, Evaluation, HostAction, evaluate
from chalicelib.core.heartbeats import HostSnapshot, HostStatus, host_status
from chalicelib.core.history_rules import HistoryValues
from chalicelib.core.matchers import Matcher
from chalicelib.core.models import HostReport, Point
from chalicelib.core.ports import (
    AlertPublisher,
    AlertStore,
    BackendUnavailable,
    HostStore,
    MetricReader,
    MetricStore,
    SilenceStore,
)
from chalicelib.core.silences import Silence
from chalicelib.core.status import StatusView, status_view

logger = Logger(child=True)

# The evaluate Lambda has 55 s; reads, compute and writes must fit well inside.
WRITE_BUDGET = timedelta(seconds=40)


@dataclass(slots=True)
class EvaluationReport:
    """What one evaluation did, for logs and metrics."""

    hosts: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    alerts_read: int = 0
    transitions: int = 0
    notifications: int = 0
    publish_failures: int = 0
    lost_races: int = 0
    deferred: int = 0
    host_writes: int = 0
    write_failures: int = 0
    outage: bool = False
    compute_ms: float = 0.0

    def metrics(self) -> dict[str, int]:
        """Counts worth a CloudWatch metric (and an alarm on PublishFailures)."""
        return {
            "AlertTransitions": self.transitions,
            "AlertNotifications": self.notifications,
            "AlertPublishFailures": self.publish_failures,
            "AlertWriteFailures": self.write_failures,
            "AlertChangesDeferred": self.deferred,
            "HostsEvaluated": self.hosts,
            "IngestOutage": int(self.outage),
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "hosts": self.hosts,
            "statuses": self.statuses,
            "alerts_read": self.alerts_read,
            "transitions": self.transitions,
            "notifications": self.notifications,
            "publish_failures": self.publish_failures,
            "lost_races": self.lost_races,
            "deferred": self.deferred,
            "host_writes": self.host_writes,
            "write_failures": self.write_failures,
            "outage": self.outage,
            "compute_ms": round(self.compute_ms, 1),
        }


class AlertingService:
    def __init__(
        self,
        *,
        hosts: HostStore,
        alerts: AlertStore,
        silences: SilenceStore,
        publisher: Callable[[], AlertPublisher],
        metrics: MetricStore,
        policy: Callable[[], AlertingPolicy],
        budget: timedelta = WRITE_BUDGET,
        reader: Callable[[], MetricReader] | None = None,
    ) -> None:
        self.hosts = hosts
        self.alerts = alerts
        self.silences = silences
        self._publisher = publisher  # built on first notification: a quiet run needs no SNS
        self.metrics = metrics
        self._policy = policy
        self.budget = budget
        self._reader = reader  # history rules only: a run without them reads no history

    @property
    def policy(self) -> AlertingPolicy:
        return self._policy()

    def evaluate(self, now: datetime) -> EvaluationReport:
        """One scheduled evaluation: read, compute, write what changed.

        Writing stops once `budget` has passed since the start (a storm of
        transitions must not run the Lambda into its timeout halfway through a
        change); what is left is found again, and written, by the next one.
        """
        deadline = time.monotonic() + self.budget.total_seconds()
        evaluation, report = self.plan(now)
        return self.apply(evaluation, report, deadline)

    def plan(self, now: datetime) -> tuple[Evaluation, EvaluationReport]:
        """Read everything and compute the changes, writing nothing."""
        policy = self.policy
        hosts = self.hosts.scan(policy.fields_used)
        records = {r.alert_id: r for r in self.alerts.scan()}
        silences = self.silences.list()
        started = time.perf_counter()
        evaluation = evaluate(
            hosts, records, silences, policy, now, history=self._history(records, now)
        )
        report = EvaluationReport(
            hosts=len(hosts),
            statuses={k.value: v for k, v in evaluation.statuses.items() if v},
            alerts_read=len(records),
            outage=evaluation.outage,
            compute_ms=(time.perf_counter() - started) * 1000,
        )
        return evaluation, report

    def _history(self, records: dict[str, AlertRecord], now: datetime) -> HistoryValues | None:
        """Window, baseline and forecast rules' values: one grouped query per rule."""
        rules = [r for r in self.policy.rules.rules if r.history is not None]
        if not rules or self._reader is None:
            return None
        from chalicelib.core.alerts import threshold_alert_id
        from chalicelib.core.history_rules import read_history

        history = read_history(rules, self._reader().read, records, now, threshold_alert_id)
        if history.failed:
            logger.warning("history unavailable", extra={"rules": history.failed})
        return history

    def apply(
        self, evaluation: Evaluation, report: EvaluationReport, deadline: float | None = None
    ) -> EvaluationReport:
        """Write `evaluation`'s changes. Each alert change is conditional on the version
        read; a change another evaluator already made is skipped, with its notification."""
        now = evaluation.now
        waiting: set[str] = set()  # heartbeat alerts whose host write did not go through
        for change in evaluation.hosts:
            try:
                if change.action is HostAction.MARK_DOWN:
                    if not self.hosts.mark_down(change.host, change.last_seen_at):
                        waiting.add(change.alert_id or "")
                        continue
                elif change.action is HostAction.FORGET:
                    if not self.hosts.forget(change.host, change.last_seen_at):
                        continue
                elif not self.hosts.prune(change.host, change.series, change.services):
                    continue
                report.host_writes += 1
            except BackendUnavailable as exc:
                report.write_failures += 1
                waiting.add(change.alert_id or "")
                logger.warning("host write failed", extra={"host": change.host, "reason": str(exc)})
        points: dict[str, list[Point]] = {}
        for i, alert_change in enumerate(evaluation.alerts):
            if deadline is not None and time.monotonic() > deadline:
                report.deferred = len(evaluation.alerts) - i
                logger.warning(
                    "write budget spent; the rest waits", extra={"left": report.deferred}
                )
                break
            if alert_change.alert_id in waiting:
                continue
            self._apply_one(alert_change, now, report, points)
        if points:
            self._annotate(points)
        return report

    def _apply_one(
        self,
        change: AlertChange,
        now: datetime,
        report: EvaluationReport,
        points: dict[str, list[Point]],
    ) -> None:
        try:
            if change.after is None:
                assert change.before is not None
                written = self.alerts.delete(change.before.alert_id, change.before.version)
            else:
                written = self.alerts.put(change.after, change.expected_version)
        except BackendUnavailable as exc:
            report.write_failures += 1
            logger.warning(
                "alert write failed", extra={"alert_id": change.alert_id, "reason": str(exc)}
            )
            return
        if not written:
            report.lost_races += 1
            return
        point = transition_point(change, now)
        if point is not None:
            report.transitions += 1
            record = change.after or change.before
            assert record is not None
            points.setdefault(record.host, []).append(point)
            logger.info(
                "alert transition",
                extra={
                    "alert_id": change.alert_id,
                    "from": point.fields["previous"],
                    "to": point.fields["status"],
                },
            )
        if change.publish is None or change.after is None:
            return
        try:
            self._publisher().publish(change.publish)
        except Exception as exc:
            # The outbox stays on the record: once the lease runs out, the next
            # evaluation decides afresh what is owed and sends it.
            report.publish_failures += 1
            logger.warning(
                "publish failed; will retry next evaluation",
                extra={"alert_id": change.alert_id, "reason": str(exc)},
            )
            return
        report.notifications += 1
        confirmed = confirm_sent(change.after, now)
        try:
            if not self.alerts.put(confirmed, change.after.version):
                return
        except BackendUnavailable as exc:
            report.write_failures += 1
            logger.warning(
                "could not record a sent notification; it may be sent again",
                extra={"alert_id": change.alert_id, "reason": str(exc)},
            )
            return
        follow = change.then(confirmed) if change.then is not None else None
        if follow is not None:
            self._apply_one(follow, now, report, points)

    def _annotate(self, points: dict[str, list[Point]]) -> None:
        """Transitions as `alert` points, for graph annotations. Best effort: the
        alert table is the record of truth; a lost annotation is only logged."""
        reports = [HostReport(host=host, points=ps) for host, ps in points.items()]
        try:
            refused = self.metrics.write(reports)
        except BackendUnavailable as exc:
            logger.warning("alert annotations not written", extra={"reason": str(exc)})
            return
        if refused:
            logger.warning(
                "alert annotations refused", extra={"reasons": [r.reason for r in refused[:5]]}
            )

    def set_paused(self, host: str, paused: bool) -> None:
        """Pause a host's heartbeat until it posts again (or undo it). 404 for unknown hosts."""
        found = self.hosts.pause(host) if paused else self.hosts.resume(host)
        if not found:
            raise NotFound(f"no host named {host!r}")

    # Read side: GET /v1/hosts, GET /v1/alerts and the status page.

    def status(self, now: datetime) -> StatusView:
        """The status page's view: one Scan of hosts (no field values, with their CPU and
        memory ring), one of alerts, one of silences."""
        policy = self.policy
        hosts = self.hosts.scan(fields={}, history=True)
        return status_view(hosts, policy.grace_for, self.alerts.scan(), self.silences.list(), now)

    def host_views(self, now: datetime, query: Mapping[str, str]) -> list[dict[str, Any]]:
        """Hosts with their derived status. Filters: `state` (comma list), `host` (glob)."""
        states = _choices(query.get("state"), {s.value for s in HostStatus}, "state")
        pattern = _glob(query.get("host"), "host")
        policy = self.policy
        views = []
        # No field values are shown: none need decoding.
        for h in sorted(self.hosts.scan(fields={}), key=lambda h: h.host):
            if pattern is not None and not pattern.matches(h.host):
                continue
            grace = policy.grace_for(h)
            status = host_status(h, now, grace)
            if states and status.value not in states:
                continue
            views.append(host_view(h, status, grace))
        return views

    def alert_views(self, now: datetime, query: Mapping[str, str]) -> list[dict[str, Any]]:
        """Alerts, open ones by default. Filters: `state` (comma list or `all`), `host` (glob),
        `severity`."""
        wanted = query.get("state") or "pending,firing"
        states = (
            {s.value for s in AlertState if s is not AlertState.INACTIVE}
            if wanted == "all"
            else _choices(wanted, {"pending", "firing", "resolved"}, "state")
        )
        pattern = _glob(query.get("host"), "host")
        severities = _choices(query.get("severity"), {"critical", "warning", "info"}, "severity")
        silences = [s for s in self.silences.list() if s.active_at(now)]
        views = []
        for record in sorted(self.alerts.scan(), key=lambda r: (r.host, r.alert_id)):
            if record.state.value not in states:
                continue
            if pattern is not None and not pattern.matches(record.host):
                continue
            if severities and record.severity.value not in severities:
                continue
            views.append(alert_view(record, silences))
        return views


def host_view(h: HostSnapshot, status: HostStatus, grace: Any) -> dict[str, Any]:
    return {
        "host": h.host,
        "state": status.value,
        "last_seen_at": h.last_seen_at.isoformat(timespec="seconds"),
        "first_seen_at": h.first_seen_at.isoformat(timespec="seconds"),
        "interval_s": h.interval.total_seconds(),
        "grace_s": grace.total_seconds(),
        "tags": h.tags,
        "agent_name": h.agent_name,
        "agent_version": h.agent_version,
        "retired_at": h.retired_at.isoformat(timespec="seconds") if h.retired_at else None,
        "series": len(h.series),
        "services": {name: s.status for name, s in sorted(h.services.items())},
    }


def alert_view(record: AlertRecord, active_silences: list[Silence]) -> dict[str, Any]:
    builtin = record.builtin_labels()
    silenced_by = [s.silence_id for s in active_silences if s.matches(builtin, record.labels)]

    def iso(at: datetime | None) -> str | None:
        return at.isoformat(timespec="seconds") if at else None

    return {
        "alert_id": record.alert_id,
        "state": record.state.value,
        "severity": record.severity.value,
        "kind": record.kind.value,
        "host": record.host,
        "rule": record.rule,
        "summary": record.summary,
        "description": record.description,
        "value": record.value,
        "threshold": record.threshold,
        "labels": record.labels,
        "started_at": iso(record.active_at),
        "fired_at": iso(record.fired_at),
        "resolved_at": iso(record.resolved_at),
        "notified": record.notified.value if record.notified else None,
        "notified_at": iso(record.notified_at),
        "dedup_key": record.dedup_key,
        "silenced_by": silenced_by,
    }


def _choices(raw: str | None, allowed: set[str], name: str) -> set[str]:
    if not raw:
        return set()
    chosen = {part.strip() for part in raw.split(",") if part.strip()}
    unknown = chosen - allowed
    if unknown:
        raise InvalidPayload(
            f"unknown {name}",
            [
                Problem(
                    name,
                    f"must be among {', '.join(sorted(allowed))}; got {', '.join(sorted(unknown))}",
                )
            ],
        )
    return chosen


def _glob(raw: str | None, name: str) -> Matcher | None:
    if not raw:
        return None
    if len(raw) > 256:
        raise InvalidPayload(f"{name} pattern too long", [Problem(name, "at most 256 characters")])
    return Matcher.compile(name, raw)
