"""Jobs: cron jobs and service heartbeats that ping, judged like healthchecks judges checks.

Only facts are stored (the definition, the last finished run, the runs
started and not finished, the last ping); whether a job is late, failed, hung
or too quick is derived from them and the time (`job_status`), as
healthchecks' `Check.get_status` derives `grace` and `down` from the last
ping. A ping is applied by `apply_ping`: the stored state and the time in,
the new state and what the run measured out. The caller writes the new state
with a compare-and-swap on `version`.

Pure: the time comes in as an argument; `cronsim` and `zoneinfo` are the only
libraries used, imported where a cron schedule is read.
"""

from __future__ import annotations

import enum
import math
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.core.alert_message import AlertKind, Severity
from chalicelib.core.alerts import (
    AlertChange,
    AlertRecord,
    Observation,
    StepContext,
    Timing,
    step,
)
from chalicelib.core.durations import format_duration, parse_duration
from chalicelib.core.errors import InvalidPayload, Problem
from chalicelib.core.instants import iso
from chalicelib.core.text import clip

if TYPE_CHECKING:
    from chalicelib.core.silences import Silence

JOB_RULE = "job"
JOB_HOST = "fleetpulse"  # the host a job's alert is reported under, unless labels name one
SLUG_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,99}\Z")
MIN_PERIOD = timedelta(seconds=1)
MAX_PERIOD = timedelta(days=365)
MAX_GRACE = timedelta(days=365)
DEFAULT_PERIOD = timedelta(days=1)  # `?create=1`, as healthchecks' defaults
DEFAULT_GRACE = timedelta(hours=1)
MAX_BODY = 100_000  # of a ping body, no more is read
KEPT_LOG = 10_000  # the first 10 KB of a body are kept as the run's log
DESCRIPTION_LOG = 800  # the log's tail that goes into the alert's description
FUTURE_SKEW = timedelta(minutes=1)  # a `?t=` this far ahead of the collector's clock is fine
MAX_OPEN_RUNS = 32  # starts without a finish kept per job; the oldest go first
MAX_LABELS = 20
MAX_TEXT = 1000
# Per job: a bucket of PING_BURST pings that refills at PING_RATE a second. A
# job pinging every second with /start and a finish fits; a runaway loop gets
# 429 and costs one read per request, no write.
PING_BURST = 120.0
PING_RATE = 2.0
_DEFINITION_KEYS = frozenset(
    {
        "period",
        "schedule",
        "tz",
        "grace",
        "max_duration",
        "min_duration",
        "severity",
        "labels",
        "summary",
        "runbook",
    }
)


class JobStatus(enum.StrEnum):
    NEW = "new"  # never finished a run: nothing to judge yet (healthchecks' `new`)
    UP = "up"
    GRACE = "grace"  # past the expected time, within the grace: late, not yet alerting
    DOWN = "down"  # missed its schedule
    FAILED = "failed"  # the last run reported failure
    HUNG = "hung"  # a run started and did not finish within max_duration
    SHORT = "short"  # the last run finished faster than min_duration


ALERTING = frozenset({JobStatus.DOWN, JobStatus.FAILED, JobStatus.HUNG, JobStatus.SHORT})


class PingKind(enum.StrEnum):
    SUCCESS = "success"
    START = "start"
    FAIL = "fail"
    LOG = "log"


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job's definition, as PUT /v1/jobs/{slug} takes it."""

    slug: str
    period: timedelta | None = DEFAULT_PERIOD
    schedule: str | None = None
    tz: str = "UTC"
    grace: timedelta = DEFAULT_GRACE
    max_duration: timedelta | None = None
    min_duration: timedelta | None = None
    severity: Severity = Severity.CRITICAL
    labels: dict[str, str] = field(default_factory=dict)
    summary: str | None = None
    runbook: str | None = None

    def as_json(self) -> dict[str, Any]:
        def d(value: timedelta | None) -> str | None:
            return format_duration(value) if value is not None else None

        return {
            "slug": self.slug,
            "period": d(self.period),
            "schedule": self.schedule,
            "tz": self.tz,
            "grace": d(self.grace),
            "max_duration": d(self.max_duration),
            "min_duration": d(self.min_duration),
            "severity": self.severity.value,
            "labels": dict(self.labels),
            "summary": self.summary,
            "runbook": self.runbook,
        }


@dataclass(frozen=True, slots=True)
class LastRun:
    """The last finished run."""

    finished_at: datetime
    ok: bool
    exit_status: int | None = None  # None: /fail or success without a code
    duration: timedelta | None = None  # None: no start was paired with it


@dataclass(frozen=True, slots=True)
class Job:
    """One job: its definition and the facts its pings left. `version` guards every write."""

    spec: JobSpec
    ping_id: str
    created_at: datetime
    version: int = 0
    last_ping_at: datetime | None = None
    last_run: LastRun | None = None
    runs: dict[str, datetime] = field(default_factory=dict)  # rid ("" none) -> started_at
    log: str = ""  # the last finish's (or /log's) body, first KEPT_LOG characters
    tail: str = ""  # and its last DESCRIPTION_LOG characters: a failure's last lines
    bucket: float = PING_BURST  # pings left in the rate limiter
    bucket_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Ping:
    kind: PingKind
    at: datetime  # when it arrived
    exit_status: int | None = None
    rid: str | None = None
    body: str = ""
    happened_at: datetime | None = None  # `?t=`: when it happened, for a ping sent late

    @property
    def event_at(self) -> datetime:
        return self.happened_at or self.at


@dataclass(frozen=True, slots=True)
class PingResult:
    """What a ping did: the job to write (None: nothing to write), the run it finished."""

    job: Job | None
    limited: bool = False
    finished: LastRun | None = None


class JobStore(Protocol):
    """Jobs keyed by slug, found by ping id too. Writes are conditional on `version`."""

    def get(self, slug: str) -> Job | None: ...

    def by_ping_id(self, ping_id: str) -> Job | None: ...

    def scan(self) -> list[Job]: ...

    def define(self, spec: JobSpec, ping_id: str, now: datetime) -> Job:
        """Create the job or replace its definition, keeping its ping id and state."""
        ...

    def create(self, job: Job) -> bool:
        """Store a new job; False when the slug exists."""
        ...

    def put(self, job: Job, expected_version: int) -> bool:
        """Replace the job if its stored version is still `expected_version`."""
        ...

    def delete(self, slug: str) -> bool: ...


# ------------------------------------------------------------------ definitions


def valid_slug(slug: str) -> bool:
    return bool(SLUG_RE.match(slug))


def new_ping_id(entropy: bytes) -> str:
    """An unguessable id (uuid4) from 16 random bytes: the ping URL is the credential."""
    return str(uuid.UUID(bytes=entropy, version=4))


def parse_spec(slug: str, raw: object) -> JobSpec:
    """A definition from JSON; InvalidPayload naming every bad field by its path."""
    problems: list[Problem] = []
    if not valid_slug(slug):
        problems.append(
            Problem("slug", "use 1-100 lowercase letters, digits, - and _, starting alphanumeric")
        )
    if not isinstance(raw, dict):
        raise InvalidPayload("bad job definition", [*problems, Problem("", "must be an object")])
    for key in sorted(set(raw) - _DEFINITION_KEYS - {"slug"}):
        problems.append(Problem(key, "unknown field"))
    if "slug" in raw and raw["slug"] != slug:
        problems.append(Problem("slug", "must match the slug in the URL"))

    def duration(key: str, lo: timedelta, hi: timedelta) -> timedelta | None:
        value = raw.get(key)
        if value is None:
            return None
        try:
            parsed = parse_duration(value)
        except ValueError as exc:
            problems.append(Problem(key, str(exc)))
            return None
        if not lo <= parsed <= hi:
            problems.append(
                Problem(key, f"must be from {format_duration(lo)} to {format_duration(hi)}")
            )
            return None
        return parsed

    def text(key: str, limit: int = MAX_TEXT) -> str | None:
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            problems.append(Problem(key, f"must be text of 1 to {limit} characters"))
            return None
        return value

    period = duration("period", MIN_PERIOD, MAX_PERIOD)
    schedule = text("schedule", 200)
    tz = text("tz", 64) or "UTC"
    if schedule is not None:
        if raw.get("period") is not None:
            problems.append(Problem("schedule", "give period or schedule, not both"))
        problem = _cron_problem(schedule)
        if problem:
            problems.append(Problem("schedule", problem))
    elif raw.get("period") is None:
        period = DEFAULT_PERIOD
    if raw.get("tz") is not None:
        problem = _tz_problem(tz)
        if problem:
            problems.append(Problem("tz", problem))
    grace = duration("grace", timedelta(0), MAX_GRACE)
    max_duration = duration("max_duration", MIN_PERIOD, MAX_PERIOD)
    min_duration = duration("min_duration", timedelta(0), MAX_PERIOD)
    if max_duration and min_duration and min_duration >= max_duration:
        problems.append(Problem("min_duration", "must be shorter than max_duration"))
    severity = Severity.CRITICAL
    if raw.get("severity") is not None:
        try:
            severity = Severity(raw["severity"])
        except (ValueError, TypeError):
            problems.append(Problem("severity", "must be critical, warning or info"))
    labels: dict[str, str] = {}
    raw_labels = raw.get("labels")
    if raw_labels is not None:
        if not isinstance(raw_labels, dict) or len(raw_labels) > MAX_LABELS:
            problems.append(Problem("labels", f"must be an object of at most {MAX_LABELS}"))
        else:
            for k, v in raw_labels.items():
                if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,59}", k):
                    problems.append(
                        Problem(f"labels.{k}", "a name of letters, digits and _ with a text value")
                    )
                elif len(v) > 256:
                    problems.append(Problem(f"labels.{k}", "at most 256 characters"))
                else:
                    labels[k] = v
    runbook = text("runbook", 2000)
    if runbook is not None and not runbook.startswith(("https://", "http://")):
        problems.append(Problem("runbook", "must be an http(s) URL"))
    summary = text("summary")
    if problems:
        raise InvalidPayload("bad job definition", problems)
    return JobSpec(
        slug=slug,
        period=None if schedule is not None else period,
        schedule=schedule,
        tz=tz,
        grace=grace if grace is not None else DEFAULT_GRACE,
        max_duration=max_duration,
        min_duration=min_duration,
        severity=severity,
        labels=labels,
        summary=summary,
        runbook=runbook,
    )


def _cron_problem(expression: str) -> str | None:
    from cronsim import CronSim, CronSimError

    try:
        CronSim(expression, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        return f"not a cron expression: {exc}"
    return None


def _tz_problem(name: str) -> str | None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {name!r}; use an IANA name like Europe/Paris"
    return None


# ------------------------------------------------------------------ status


def next_expected(spec: JobSpec, after: datetime) -> datetime:
    """When the next ping is due after a ping at `after`.

    A cron schedule is read in the job's time zone by cronsim, which runs a
    time skipped by a DST change at the change and a repeated time once (as
    Debian's cron does), so a 02:30 job on a spring-forward night is expected
    at 03:00, and one in the repeated hour is not expected twice.
    """
    if spec.schedule is None:
        assert spec.period is not None
        return after + spec.period
    from zoneinfo import ZoneInfo

    from cronsim import CronSim

    local = after.astimezone(ZoneInfo(spec.tz))
    return next(iter(CronSim(spec.schedule, local))).astimezone(UTC)


def going_down_after(job: Job) -> datetime | None:
    """When the job goes down if no run finishes first; None for a new job."""
    if job.last_run is None:
        return None
    return next_expected(job.spec, job.last_run.finished_at) + job.spec.grace


@dataclass(frozen=True, slots=True)
class Verdict:
    status: JobStatus
    reason: str
    due_at: datetime | None = None  # the next expected run (for the API)


def job_status(job: Job, now: datetime) -> Verdict:
    """The job's status at `now`, derived from its facts (nothing is stored)."""
    spec = job.spec
    if spec.max_duration is not None and job.runs:
        oldest = min(job.runs.values())
        if now - oldest > spec.max_duration:
            return Verdict(
                JobStatus.HUNG,
                f"started {format_duration(now - oldest)} ago and not finished "
                f"(max_duration {format_duration(spec.max_duration)})",
            )
    run = job.last_run
    if run is None:
        return Verdict(JobStatus.NEW, "never finished a run")
    due = next_expected(spec, run.finished_at)
    if not run.ok:
        code = f" with exit status {run.exit_status}" if run.exit_status is not None else ""
        return Verdict(JobStatus.FAILED, f"the last run failed{code}", due)
    if (
        spec.min_duration is not None
        and run.duration is not None
        and run.duration < spec.min_duration
    ):
        return Verdict(
            JobStatus.SHORT,
            f"the last run took {_seconds(run.duration)}, under its min_duration "
            f"{format_duration(spec.min_duration)}",
            due,
        )
    if now > due + spec.grace:
        return Verdict(
            JobStatus.DOWN,
            f"no run since {iso(run.finished_at)}; expected by {iso(due)}, "
            f"grace {format_duration(spec.grace)}",
            due,
        )
    if now > due:
        return Verdict(JobStatus.GRACE, f"expected by {iso(due)}; within its grace", due)
    return Verdict(JobStatus.UP, "on time", due)


def _seconds(duration: timedelta) -> str:
    return f"{duration.total_seconds():.3g}s"


# ------------------------------------------------------------------ pings


def parse_action(suffix: str | None) -> tuple[PingKind, int | None] | None:
    """The ping kind a URL suffix names (`start`, `fail`, `log`, `0`..`255`); None: invalid."""
    if suffix is None or suffix == "":
        return PingKind.SUCCESS, None
    if suffix in (PingKind.START, PingKind.FAIL, PingKind.LOG):
        return PingKind(suffix), None
    if suffix.isdigit() and len(suffix) <= 3 and int(suffix) <= 255:
        code = int(suffix)
        return (PingKind.SUCCESS if code == 0 else PingKind.FAIL), code
    return None


def parse_rid(raw: str | None) -> str | None:
    """A run id is a UUID (healthchecks' rule); ValueError for anything else."""
    if raw is None:
        return None
    return str(uuid.UUID(raw))


def parse_happened_at(raw: str | None, now: datetime) -> datetime | None:
    """`?t=<unix seconds>`: when a ping sent late happened (the agent's spool sends it).
    Not a healthchecks parameter. ValueError when it is not a number or in the future."""
    if raw is None:
        return None
    seconds = float(raw)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("not a time")
    at = datetime.fromtimestamp(seconds, tz=UTC)
    if at > now + FUTURE_SKEW:
        raise ValueError("in the future")
    return min(at, now)


def looks_like_ping_id(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text.lower() and len(text) == 36
    except ValueError:
        return False


def apply_ping(job: Job, ping: Ping) -> PingResult:
    """The job after `ping`, or a refusal once its bucket is empty. Pure."""
    now = ping.at
    tokens = job.bucket
    if job.bucket_at is not None:
        elapsed = max((now - job.bucket_at).total_seconds(), 0.0)
        tokens = min(PING_BURST, tokens + elapsed * PING_RATE)
    if tokens < 1:
        return PingResult(None, limited=True)
    updated = replace(
        job, bucket=math.floor((tokens - 1) * 1000) / 1000, bucket_at=now, last_ping_at=now
    )
    rid = ping.rid or ""
    at = ping.event_at
    if ping.kind is PingKind.LOG:
        return PingResult(replace(updated, log=ping.body[:KEPT_LOG], tail=_tail(ping.body)))
    if ping.kind is PingKind.START:
        runs = {**job.runs, rid: at}
        if len(runs) > MAX_OPEN_RUNS:
            runs = dict(sorted(runs.items(), key=lambda kv: kv[1])[-MAX_OPEN_RUNS:])
        return PingResult(replace(updated, runs=runs))
    runs = dict(job.runs)
    started = runs.pop(rid, None)
    duration = max(at - started, timedelta(0)) if started is not None else None
    ok = ping.kind is PingKind.SUCCESS
    run = LastRun(
        finished_at=at,
        ok=ok,
        exit_status=ping.exit_status if ping.exit_status is not None else (0 if ok else None),
        duration=duration,
    )
    if job.last_run is not None and at < job.last_run.finished_at:
        # A run reported late, after a newer one: measured, but not the last run.
        return PingResult(replace(updated, runs=runs), False, run)
    finished = replace(
        updated, runs=runs, last_run=run, log=ping.body[:KEPT_LOG], tail=_tail(ping.body)
    )
    return PingResult(finished, False, run)


def _tail(body: str) -> str:
    return body[-DESCRIPTION_LOG:] if len(body) > KEPT_LOG else ""


def new_job(spec: JobSpec, ping_id: str, now: datetime) -> Job:
    return Job(spec=spec, ping_id=ping_id, created_at=now)


def job_view(job: Job, now: datetime, ping_url: str) -> dict[str, Any]:
    """A job as the API shows it."""
    verdict = job_status(job, now)
    run = job.last_run
    return {
        **job.spec.as_json(),
        "ping_url": ping_url,
        "status": verdict.status.value,
        "reason": verdict.reason,
        "next_expected_at": iso(verdict.due_at),
        "created_at": iso(job.created_at),
        "last_ping_at": iso(job.last_ping_at),
        "last_run": None
        if run is None
        else {
            "finished_at": iso(run.finished_at),
            "ok": run.ok,
            "exit_status": run.exit_status,
            "duration_s": run.duration.total_seconds() if run.duration is not None else None,
        },
        "running": len(job.runs),
        "log": job.log,
    }


# ------------------------------------------------------------------ alerts


def job_alert_id(slug: str) -> str:
    # A colon cannot appear in a host name, so this never meets a host's alert id.
    return f"job:{slug}"


def job_observation(job: Job, now: datetime) -> Observation:
    """What the evaluation sees for one job: breaching while it is down, failed, hung or short."""
    spec = job.spec
    verdict = job_status(job, now)
    labels = {**spec.labels, "job": spec.slug}
    breaching = verdict.status in ALERTING
    if breaching:
        summary = spec.summary or f"job {spec.slug} is {verdict.status.value}: {verdict.reason}"
        description = verdict.reason
        if job.log and verdict.status in (JobStatus.FAILED, JobStatus.SHORT):
            # The body's last lines say why a run failed; a body past KEPT_LOG has
            # its tail kept apart for this.
            tail = job.tail or job.log[-DESCRIPTION_LOG:]
            description = f"{verdict.reason}\n{tail}"
    else:
        summary = f"job {spec.slug} is up again"
        description = verdict.reason
    value: float | None = None
    if job.last_run is not None and job.last_run.exit_status is not None:
        value = float(job.last_run.exit_status)
    return Observation(
        alert_id=job_alert_id(spec.slug),
        kind=AlertKind.JOB,
        host=labels.get("host", JOB_HOST),
        rule=JOB_RULE,
        severity=spec.severity if breaching else None,
        summary=clip(summary, MAX_TEXT),
        description=clip(description, MAX_TEXT),
        value=value,
        labels=labels,
        runbook=spec.runbook,
    )


def job_alert_changes(
    jobs: Sequence[Job],
    records: Mapping[str, AlertRecord],
    silenced: Callable[[AlertRecord], bool],
    now: datetime,
    *,
    timing: Timing,
    lease: timedelta,
    retention: timedelta,
    status_url: str | None,
) -> list[AlertChange]:
    """The job alerts' changes at `now`: one step of the alert state machine per job,
    and per job alert whose job is gone (it resolves)."""
    obs = {job_alert_id(j.spec.slug): job_observation(j, now) for j in jobs}
    ctx = StepContext(
        now=now,
        timing=timing,
        silenced=silenced,
        lease=lease,
        retention=retention,
        status_url=status_url,
    )
    changes: list[AlertChange] = []
    ids = [*obs, *(k for k, r in records.items() if r.kind is AlertKind.JOB and k not in obs)]
    for alert_id in ids:
        record = records.get(alert_id)
        observation = obs.get(alert_id)
        if record is None and (observation is None or observation.severity is None):
            continue
        change = step(record, observation, ctx)
        if change is not None:
            changes.append(change)
    return changes


def silence_matcher(silences: Sequence[Silence], now: datetime) -> Callable[[AlertRecord], bool]:
    """Whether an alert is silenced at `now` (the evaluation's rule, for the job alerts)."""
    active = [s for s in silences if s.active_at(now)]

    def silenced(record: AlertRecord) -> bool:
        builtin = record.builtin_labels()
        return any(s.matches(builtin, record.labels) for s in active)

    return silenced
