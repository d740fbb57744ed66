"""Jobs: the admin API (define, list, show, delete), the healthchecks-compatible ping
endpoint, and the job alerts' part of each evaluation.

A ping is one read and one conditional write of the job's item; a write lost
to a concurrent ping is retried from a fresh read. The ping URL is the
credential: nothing here logs it, only the job's slug.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from chalicelib.core.errors import IngestError, NotFound
from chalicelib.core.instants import ms_of_instant
from chalicelib.core.jobs import (
    DEFAULT_GRACE,
    DEFAULT_PERIOD,
    JOB_HOST,
    KEPT_LOG,
    MAX_BODY,
    Job,
    JobSpec,
    JobStore,
    LastRun,
    Ping,
    apply_ping,
    job_alert_changes,
    job_view,
    looks_like_ping_id,
    new_job,
    new_ping_id,
    parse_action,
    parse_happened_at,
    parse_rid,
    parse_spec,
    silence_matcher,
    valid_slug,
)
from chalicelib.core.models import JOB_MEASUREMENT, HostReport, Point
from chalicelib.core.ports import BackendUnavailable, MetricStore

if TYPE_CHECKING:
    from chalicelib.core.alerts import AlertChange, AlertRecord
    from chalicelib.core.evaluation import AlertingPolicy
    from chalicelib.core.silences import Silence
    from chalicelib.services.auth import Authenticator

logger = Logger(child=True)

_ATTEMPTS = 3  # writes lost to concurrent pings of the same job before giving up (503)


@dataclass(frozen=True, slots=True)
class PingReply:
    """What healthchecks answers: a status and a short text body."""

    status: int
    text: str


OK = PingReply(200, "OK")
CREATED = PingReply(201, "Created")  # ?create=1 made the job (healthchecks' answer)
NOT_FOUND = PingReply(404, "not found")
# Every ping answer says how much of a body is kept; runitor sizes its output's tail by it.
PING_HEADERS: dict[str, str | list[str]] = {
    "Content-Type": "text/plain",
    "Ping-Body-Limit": str(KEPT_LOG),
}


class JobService:
    def __init__(
        self,
        store: JobStore,
        metrics: Callable[[], MetricStore],
        authenticator: Callable[[], Authenticator],
        entropy: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.store = store
        self._metrics = metrics  # built on the first finished run
        self._authenticator = authenticator  # only pings by slug need it
        self.entropy = entropy

    # ---------------------------------------------------------------- admin API

    def list(self, now: datetime, base_url: str) -> list[dict[str, Any]]:
        jobs = sorted(self.store.scan(), key=lambda j: j.spec.slug)
        return [job_view(j, now, ping_url(base_url, j)) for j in jobs]

    def show(self, slug: str, now: datetime, base_url: str) -> dict[str, Any]:
        job = self.store.get(slug) if valid_slug(slug) else None
        if job is None:
            raise NotFound(f"no job named {slug!r}")
        return job_view(job, now, ping_url(base_url, job))

    def define(self, slug: str, raw: object, now: datetime, base_url: str) -> dict[str, Any]:
        """Create the job or replace its definition (its ping URL and history stay)."""
        spec = parse_spec(slug, raw)
        job = self.store.define(spec, new_ping_id(self.entropy(16)), now)
        return job_view(job, now, ping_url(base_url, job))

    def delete(self, slug: str) -> None:
        if not valid_slug(slug) or not self.store.delete(slug):
            raise NotFound(f"no job named {slug!r}")

    # ---------------------------------------------------------------- pings

    def ping(
        self,
        segments: Sequence[str],
        query: Mapping[str, str],
        body: bytes,
        now: datetime,
    ) -> PingReply:
        """`/ping/<uuid>[/<action>]` or `/ping/<ping key>/<slug>[/<action>]`, as healthchecks."""
        if looks_like_ping_id(segments[0]):
            if len(segments) > 2:
                return NOT_FOUND
            slug = None
            suffix = segments[1] if len(segments) == 2 else None
        else:
            if len(segments) < 2:
                return NOT_FOUND
            slug = segments[1]
            suffix = segments[2] if len(segments) == 3 else None
        action = parse_action(suffix)
        if action is None:
            if suffix is not None and suffix.isdigit():
                return PingReply(400, "invalid url format")
            return NOT_FOUND
        try:
            rid = parse_rid(query.get("rid"))
        except ValueError:
            return PingReply(400, "invalid uuid format")
        try:
            happened_at = parse_happened_at(query.get("t"), now)
        except ValueError:
            return PingReply(400, "invalid timestamp")
        # As healthchecks: a longer body is not refused (the ping is what matters); what
        # is past MAX_BODY is not read.
        text = body[:MAX_BODY].decode("utf-8", errors="replace")
        ping = Ping(action[0], now, action[1], rid, text, happened_at)
        if slug is None:
            job = self.store.by_ping_id(segments[0].lower())
        else:
            if not valid_slug(slug) or not self._may_ping(segments[0]):
                return NOT_FOUND
            job = self.store.get(slug)
            if job is None and query.get("create") == "1":
                job, created = self._create(slug, now)
                if job is not None and created:
                    reply = self._record(job, ping)
                    return CREATED if reply == OK else reply
        if job is None:
            return NOT_FOUND
        return self._record(job, ping)

    def _may_ping(self, key: str) -> bool:
        try:
            principal = self._authenticator().authenticate(f"Bearer {key}")
        except IngestError:
            return False
        return principal.scope.may_ping

    def _create(self, slug: str, now: datetime) -> tuple[Job | None, bool]:
        """The job `?create=1` made (True), or the one another ping made meanwhile."""
        job = new_job(
            JobSpec(slug, period=DEFAULT_PERIOD, grace=DEFAULT_GRACE),
            new_ping_id(self.entropy(16)),
            now,
        )
        if self.store.create(job):
            logger.info("job created by a ping", extra={"job": slug})
            return job, True
        return self.store.get(slug), False

    def _record(self, job: Job, ping: Ping) -> PingReply:
        for _ in range(_ATTEMPTS):
            result = apply_ping(job, ping)
            if result.limited:
                logger.warning("ping rate limit", extra={"job": job.spec.slug})
                return PingReply(429, "rate limit exceeded")
            assert result.job is not None
            written = replace(result.job, version=job.version + 1)
            if self.store.put(written, job.version):
                if result.finished is not None:
                    self._measure(written, result.finished)
                return OK
            fresh = self.store.get(job.spec.slug)
            if fresh is None or fresh.ping_id != job.ping_id:
                return NOT_FOUND
            job = fresh
        raise BackendUnavailable(f"job {job.spec.slug}: too many concurrent pings")

    def _measure(self, job: Job, run: LastRun) -> None:
        """The run as a `job` point. Best effort: the job's item is the record of truth."""
        fields: dict[str, float | int] = {"exit_status": run.exit_status or 0}
        if not run.ok and run.exit_status is None:
            fields["exit_status"] = 1
        if run.duration is not None:
            fields["duration_s"] = round(run.duration.total_seconds(), 3)
        point = Point(
            JOB_MEASUREMENT,
            ms_of_instant(run.finished_at),
            {"job": job.spec.slug},
            fields,  # type: ignore[arg-type]
            numeric=True,
        )
        host = job.spec.labels.get("host", JOB_HOST)
        try:
            refused = self._metrics().write([HostReport(host=host, points=[point])])
        except BackendUnavailable as exc:
            logger.warning("job run not measured", extra={"job": job.spec.slug, "reason": str(exc)})
            return
        if refused:
            logger.warning("job run point refused", extra={"job": job.spec.slug})


def ping_url(base_url: str, job: Job) -> str:
    return f"{base_url.rstrip('/')}/ping/{job.ping_id}"


def base_url(headers: Mapping[str, str], context: Mapping[str, Any], configured: str | None) -> str:
    """The collector's public base URL: FLEETPULSE_PING_BASE_URL, else what the request says
    (API Gateway's host names carry the stage as the first path segment)."""
    if configured:
        return configured.rstrip("/")
    lowered = {k.lower(): v for k, v in headers.items()}
    host = lowered.get("host", "localhost")
    # API Gateway always sends X-Forwarded-Proto; a plain local server is plain HTTP.
    scheme = lowered.get("x-forwarded-proto", "http")
    stage = context.get("stage") if host.endswith(".amazonaws.com") else None
    return f"{scheme}://{host}" + (f"/{stage}" if stage else "")


def job_changes(
    jobs: Sequence[Job],
    records: Mapping[str, AlertRecord],
    silences: Sequence[Silence],
    policy: AlertingPolicy,
    now: datetime,
) -> list[AlertChange]:
    """The evaluation's job alerts: the same state machine, silences, lease and
    reminders (the heartbeat rules' repeat interval) as the host alerts."""
    from chalicelib.core.alerts import Timing

    return job_alert_changes(
        jobs,
        records,
        silence_matcher(silences, now),
        now,
        timing=Timing(repeat=policy.rules.heartbeat.repeat),
        lease=policy.notify_lease,
        retention=policy.resolved_retention,
        status_url=policy.status_url,
    )
