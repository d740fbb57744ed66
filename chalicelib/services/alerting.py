"""The alerting use-cases: evaluate the fleet on a schedule; list hosts and alerts.

An evaluation reads three things (one Scan of hosts, one of alerts, one of
silences), hands them to the pure core with the time, and applies only what
the core returns: host writes, then each alert's steps in order (a
compare-and-swap write, its notification, the confirmation of that
notification, and so on), stopping an alert's steps at the first that does
not go through.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from aws_lambda_powertools import Logger

from chalicelib.core.alert_message import AlertKind, Severity
from chalicelib.core.alerts import (
    OPEN_STATES,
    AlertChange,
    AlertRecord,
    AlertState,
    Confirm,
    Publish,
    Write,
    transition_point,
)
from chalicelib.core.errors import InvalidPayload, NotFound, Problem
from chalicelib.core.evaluation import AlertingPolicy, Evaluation, HostAction, evaluate
from chalicelib.core.heartbeats import HostSnapshot, HostStatus, host_status
from chalicelib.core.history_rules import HistoryValues
from chalicelib.core.instants import iso
from chalicelib.core.jobs import Job, JobStore
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

E = TypeVar("E", bound=enum.StrEnum)

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
        jobs: JobStore | None = None,
        reader: Callable[[], MetricReader] | None = None,
    ) -> None:
        self.hosts = hosts
        self.alerts = alerts
        self.silences = silences
        self._publisher = publisher  # built on first notification: a quiet run needs no SNS
        self.metrics = metrics
        self._policy = policy
        self.budget = budget
        self.jobs = jobs
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
        jobs = self._jobs()
        # Job alerts are stepped by their own module (chalicelib/core/jobs.py).
        host_records = {k: r for k, r in records.items() if r.kind is not AlertKind.JOB}
        history = self._history(host_records, now)
        started = time.perf_counter()
        evaluation = evaluate(hosts, host_records, silences, policy, now, history=history)
        if jobs is not None and (jobs or len(host_records) < len(records)):
            from chalicelib.services.jobs import job_changes

            evaluation.alerts.extend(job_changes(jobs, records, silences, policy, now))
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

    def _jobs(self) -> list[Job] | None:
        """The jobs, or None when they cannot be read: their alerts then keep their
        state this time (a missing table must not resolve them, nor stop the hosts)."""
        if self.jobs is None:
            return []
        try:
            return self.jobs.scan()
        except BackendUnavailable as exc:
            logger.warning("jobs not evaluated", extra={"reason": str(exc)})
            return None

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
                elif not self.hosts.prune(change.host, change.services):
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
        """Apply one alert's steps in order, stopping at the first that does not go through."""
        for step in change.steps:
            match step:
                case Write():
                    done = self._write(step, now, report, points)
                case Publish():
                    done = self._publish(step, change.alert_id, report)
                case Confirm():
                    done = self._confirm(step, change.alert_id, report)
            if not done:
                return

    def _write(
        self, write: Write, now: datetime, report: EvaluationReport, points: dict[str, list[Point]]
    ) -> bool:
        try:
            if write.after is None:
                assert write.before is not None
                written = self.alerts.delete(write.before.alert_id, write.before.version)
            else:
                written = self.alerts.put(write.after, write.expected_version)
        except BackendUnavailable as exc:
            report.write_failures += 1
            logger.warning(
                "alert write failed", extra={"alert_id": write.alert_id, "reason": str(exc)}
            )
            return False
        if not written:
            report.lost_races += 1
            return False
        point = transition_point(write, now)
        if point is not None:
            report.transitions += 1
            record = write.after or write.before
            assert record is not None
            points.setdefault(record.host, []).append(point)
            logger.info(
                "alert transition",
                extra={
                    "alert_id": write.alert_id,
                    "from": point.fields["previous"],
                    "to": point.fields["status"],
                },
            )
        return True

    def _publish(self, publish: Publish, alert_id: str, report: EvaluationReport) -> bool:
        try:
            self._publisher().publish(publish.message)
        except Exception as exc:
            # The outbox stays on the record: once the lease runs out, the next
            # evaluation decides afresh what is owed and sends it.
            report.publish_failures += 1
            logger.warning(
                "publish failed; will retry next evaluation",
                extra={"alert_id": alert_id, "reason": str(exc)},
            )
            return False
        report.notifications += 1
        return True

    def _confirm(self, confirm: Confirm, alert_id: str, report: EvaluationReport) -> bool:
        try:
            return self.alerts.put(confirm.after, confirm.sent.version)
        except BackendUnavailable as exc:
            report.write_failures += 1
            logger.warning(
                "could not record a sent notification; it may be sent again",
                extra={"alert_id": alert_id, "reason": str(exc)},
            )
            return False

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
        states = _choices(query.get("state"), list(HostStatus), "state")
        pattern = _glob(query.get("host"), "host")
        policy = self.policy
        views = []
        # No field values are shown: none need decoding.
        for h in sorted(self.hosts.scan(fields={}), key=lambda h: h.host):
            if pattern is not None and not pattern.matches(h.host):
                continue
            grace = policy.grace_for(h)
            status = host_status(h, now, grace)
            if states and status not in states:
                continue
            views.append(host_view(h, status, grace))
        return views

    def alert_views(self, now: datetime, query: Mapping[str, str]) -> list[dict[str, Any]]:
        """Alerts, open ones by default. Filters: `state` (comma list or `all`), `host` (glob),
        `severity`."""
        stored = [s for s in AlertState if s is not AlertState.INACTIVE]
        wanted = query.get("state")
        if not wanted:
            states: set[AlertState] = set(OPEN_STATES)
        elif wanted == "all":
            states = set(stored)
        else:
            states = _choices(wanted, stored, "state")
        pattern = _glob(query.get("host"), "host")
        severities = _choices(query.get("severity"), list(Severity), "severity")
        silences = [s for s in self.silences.list() if s.active_at(now)]
        views = []
        for record in sorted(self.alerts.scan(), key=lambda r: (r.host, r.alert_id)):
            if record.state not in states:
                continue
            if pattern is not None and not pattern.matches(record.host):
                continue
            if severities and record.severity not in severities:
                continue
            views.append(alert_view(record, silences))
        return views


def host_view(h: HostSnapshot, status: HostStatus, grace: Any) -> dict[str, Any]:
    return {
        "host": h.host,
        "state": status.value,
        "last_seen_at": iso(h.last_seen_at),
        "first_seen_at": iso(h.first_seen_at),
        "interval_s": h.interval.total_seconds(),
        "grace_s": grace.total_seconds(),
        "tags": h.tags,
        "agent_name": h.agent_name,
        "agent_version": h.agent_version,
        "retired_at": iso(h.retired_at),
        "series": h.series_count,
        "services": {name: s.status for name, s in sorted(h.services.items())},
    }


def alert_view(record: AlertRecord, active_silences: list[Silence]) -> dict[str, Any]:
    builtin = record.builtin_labels()
    silenced_by = [s.silence_id for s in active_silences if s.matches(builtin, record.labels)]

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


def _choices(raw: str | None, allowed: Sequence[E], name: str) -> set[E]:
    """The members of `allowed` a comma list names; 400 naming any it does not know."""
    if not raw:
        return set()
    by_value = {member.value: member for member in allowed}
    chosen = {part.strip() for part in raw.split(",") if part.strip()}
    unknown = chosen - by_value.keys()
    if unknown:
        raise InvalidPayload(
            f"unknown {name}",
            [
                Problem(
                    name,
                    f"must be among {', '.join(sorted(by_value))}; got {', '.join(sorted(unknown))}",
                )
            ],
        )
    return {by_value[value] for value in chosen}


def _glob(raw: str | None, name: str) -> Matcher | None:
    if not raw:
        return None
    if len(raw) > 256:
        raise InvalidPayload(f"{name} pattern too long", [Problem(name, "at most 256 characters")])
    return Matcher.compile(name, raw)
