"""The status page's view of the fleet: hosts with their status and last hour, open alerts,
silences. A pure function of what the stores hold and the time; rendering is elsewhere
(chalicelib/status_page.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from chalicelib.core.alert_message import Severity
from chalicelib.core.alerts import AlertRecord, AlertState
from chalicelib.core.heartbeats import HostSnapshot, HostStatus, host_status
from chalicelib.core.hosts import HistoryPoint, recent_history
from chalicelib.core.matchers import matchers_as_json
from chalicelib.core.silences import Silence, SilenceState, describe

# What needs eyes first comes first.
HOST_ORDER = {
    HostStatus.DOWN: 0,
    HostStatus.LATE: 1,
    HostStatus.NEW: 2,
    HostStatus.UP: 2,
    HostStatus.PAUSED: 3,
    HostStatus.RETIRED: 4,
}
SEVERITY_ORDER = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}


@dataclass(frozen=True, slots=True)
class HostRow:
    host: str
    status: HostStatus
    last_seen_at: datetime
    interval: timedelta
    tags: dict[str, str]
    agent: str  # "fleetpulse-agent 0.1.0", or "" when the host never said
    history: tuple[HistoryPoint, ...]  # the last hour, oldest first
    open_alerts: int


@dataclass(frozen=True, slots=True)
class AlertRow:
    alert_id: str
    host: str
    rule: str
    state: AlertState  # pending or firing
    severity: Severity
    summary: str
    since: datetime  # firing: when it fired; pending: when the condition began
    silenced: bool


@dataclass(frozen=True, slots=True)
class SilenceRow:
    silence_id: str
    matchers: dict[str, str]
    state: SilenceState  # active or pending
    schedule: str  # "sun 02:00-04:00 UTC", or "" for a one-shot silence
    starts_at: datetime | None  # the next start when not active now
    ends_at: datetime | None  # when it stops silencing next (window end or expiry)
    comment: str
    created_by: str


@dataclass(frozen=True, slots=True)
class StatusView:
    now: datetime
    hosts: tuple[HostRow, ...]
    alerts: tuple[AlertRow, ...]
    silences: tuple[SilenceRow, ...]

    def host_counts(self) -> dict[HostStatus, int]:
        counts = dict.fromkeys(HostStatus, 0)
        for h in self.hosts:
            counts[h.status] += 1
        return counts

    def alert_counts(self) -> dict[AlertState, int]:
        return {
            state: sum(1 for a in self.alerts if a.state is state)
            for state in (AlertState.FIRING, AlertState.PENDING)
        }


def status_view(
    hosts: Iterable[HostSnapshot],
    grace_for: Callable[[HostSnapshot], timedelta],
    alerts: Iterable[AlertRecord],
    silences: Sequence[Silence],
    now: datetime,
) -> StatusView:
    """What the status page shows at `now`."""
    active = [s for s in silences if s.active_at(now)]
    alert_rows = []
    per_host: dict[str, int] = {}
    for record in alerts:
        if record.state not in (AlertState.PENDING, AlertState.FIRING):
            continue
        per_host[record.host] = per_host.get(record.host, 0) + 1
        builtin = {
            "host": record.host,
            "rule": record.rule,
            "kind": record.kind.value,
            "severity": record.severity.value,
            "alert_id": record.alert_id,
        }
        firing = record.state is AlertState.FIRING
        alert_rows.append(
            AlertRow(
                alert_id=record.alert_id,
                host=record.host,
                rule=record.rule,
                state=record.state,
                severity=record.severity,
                summary=record.summary,
                since=(record.fired_at or record.active_at) if firing else record.active_at,
                silenced=any(s.matches(builtin, record.labels) for s in active),
            )
        )
    alert_rows.sort(
        key=lambda a: (
            a.state is not AlertState.FIRING,
            SEVERITY_ORDER[a.severity],
            a.since,
            a.alert_id,
        )
    )
    host_rows = []
    for h in hosts:
        status = host_status(h, now, grace_for(h))
        agent = " ".join(x for x in (h.agent_name, h.agent_version) if x)
        host_rows.append(
            HostRow(
                host=h.host,
                status=status,
                last_seen_at=h.last_seen_at,
                interval=h.interval,
                tags=dict(h.tags),
                agent=agent,
                history=tuple(recent_history(h.history, now)),
                open_alerts=per_host.get(h.host, 0),
            )
        )
    host_rows.sort(key=lambda r: (HOST_ORDER[r.status], r.host))
    silence_rows = [row for row in (silence_row(s, now) for s in silences) if row is not None]
    silence_rows.sort(key=lambda r: (r.state is not SilenceState.ACTIVE, r.starts_at or now))
    return StatusView(now, tuple(host_rows), tuple(alert_rows), tuple(silence_rows))


def silence_row(silence: Silence, now: datetime) -> SilenceRow | None:
    """A silence as the page lists it; None once it is expired."""
    state = silence.state_at(now)
    if state is SilenceState.EXPIRED:
        return None
    starts_at: datetime | None = None
    ends_at = silence.ends_at
    schedule = ""
    if silence.schedule is not None:
        schedule = describe(silence)
        window = silence.schedule.window_at(now)
        if state is SilenceState.ACTIVE and window is not None:
            ends_at = min(window[1], silence.ends_at) if silence.ends_at else window[1]
        else:
            starts_at = silence.schedule.next_start(max(now, silence.starts_at - _TICK))
            ends_at = None
    elif state is SilenceState.PENDING:
        starts_at = silence.starts_at
    return SilenceRow(
        silence_id=silence.silence_id,
        matchers=matchers_as_json(silence.matchers),
        state=state,
        schedule=schedule,
        starts_at=starts_at,
        ends_at=ends_at,
        comment=silence.comment,
        created_by=silence.created_by,
    )


_TICK = timedelta(microseconds=1)


def ago(then: datetime, now: datetime) -> str:
    """`12 s ago`, `5 min ago`, `3 h 20 min ago`, `4 d ago`; `in 5 min` for the future."""
    delta = now - then
    text = span(abs(delta))
    return f"in {text}" if delta < timedelta(0) else f"{text} ago"


def span(delta: timedelta) -> str:
    """A duration the way people say it on a status page: one or two units."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} d"


def clock_text(at: datetime, now: datetime) -> str:
    """`14:05:09 UTC` today, `Nov 21 14:05 UTC` on another day."""
    at = at.astimezone(UTC)
    if at.date() == now.astimezone(UTC).date():
        return at.strftime("%H:%M:%S UTC")
    return at.strftime("%b %d %H:%M UTC")
