"""The alert lifecycle: a state machine that is handed an observation and the time.

States: inactive (no record) -> pending (condition holds, `for` not yet) ->
firing -> resolved (kept for a retention, then inactive again). What one
evaluation does to one alert is data: an AlertChange, an ordered list of
steps (Write, Publish, Confirm) the caller applies in order. Each Write and
Confirm is a compare-and-swap on the record's `version`; losing the race is a
no-op and ends the list, so two evaluators produce one transition and one
notification.

Notifications come from the record, never from evaluation itself. `notified`
is what subscribers were last told (confirmed), `outbox` a message claimed for
sending and not yet confirmed. The steps are: write the change with the
outbox (CAS), publish, confirm (CAS). A publish that fails leaves the outbox;
once it is older than the lease the next evaluation decides afresh what is
owed and claims it again. Delivery is at least once; the dedup_key is stable
for an episode, so a repeat is harmless to PagerDuty.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from chalicelib.core.alert_message import (
    MESSAGE_VERSION,
    AlertKind,
    AlertMessage,
    AlertStatus,
    Link,
    Severity,
)
from chalicelib.core.host_links import host_page_url
from chalicelib.core.instants import iso, ms_of_instant
from chalicelib.core.models import ALERT_MEASUREMENT, FieldValue, Point
from chalicelib.core.text import clip

SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}
MAX_ALERT_ID = 200
MAX_TEXT = 1000  # summary and description, in messages and the event log


class AlertState(enum.StrEnum):
    INACTIVE = "inactive"  # never stored: no record
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


OPEN_STATES = frozenset({AlertState.PENDING, AlertState.FIRING})


@dataclass(frozen=True, slots=True)
class Observation:
    """What one evaluation saw for one alert. `severity` None: the condition does not hold."""

    alert_id: str
    kind: AlertKind
    host: str
    rule: str
    severity: Severity | None
    summary: str
    description: str = ""
    value: float | None = None
    threshold: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    runbook: str | None = None


@dataclass(frozen=True, slots=True)
class Timing:
    hold: timedelta = timedelta(0)  # `for`: pending this long before firing
    keep: timedelta = timedelta(0)  # `keep_firing_for`: firing this long after it clears
    repeat: timedelta = timedelta(hours=4)  # reminder interval while firing


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One alert's stored state. Instants are UTC-aware; `version` guards every write."""

    alert_id: str
    kind: AlertKind
    host: str
    rule: str
    state: AlertState
    severity: Severity
    summary: str
    active_at: datetime  # the episode began (condition first held)
    description: str = ""
    value: float | None = None
    threshold: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    runbook: str | None = None
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    clear_since: datetime | None = None  # condition stopped holding (keep_firing_for runs)
    notified: AlertStatus | None = None  # last status subscribers were told
    notified_at: datetime | None = None
    notified_severity: Severity | None = None
    outbox: AlertMessage | None = None  # claimed for sending, not yet confirmed
    outbox_at: datetime | None = None
    version: int = 0
    updated_at: datetime | None = None

    @property
    def dedup_key(self) -> str:
        return episode_key(self.alert_id, self.active_at)

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    def builtin_labels(self) -> dict[str, str]:
        """The labels every alert has, which silence matchers see before the rule's own."""
        return {
            "host": self.host,
            "rule": self.rule,
            "kind": self.kind.value,
            "severity": self.severity.value,
            "alert_id": self.alert_id,
        }


def episode_key(alert_id: str, active_at: datetime) -> str:
    return f"{alert_id}/{int(active_at.timestamp())}"


@dataclass(frozen=True, slots=True)
class Write:
    """Store `after` in place of `before` (None: create / delete), if the stored record
    still has `before`'s version (or, creating, does not exist)."""

    before: AlertRecord | None
    after: AlertRecord | None

    @property
    def alert_id(self) -> str:
        record = self.after or self.before
        assert record is not None
        return record.alert_id

    @property
    def expected_version(self) -> int | None:
        """The version the stored record must still have; None: it must not exist."""
        return self.before.version if self.before is not None else None

    @property
    def transition(self) -> tuple[AlertState, AlertState] | None:
        """(from, to) when the state or the severity changed: worth an annotation."""
        old = self.before.state if self.before else AlertState.INACTIVE
        new = self.after.state if self.after else AlertState.INACTIVE
        if old is not new:
            if old is AlertState.RESOLVED and new is AlertState.INACTIVE:
                return None  # housekeeping, not news
            return old, new
        if self.before and self.after and self.before.severity is not self.after.severity:
            return old, new
        return None


@dataclass(frozen=True, slots=True)
class Publish:
    """Send `message`, which the Write before it put in the record's outbox."""

    message: AlertMessage


@dataclass(frozen=True, slots=True)
class Confirm:
    """Record that `sent`'s outbox went out: `after` (confirm_sent) replaces it, if the
    stored record is still `sent`. Losing this race only means it may be sent again."""

    sent: AlertRecord
    after: AlertRecord


Step = Write | Publish | Confirm


@dataclass(frozen=True, slots=True)
class AlertChange:
    """What one evaluation does to one alert: steps applied in order. A step that does
    not go through (a lost race, a backend error, a failed publish) ends the list."""

    alert_id: str
    steps: tuple[Step, ...]

    def writes(self) -> Iterator[Write]:
        return (s for s in self.steps if isinstance(s, Write))


@dataclass(frozen=True, slots=True)
class StepContext:
    now: datetime
    timing: Timing
    silenced: Callable[[AlertRecord], bool]
    frozen: bool = False  # keep the state as it is (the host is silent, or data is unknown)
    lease: timedelta = timedelta(seconds=30)  # how long a claimed notification is in flight
    retention: timedelta = timedelta(hours=24)  # how long a resolved record is kept
    status_url: str | None = None


def step(
    record: AlertRecord | None, obs: Observation | None, ctx: StepContext
) -> AlertChange | None:
    """What one evaluation does to one alert, or None when there is nothing to write.

    `obs` None means there is no data for the alert (the series went stale,
    the rule was removed, the host was forgotten or retired): it counts as
    the condition not holding.
    """
    steps = _steps(record, obs, ctx)
    if not steps:
        return None
    first = steps[0]
    assert isinstance(first, Write)
    return AlertChange(first.alert_id, tuple(steps))


def _steps(record: AlertRecord | None, obs: Observation | None, ctx: StepContext) -> list[Step]:
    now = ctx.now
    current = record
    dirty = False
    if record is not None and record.outbox is not None:
        if record.outbox_at is not None and now - record.outbox_at < ctx.lease:
            return []  # another evaluation is publishing this very alert
        current = replace(record, outbox=None, outbox_at=None)
        dirty = True
    after = current if ctx.frozen else _advance(current, obs, ctx)
    message: AlertMessage | None = None
    then = False
    if after is not None:
        status = owed(after, now, ctx.timing.repeat, ctx.silenced)
        if status is not None:
            if status is AlertStatus.FIRING and obs is not None and obs.severity is not None:
                after = _observed(after, obs)
            message = build_message(after, status, ctx.status_url)
            after = replace(after, outbox=message, outbox_at=now)
            breaching = obs is not None and obs.severity is not None
            # A new episode waits for the last one's resolved notice: once it is
            # confirmed, the same evaluation goes on from the confirmed record.
            then = status is AlertStatus.RESOLVED and breaching and not ctx.frozen

    if after is current and not dirty:
        return []
    if after is None and record is None:
        return []
    if after is not None:
        after = replace(after, version=(record.version if record else 0) + 1, updated_at=now)
    steps: list[Step] = [Write(record, after)]
    if message is not None and after is not None:
        confirmed = confirm_sent(after, now)
        steps += [Publish(message), Confirm(after, confirmed)]
        if then:
            steps += _steps(confirmed, obs, ctx)
    return steps


def _advance(
    cur: AlertRecord | None, obs: Observation | None, ctx: StepContext
) -> AlertRecord | None:
    now, timing = ctx.now, ctx.timing
    breaching = obs is not None and obs.severity is not None
    if cur is None or cur.state is AlertState.RESOLVED:
        if not breaching:
            if (
                cur is not None
                and cur.notified is not AlertStatus.FIRING
                and cur.resolved_at is not None
                and now - cur.resolved_at >= ctx.retention
            ):
                return None
            return cur
        if cur is not None and cur.notified is AlertStatus.FIRING:
            return cur  # the last episode's resolved notice goes out before a new episode
        assert obs is not None
        assert obs.severity is not None
        firing = timing.hold <= timedelta(0)
        return AlertRecord(
            alert_id=obs.alert_id,
            kind=obs.kind,
            host=obs.host,
            rule=obs.rule,
            state=AlertState.FIRING if firing else AlertState.PENDING,
            severity=obs.severity,
            summary=obs.summary,
            active_at=now,
            description=obs.description,
            value=obs.value,
            threshold=obs.threshold,
            labels=obs.labels,
            runbook=obs.runbook,
            fired_at=now if firing else None,
            version=cur.version if cur else 0,
        )
    if cur.state is AlertState.PENDING:
        if not breaching:
            return None
        assert obs is not None
        if now - cur.active_at >= timing.hold:
            return _observed(cur, obs, state=AlertState.FIRING, fired_at=now)
        if obs.severity is not cur.severity:
            return _observed(cur, obs)
        return cur
    # firing
    if breaching:
        assert obs is not None
        if cur.clear_since is not None or obs.severity is not cur.severity:
            return _observed(cur, obs, clear_since=None)
        return cur
    if timing.keep <= timedelta(0) or (
        cur.clear_since is not None and now - cur.clear_since >= timing.keep
    ):
        resolved = replace(cur, state=AlertState.RESOLVED, resolved_at=now, clear_since=None)
        return _observed(resolved, obs) if obs is not None else resolved
    if cur.clear_since is None:
        return replace(cur, clear_since=now)
    return cur


def _observed(record: AlertRecord, obs: Observation, **changes: object) -> AlertRecord:
    """`record` with what `obs` saw (a clear observation keeps the last severity)."""
    return replace(
        record,
        kind=obs.kind,
        severity=obs.severity or record.severity,
        summary=obs.summary,
        description=obs.description,
        value=obs.value,
        threshold=obs.threshold,
        labels=obs.labels,
        runbook=obs.runbook,
        **changes,  # type: ignore[arg-type]
    )


def owed(
    record: AlertRecord,
    now: datetime,
    repeat: timedelta,
    silenced: Callable[[AlertRecord], bool],
) -> AlertStatus | None:
    """What subscribers should be told now about `record`, if anything.

    Firing: when they were not told yet, when it got worse than what they were
    told, or as a reminder every `repeat`, unless silenced. Resolved: when they
    were told it fired, even under a silence (a silence mutes new noise; it must
    not leave an incident it did not open hanging). An episode nobody was told
    about closes without a word.
    """
    if record.state is AlertState.FIRING:
        due = (
            record.notified is not AlertStatus.FIRING
            or record.notified_severity is None
            or SEVERITY_RANK[record.severity] > SEVERITY_RANK[record.notified_severity]
            or record.notified_at is None
            or now - record.notified_at >= repeat
        )
        if due and not silenced(record):
            return AlertStatus.FIRING
        return None
    if record.state is AlertState.RESOLVED and record.notified is AlertStatus.FIRING:
        return AlertStatus.RESOLVED
    return None


def confirm_sent(record: AlertRecord, now: datetime) -> AlertRecord:
    """The record once its outbox message was published: subscribers now know."""
    message = record.outbox
    assert message is not None
    return replace(
        record,
        notified=AlertStatus(message["status"]),
        notified_at=record.outbox_at,
        notified_severity=Severity(message["severity"]),
        outbox=None,
        outbox_at=None,
        version=record.version + 1,
        updated_at=now,
    )


def build_message(record: AlertRecord, status: AlertStatus, status_url: str | None) -> AlertMessage:
    """The Contract 2 message for `record` in `status`."""
    links: list[Link] = []
    if record.runbook:
        links.append({"href": record.runbook, "text": "Runbook"})
    if status_url:
        links.append({"href": status_url, "text": "Status page"})
        if record.host:
            links.append({"href": host_page_url(status_url, record.host), "text": "Host history"})
    started = iso(record.active_at)
    assert started is not None
    return {
        "version": MESSAGE_VERSION,
        "alert_id": record.alert_id,
        "dedup_key": record.dedup_key,
        "status": status.value,
        "severity": record.severity.value,
        "kind": record.kind.value,
        "host": record.host,
        "rule": record.rule,
        "summary": clip(record.summary, MAX_TEXT) or f"{record.rule} on {record.host}",
        "description": clip(record.description, MAX_TEXT),
        "value": record.value,
        "threshold": record.threshold,
        "labels": dict(record.labels),
        "started_at": started,
        "resolved_at": iso(record.resolved_at) if status is AlertStatus.RESOLVED else None,
        "links": links,
    }


def transition_point(write: Write, now: datetime) -> Point | None:
    """The write as a point of the reserved `alert` measurement (graph annotations)."""
    transition = write.transition
    record = write.after or write.before
    if transition is None or record is None:
        return None
    fields: dict[str, FieldValue] = {
        "status": transition[1].value,
        "previous": transition[0].value,
        "severity": record.severity.value,
        "summary": clip(record.summary, MAX_TEXT) or record.rule,
    }
    if record.value is not None:
        fields["value"] = float(record.value)
    if record.threshold is not None:
        fields["threshold"] = float(record.threshold)
    return Point(
        ALERT_MEASUREMENT,
        ms_of_instant(now),
        {"alert_id": record.alert_id, "rule": record.rule, "kind": record.kind.value},
        fields,
    )


def _bounded(alert_id: str, host: str, rule: str) -> str:
    if len(alert_id) <= MAX_ALERT_ID:
        return alert_id
    digest = hashlib.sha256(alert_id.encode()).hexdigest()[:24]
    return f"{host[:100]}/{rule}/{digest}"


def threshold_alert_id(host: str, rule: str, tags: dict[str, str]) -> str:
    """`web-1/disk-full/device=sda1,mount=/`: one alert per host, rule and series."""
    if not tags:
        return f"{host}/{rule}"
    key = ",".join(f"{k}={tags[k]}" for k in sorted(tags))
    return _bounded(f"{host}/{rule}/{key}", host, rule)


def heartbeat_alert_id(host: str) -> str:
    return f"{host}/heartbeat"


def service_alert_id(host: str, service: str) -> str:
    return _bounded(f"{host}/service/{service}", host, "service")
