"""One evaluation of the whole fleet: hosts, open alerts, silences and the time in; changes out.

Pure: it reads nothing and writes nothing, and returns what it observed
(`Evaluation.observed`, `.frozen`) with the changes. The use-case
(chalicelib.services.alerting) reads the tables once, calls `evaluate`, and
applies only the changes it returns: host writes, then each alert's ordered
steps (compare-and-swap writes, publish, confirm).

Missing data: a series not updated for max(5 min, 2 x the host's interval)
is absent, and so is a series that breaches nothing: the host item keeps only
the series some rule would act on (core/hosts.py, `watched_series`). While the host itself is silent (late, down or paused) its
threshold and service alerts keep their state and send no reminders: the
heartbeat alert speaks for it, and an ingest outage does not resolve and
re-page everything (a resolved notice still goes out if owed). While
the host posts, an absent series counts as "condition not holding": a firing
alert resolves after its keep_firing_for. A retired or forgotten host's
alerts resolve.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from chalicelib.core.alert_message import AlertKind, Severity
from chalicelib.core.alerts import (
    OPEN_STATES,
    AlertChange,
    AlertRecord,
    Observation,
    StepContext,
    Timing,
    heartbeat_alert_id,
    service_alert_id,
    step,
    threshold_alert_id,
)
from chalicelib.core.durations import format_duration
from chalicelib.core.heartbeats import (
    HOST_GRACE_TAG,
    HostSnapshot,
    HostStatus,
    host_grace_tag,
    host_status,
)
from chalicelib.core.history_rules import HistoryValues
from chalicelib.core.hosts import HostState, rule_value
from chalicelib.core.instants import iso, ms_of_instant
from chalicelib.core.matchers import matches_all
from chalicelib.core.models import EventStatus
from chalicelib.core.rules import (
    HEARTBEAT_RULE,
    OUTAGE_RULE,
    SERVICE_RULE,
    RuleSet,
    ThresholdRule,
)
from chalicelib.core.silences import Silence

# The host fleet-wide alerts are reported under.
FLEET_HOST = "fleetpulse"
OUTAGE_ALERT_ID = f"{FLEET_HOST}/{OUTAGE_RULE}"
STALE_AFTER = timedelta(minutes=5)  # and at least 2 intervals
SERVICE_FORGET_AFTER = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class AlertingPolicy:
    """The rules file plus the deployment's settings."""

    rules: RuleSet
    default_grace: timedelta = timedelta(minutes=2)
    outage_share: float = 0.3
    outage_min_hosts: int = 3
    retired_retention: timedelta = timedelta(days=7)
    resolved_retention: timedelta = timedelta(hours=24)
    notify_lease: timedelta = timedelta(seconds=30)
    status_url: str | None = None

    @property
    def fields_used(self) -> dict[str, frozenset[str]]:
        """measurement -> the fields threshold rules read: the only ones worth decoding."""
        return {
            m: frozenset(n for r in rules for n in (r.field, r.divide_by) if n is not None)
            for m, rules in self.rules.by_measurement.items()
        }

    def grace_for_tags_absent(self) -> timedelta:
        """The grace of a host with no `heartbeat_grace` tag and no matching override."""
        heartbeat = self.rules.heartbeat
        return heartbeat.grace if heartbeat.grace is not None else self.default_grace

    def grace_for(self, host: HostSnapshot) -> timedelta:
        """Host tag `heartbeat_grace`, else the first matching override, else the global grace."""
        tagged = host_grace_tag(host.tags) if host.tags else None
        if tagged is not None:
            return tagged
        heartbeat = self.rules.heartbeat
        if heartbeat.overrides:
            names = {"host": host.host}
            for override in heartbeat.overrides:
                if matches_all(override.matchers, names, host.tags):
                    return override.grace
        return self.grace_for_tags_absent()

    def timing(self, kind: AlertKind, rule: str) -> Timing:
        if rule in (HEARTBEAT_RULE, OUTAGE_RULE):
            return Timing(repeat=self.rules.heartbeat.repeat)
        if rule == SERVICE_RULE:
            return Timing(repeat=self.rules.events.repeat)
        found = self.rules.by_name.get(rule)
        if found is None:
            return Timing()
        return Timing(found.hold, found.keep, found.repeat)


class HostAction(enum.StrEnum):
    MARK_DOWN = "mark_down"  # state up -> down, if last_seen_at is still what was read
    FORGET = "forget"  # delete a retired host past its retention
    PRUNE = "prune"  # remove long-stale services from the item


@dataclass(frozen=True, slots=True)
class HostChange:
    action: HostAction
    host: str
    last_seen_at: datetime
    alert_id: str | None = None  # MARK_DOWN: the heartbeat alert that waits on it
    services: dict[str, int] = field(default_factory=dict)  # PRUNE: name -> time_ms read


@dataclass(slots=True)
class Evaluation:
    """What one evaluation saw and the changes it makes, in the order to apply them."""

    now: datetime
    alerts: list[AlertChange]
    hosts: list[HostChange]
    statuses: dict[HostStatus, int]
    outage: bool = False
    silent_hosts: int = 0
    active_hosts: int = 0
    # alert id -> what was seen for it (absent: no data, the condition counts as not holding)
    observed: dict[str, Observation] = field(default_factory=dict)
    # alerts that keep their state and stay quiet: a silent host's, or an `unknown` service's
    frozen: frozenset[str] = frozenset()


def evaluate(
    hosts: Iterable[HostSnapshot],
    alerts: Mapping[str, AlertRecord],
    silences: Sequence[Silence],
    policy: AlertingPolicy,
    now: datetime,
    *,
    history: HistoryValues | None = None,
) -> Evaluation:
    """Every change this evaluation makes: alert transitions and notifications, host writes.

    `history`: the values of window, baseline and forecast rules (core/history_rules.py).
    """
    now_ms = ms_of_instant(now)
    by_measurement = policy.rules.by_measurement
    hosts_with_alerts = {r.host for r in alerts.values()}
    obs: dict[str, Observation] = {}
    frozen_hosts: set[str] = set()
    frozen_ids: set[str] = set()
    host_changes: list[HostChange] = []
    statuses = dict.fromkeys(HostStatus, 0)
    down: list[tuple[HostSnapshot, timedelta]] = []
    live: dict[str, HostSnapshot] = {}
    active = silent = 0
    # Per host, only what can differ between hosts is worked out: most hosts have the
    # fleet's grace, no alert, no watched series and services that say "ok".
    grace_of = _grace_lookup(policy)
    forget_services_ms = now_ms - int(SERVICE_FORGET_AFTER.total_seconds() * 1000)
    stale_after_ms = int(STALE_AFTER.total_seconds() * 1000)
    for h in hosts:
        grace = grace_of(h)
        status = host_status(h, now, grace)
        statuses[status] += 1
        has_alerts = h.host in hosts_with_alerts
        if status is HostStatus.RETIRED:
            if now - h.last_seen_at >= policy.retired_retention:
                host_changes.append(HostChange(HostAction.FORGET, h.host, h.last_seen_at))
            if h.lifecycle and has_alerts:
                # Retired by EC2: the heartbeat alert resolves saying why (core/lifecycle.py).
                obs[heartbeat_alert_id(h.host)] = _heartbeat_obs(h, grace, policy, now, False)
            continue
        hb_id = heartbeat_alert_id(h.host) if has_alerts else ""
        hb_record = alerts.get(hb_id) if has_alerts else None
        hb_open = hb_record is not None and hb_record.state in OPEN_STATES
        if status is not HostStatus.PAUSED:
            active += 1
            if not hb_open and now - h.last_seen_at > h.interval + grace / 2:
                silent += 1
        if status is HostStatus.DOWN:
            down.append((h, grace))
        elif hb_record is not None:
            obs[hb_id] = _heartbeat_obs(h, grace, policy, now, breaching=False)
        if status is HostStatus.LATE or status is HostStatus.DOWN or status is HostStatus.PAUSED:
            frozen_hosts.add(h.host)
        else:
            live[h.host] = h
            if h.series:
                interval_ms = int(h.interval.total_seconds() * 1000)
                stale_ms = now_ms - max(stale_after_ms, 2 * interval_ms)
                seen = _thresholds(
                    h,
                    by_measurement=by_measurement,
                    alerts=alerts,
                    has_alerts=has_alerts,
                    stale_ms=stale_ms,
                )
                if seen:
                    obs.update(seen)
            if h.services:
                seen, unknown = _services(
                    h, policy=policy, alerts=alerts, has_alerts=has_alerts, now_ms=now_ms
                )
                if seen:
                    obs.update(seen)
                if unknown:
                    frozen_ids.update(unknown)
        services = h.services
        if services and any(e.time_ms < forget_services_ms for e in services.values()):
            old_services = {
                k: e.time_ms for k, e in services.items() if e.time_ms < forget_services_ms
            }
            host_changes.append(
                HostChange(HostAction.PRUNE, h.host, h.last_seen_at, services=old_services)
            )
    if history is not None:
        frozen_ids.update(history.held)
        obs.update(_history_obs(history, live, alerts))
    needed = max(policy.outage_min_hosts, math.ceil(policy.outage_share * active))
    outage = active > 0 and silent >= needed
    for h, grace in down:
        hb_id = heartbeat_alert_id(h.host)
        record = alerts.get(hb_id)
        if outage and (record is None or record.state not in OPEN_STATES):
            continue  # the fleet-wide alert speaks for this host
        obs[hb_id] = _heartbeat_obs(h, grace, policy, now, breaching=True)
        if h.state is HostState.UP or h.state is HostState.NEW:
            host_changes.append(HostChange(HostAction.MARK_DOWN, h.host, h.last_seen_at, hb_id))
    if outage or OUTAGE_ALERT_ID in alerts:
        obs[OUTAGE_ALERT_ID] = _outage_obs(outage, silent, active, policy)

    active_silences = [s for s in silences if s.active_at(now)]

    def silenced(record: AlertRecord) -> bool:
        if not active_silences:
            return False
        builtin = record.builtin_labels()
        return any(s.matches(builtin, record.labels) for s in active_silences)

    changes: list[AlertChange] = []
    frozen: set[str] = set(frozen_ids)
    for alert_id in {**obs, **alerts}:
        record = alerts.get(alert_id)
        if record is not None and record.kind is AlertKind.CHECK:
            continue  # decided by the checks schedule (core/checks.py)
        observation = obs.get(alert_id)
        subject = record or observation
        assert subject is not None
        # A silent host's other alerts keep their state, and stay quiet while it is
        # silent (no reminders): its heartbeat alert speaks for it (inhibition).
        inhibited = subject.host in frozen_hosts and subject.rule != HEARTBEAT_RULE
        if inhibited:
            frozen.add(alert_id)
        ctx = StepContext(
            now=now,
            timing=policy.timing(subject.kind, subject.rule),
            silenced=_always if inhibited else silenced,
            frozen=inhibited or alert_id in frozen_ids,
            lease=policy.notify_lease,
            retention=policy.resolved_retention,
            status_url=policy.status_url,
        )
        change = step(record, observation, ctx)
        if change is not None:
            changes.append(change)
    return Evaluation(
        now, changes, host_changes, statuses, outage, silent, active, obs, frozenset(frozen)
    )


def _grace_lookup(policy: AlertingPolicy) -> Callable[[HostSnapshot], timedelta]:
    """`policy.grace_for`, worked out once per set of values the heartbeat overrides read
    (hosts sharing them share their grace) rather than once per host; per host when an
    override reads the host name, or the host sets its own `heartbeat_grace` tag."""
    overrides = policy.rules.heartbeat.overrides
    fleet_grace = policy.grace_for_tags_absent()
    labels = tuple(dict.fromkeys(m.label for o in overrides for m in o.matchers))
    if "host" in labels:
        return policy.grace_for
    known: dict[tuple[str | None, ...], timedelta] = {}

    def grace_of(h: HostSnapshot) -> timedelta:
        tags = h.tags
        if not tags:
            return policy.grace_for(h) if overrides else fleet_grace
        if HOST_GRACE_TAG in tags:
            return policy.grace_for(h)
        if not overrides:
            return fleet_grace
        key = tuple([tags.get(label) for label in labels])
        grace = known.get(key)
        if grace is None:
            grace = known[key] = policy.grace_for(h)
        return grace

    return grace_of


def _always(record: AlertRecord) -> bool:
    return True


def _thresholds(
    h: HostSnapshot,
    *,
    by_measurement: Mapping[str, tuple[ThresholdRule, ...]],
    alerts: Mapping[str, AlertRecord],
    has_alerts: bool,
    stale_ms: int,
) -> dict[str, Observation]:
    """What every threshold rule sees on the host's fresh series.

    The hot loop of an evaluation: most series breach nothing and have no
    alert, and cost a dict lookup and a comparison per rule.
    """
    obs: dict[str, Observation] = {}
    host = h.host
    host_names = {"host": host}
    for s in h.series.values():
        if s.time_ms < stale_ms:
            continue
        rules = by_measurement.get(s.measurement)
        if rules is None:
            continue
        for rule in rules:
            value = rule_value(rule, s.fields)
            if value is None:
                continue
            if rule.matchers and not matches_all(rule.matchers, s.tags, h.tags, host_names):
                continue
            # The alert id is built only when it can matter: most hosts have no alert.
            alert_id = threshold_alert_id(host, rule.name, s.tags) if has_alerts else ""
            record = alerts.get(alert_id) if has_alerts else None
            level = rule.level(value, record is not None and record.state in OPEN_STATES)
            if level is None and record is None:
                continue
            if not alert_id:
                alert_id = threshold_alert_id(host, rule.name, s.tags)
            obs[alert_id] = _threshold_obs(
                rule, h, s.tags, float(value), level=level, alert_id=alert_id
            )
    return obs


def _history_obs(
    history: HistoryValues,
    live: Mapping[str, HostSnapshot],
    alerts: Mapping[str, AlertRecord],
) -> dict[str, Observation]:
    """What history rules' values show, judged like latest values, for hosts that are up."""
    obs: dict[str, Observation] = {}
    for d in history.values:
        h = live.get(d.host)
        rule = d.rule
        if h is None or (
            rule.matchers and not matches_all(rule.matchers, d.tags, h.tags, {"host": d.host})
        ):
            continue
        alert_id = threshold_alert_id(d.host, rule.name, d.tags)
        record = alerts.get(alert_id)
        level = rule.level(d.value, record is not None and record.state in OPEN_STATES)
        if level is not None or record is not None:
            obs[alert_id] = _threshold_obs(rule, h, d.tags, d.value, level=level, alert_id=alert_id)
    return obs


def _threshold_obs(
    rule: ThresholdRule,
    h: HostSnapshot,
    tags: dict[str, str],
    value: float,
    *,
    level: tuple[Severity, float] | None,
    alert_id: str,
) -> Observation:
    threshold: float | None
    if level is not None:
        severity: Severity | None = level[0]
        threshold = level[1]
    else:
        severity = None
        threshold = rule.warning if rule.warning is not None else rule.critical
    labels = {**h.tags, **tags, **rule.labels}
    values = {
        "host": h.host,
        "value": value,
        "threshold": threshold,
        "rule": rule.name,
        "severity": severity.value if severity else "ok",
        "measurement": rule.measurement,
        "field": rule.field,
        "op": rule.op.value,
        "tags": tags,
        "labels": labels,
    }
    return Observation(
        alert_id=alert_id,
        kind=AlertKind.THRESHOLD,
        host=h.host,
        rule=rule.name,
        severity=severity,
        summary=rule.summary.render(values),
        description=rule.description.render(values) if rule.description else "",
        value=value,
        threshold=threshold,
        labels=labels,
        runbook=rule.runbook,
    )


def _services(
    h: HostSnapshot,
    *,
    policy: AlertingPolicy,
    alerts: Mapping[str, AlertRecord],
    has_alerts: bool,
    now_ms: int,
) -> tuple[dict[str, Observation], list[str]]:
    """What the host's service events say, and the alerts an `unknown` status freezes."""
    obs: dict[str, Observation] = {}
    unknown: list[str] = []
    events = policy.rules.events
    for service, e in h.services.items():
        # The alert id is built only when it can matter: most services say "ok" and
        # most hosts have no alert.
        alert_id = service_alert_id(h.host, service) if has_alerts else ""
        record = alerts.get(alert_id) if has_alerts else None
        if (
            record is None
            and e.status == EventStatus.OK
            and (e.ttl_ms is None or now_ms <= e.time_ms + e.ttl_ms)
        ):
            continue
        if not alert_id:
            alert_id = service_alert_id(h.host, service)
        kind = AlertKind.EVENT
        severity: Severity | None
        if e.ttl_ms is not None and now_ms > e.time_ms + e.ttl_ms:
            kind = AlertKind.HEARTBEAT
            severity = events.expired_severity
            ago = format_duration(timedelta(milliseconds=now_ms - e.time_ms))
            summary = f"{service} on {h.host} stopped reporting (last event {ago} ago)"
        elif e.status in (EventStatus.CRITICAL, EventStatus.WARNING):
            severity = Severity(e.status)
            summary = f"{service} on {h.host} is {e.status}"
        elif e.status == EventStatus.OK:
            if record is None:
                continue
            severity = None
            summary = f"{service} on {h.host} is ok"
        else:  # unknown: says nothing either way, the alert keeps its state
            if record is not None:
                unknown.append(alert_id)
            continue
        if e.description and kind is AlertKind.EVENT:
            summary = f"{summary}: {e.description}"
        obs[alert_id] = Observation(
            alert_id=alert_id,
            kind=kind,
            host=h.host,
            rule=SERVICE_RULE,
            severity=severity,
            summary=summary,
            description=e.description,
            value=e.value,
            threshold=None,
            labels={**h.tags, "service": service},
            runbook=events.runbook,
        )
    return obs, unknown


def _heartbeat_obs(
    h: HostSnapshot, grace: timedelta, policy: AlertingPolicy, now: datetime, breaching: bool
) -> Observation:
    heartbeat = policy.rules.heartbeat
    silent_for = max(now - h.last_seen_at, timedelta(0))
    values = {
        "host": h.host,
        "silent_for": format_duration(silent_for),
        "period": format_duration(h.interval),
        "grace": format_duration(grace),
        "last_seen_at": iso(h.last_seen_at),
        "tags": h.tags,
    }
    return Observation(
        alert_id=heartbeat_alert_id(h.host),
        kind=AlertKind.HEARTBEAT,
        host=h.host,
        rule=HEARTBEAT_RULE,
        severity=heartbeat.severity if breaching else None,
        summary=(
            heartbeat.summary.render(values)
            if breaching
            else f"{h.host}: {h.lifecycle}"
            if h.lifecycle
            else f"{h.host} is reporting again"
        ),
        description=(
            f"last seen {values['last_seen_at']}; expected every {values['period']}, "
            f"down after {format_duration(h.interval + grace)} of silence"
        ),
        value=round(silent_for.total_seconds(), 3),
        threshold=(h.interval + grace).total_seconds(),
        labels=dict(h.tags),
        runbook=heartbeat.runbook,
    )


def _outage_obs(outage: bool, silent: int, active: int, policy: AlertingPolicy) -> Observation:
    share = silent / active if active else 0.0
    summary = (
        f"Ingest outage: {silent} of {active} hosts went silent at once"
        if outage
        else f"Ingest recovered: {silent} of {active} hosts silent"
    )
    return Observation(
        alert_id=OUTAGE_ALERT_ID,
        kind=AlertKind.HEARTBEAT,
        host=FLEET_HOST,
        rule=OUTAGE_RULE,
        severity=Severity.CRITICAL if outage else None,
        summary=summary,
        description=(
            "Many hosts stopped reporting in the same evaluation: the collector or the "
            "network is more likely at fault than the hosts. Per-host heartbeat alerts are "
            "held back while this fires."
        ),
        value=round(share, 4),
        threshold=policy.outage_share,
        runbook=policy.rules.heartbeat.runbook,
    )
