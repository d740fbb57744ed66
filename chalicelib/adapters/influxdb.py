"""InfluxDBMetricStore: points as line protocol over InfluxDB's HTTP write API (v1 or v2).

Timestream for InfluxDB serves the v2 API (`/api/v2/write?org=&bucket=`,
`Authorization: Token`); InfluxDB 1.x serves `/write?db=`. Both get the
same lines, gzipped, at `precision=ms`, in batches (see
`chalicelib.core.influx`).
"""

from __future__ import annotations

import gzip
import random
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from chalicelib.core.errors import AttemptFailed
from chalicelib.core.influx import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_LINES,
    Batch,
    InfluxTarget,
    Refusal,
    error_message,
    plan_influx_writes,
    read_refusal,
    suspects,
)
from chalicelib.core.models import HostReport, InfluxApi, Point, Rejection
from chalicelib.core.ports import BackendUnavailable
from chalicelib.core.retry import GaveUp, Retrier, RetryPolicy, parse_retry_after

if TYPE_CHECKING:
    import requests

logger = Logger(child=True)

TokenSource = str | Callable[[], str] | None


class InfluxDBMetricStore:
    """Writes host reports to InfluxDB with `requests`.

    What InfluxDB refuses (400/422: a field type conflict, a point outside
    the retention policy) is narrowed down to the refused points, which are
    reported; the others are stored. 429, 5xx and connection failures are
    retried under one RetryPolicy per write (`chalicelib.core.retry`: jittered
    exponential backoff, Retry-After honoured) while the time budget lasts
    (an API Gateway request has 29 s in all), then raise BackendUnavailable, as do 401/403/404:
    a wrong token, database or bucket is the operator's to fix, and the
    agent keeps its data and retries.
    """

    def __init__(
        self,
        target: InfluxTarget,
        token: TokenSource = None,
        *,
        session: requests.Session | None = None,
        max_lines: int = DEFAULT_MAX_LINES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        gzip_min_bytes: int = 1024,
        connect_timeout: float = 3.0,
        read_timeout: float = 5.0,
        max_attempts: int = 5,
        base_delay: float = 0.1,
        max_wait: float = 5.0,
        time_budget: float = 15.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self._token = token
        self._session = session
        self._lock = threading.Lock()
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.gzip_min_bytes = gzip_min_bytes
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retry = RetryPolicy(
            max_attempts=max_attempts,
            first_backoff=timedelta(seconds=base_delay),
            max_backoff=timedelta(seconds=1),
            deadline=timedelta(seconds=time_budget),
            min_attempt=timedelta(0),
            max_sleep=timedelta(seconds=max_wait),
        )
        self.sleep = sleep
        self.clock = clock

    # -- the port

    def write(self, reports: Sequence[HostReport]) -> list[Rejection]:
        plan = plan_influx_writes(reports, max_lines=self.max_lines, max_bytes=self.max_bytes)
        rejected = list(plan.rejected)
        budget = Retrier(self.retry, self.clock, self.sleep, random.random, started=self.clock())
        for n, batch in enumerate(plan.batches):
            if n and budget.time_left() <= timedelta(0):
                # The batches sent so far stay stored; the agent resends the post, and
                # InfluxDB overwrites those points with themselves.
                raise BackendUnavailable(
                    f"InfluxDB took the whole time budget; {len(plan.batches) - n} of "
                    f"{len(plan.batches)} batches not sent"
                )
            rejected.extend(self._send(batch, budget))
        return rejected

    # -- operator helpers

    def ensure_database(self) -> None:
        """Create the v1 database if it is missing (the local stack, tests); a no-op for v2."""
        if self.target.api is not InfluxApi.V1:
            return
        name = (self.target.database or "").replace("\\", "\\\\").replace('"', '\\"')
        import requests

        try:
            response = self.session.post(
                self.target.url.rstrip("/") + "/query",
                data={"q": f'CREATE DATABASE "{name}"'},
                headers=self._headers(),
                auth=self._auth(),
                timeout=(self.connect_timeout, self.read_timeout),
            )
        except requests.RequestException as exc:
            raise BackendUnavailable(f"InfluxDB unreachable: {type(exc).__name__}") from exc
        if response.status_code >= 300:
            raise BackendUnavailable(
                f"InfluxDB refused to create {self.target.describe()}: "
                f"{response.status_code} {error_message(response.content)}"
            )

    # -- sending

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    import requests

                    session = requests.Session()
                    # No .netrc or proxy settings from the environment: a netrc
                    # entry would silently replace the token header.
                    session.trust_env = False
                    self._session = session
        return self._session

    def _token_value(self) -> str | None:
        token = self._token
        if callable(token):
            token = self._token = token()  # read once (an SSM parameter), then kept
        return token

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": "fleetpulse", "Accept": "application/json"}
        token = self._token_value()
        if token and not (self.target.api is InfluxApi.V1 and self.target.username):
            headers["Authorization"] = f"Token {token}"
        return headers

    def _auth(self) -> tuple[str, str] | None:
        if self.target.api is InfluxApi.V1 and self.target.username:
            return (self.target.username, self._token_value() or "")
        return None

    def _send(self, batch: Batch, budget: Retrier) -> list[Rejection]:
        status, message = self._post(batch, budget)
        if status < 300:
            return []
        if status in (400, 422):
            refusal = read_refusal(message, status)
            if refusal.about_points:
                return self._narrow(batch, refusal, budget)
            raise BackendUnavailable(
                f"InfluxDB refused the request for {self.target.describe()} ({status}: "
                f"{message}); check the FLEETPULSE_INFLUX_* settings"
            )
        if status == 413:
            if len(batch.lines) == 1:
                return [_rejection(batch.sources[0], f"too large for InfluxDB: {message}")]
            left, right = batch.halves()
            return self._send(left, budget) + self._send(right, budget)
        if status in (401, 403):
            raise BackendUnavailable(
                f"InfluxDB refused the credentials for {self.target.describe()} "
                f"({status}: {message}); check FLEETPULSE_INFLUX_TOKEN"
            )
        if status == 404:
            raise BackendUnavailable(
                f"InfluxDB answered 404 for {self.target.describe()} ({message}); check "
                "FLEETPULSE_INFLUX_URL and the database or bucket"
            )
        raise BackendUnavailable(
            f"InfluxDB answered {status} for {self.target.describe()}: {message}"
        )

    def _narrow(self, batch: Batch, refusal: Refusal, budget: Retrier) -> list[Rejection]:
        """The points of a refused batch that InfluxDB refuses, found by resending parts of it.

        Resending is safe: a point InfluxDB already stored is overwritten with
        itself. InfluxDB names at most the first refused point, so the rest is
        found by halving, stopping as soon as `dropped` points are accounted for.
        """
        if len(batch.lines) == 1:
            return [_rejection(batch.sources[0], f"refused by InfluxDB: {refusal.message}")]
        named = suspects(batch, refusal)
        if named:
            out = [
                _rejection(batch.sources[i], f"refused by InfluxDB: {refusal.message}")
                for i in named
            ]
            if refusal.partial and refusal.dropped == len(named):
                return out  # every other point of the batch was stored
            chosen = set(named)
            rest = batch.subset(i for i in range(len(batch.lines)) if i not in chosen)
            return out + self._resend(rest, refusal, budget)
        out = []
        for half in batch.halves():
            if refusal.partial and refusal.dropped is not None and len(out) >= refusal.dropped:
                break  # the points not dropped were stored by the first write
            out.extend(self._resend(half, refusal, budget))
        return out

    def _resend(self, batch: Batch, refusal: Refusal, budget: Retrier) -> list[Rejection]:
        if not batch.lines:
            return []
        if budget.time_left() <= timedelta(0):
            # Reported rather than retried: a resend of the whole post would meet
            # the same refusal, and the agent would retry forever.
            return [
                _rejection(
                    p,
                    f"refused by InfluxDB in a batch ({refusal.message}); not narrowed down "
                    "within the time budget",
                )
                for p in batch.sources
            ]
        return self._send(batch, budget)

    def _post(self, batch: Batch, budget: Retrier) -> tuple[int, str]:
        """POST one batch, retrying what may pass later; (status, error message) otherwise."""
        import requests

        body = batch.body()
        headers = self._headers()
        headers["Content-Type"] = "text/plain; charset=utf-8"
        if len(body) >= self.gzip_min_bytes:
            body = gzip.compress(body, compresslevel=1, mtime=0)
            headers["Content-Encoding"] = "gzip"
        auth = self._auth()

        def attempt(time_left: timedelta) -> tuple[int, str]:
            # Retries stop at the deadline; a first try always gets a short chance,
            # so a batch being narrowed down is not refused unsent.
            remaining = max(time_left.total_seconds(), 1.0)
            try:
                response = self.session.post(
                    self.target.write_url,
                    params=self.target.write_params,
                    data=body,
                    headers=headers,
                    auth=auth,
                    timeout=(self.connect_timeout, min(self.read_timeout, remaining)),
                )
            except requests.RequestException as exc:
                raise AttemptFailed(f"unreachable ({type(exc).__name__})") from None
            status = response.status_code
            if status < 300:
                return status, ""
            message = error_message(response.content)
            if status != 429 and status < 500:
                return status, message
            raise AttemptFailed(
                f"answered {status}: {message}",
                retry_after=parse_retry_after(
                    response.headers.get("Retry-After"), datetime.now(UTC)
                ),
            )

        try:
            answer, _ = budget.run(attempt, _log_retry)
        except GaveUp as exc:
            raise BackendUnavailable(
                f"InfluxDB {exc.error.reason}, after {exc.attempts} tries"
            ) from None
        return answer


def _log_retry(attempt: int, error: AttemptFailed, wait: timedelta | None) -> None:
    if wait is not None:
        logger.warning(
            "influxdb write failed; retrying",
            extra={
                "attempt": attempt,
                "failure": error.reason,
                "delay_s": round(wait.total_seconds(), 3),
            },
        )


def _rejection(p: Point, reason: str) -> Rejection:
    return Rejection(p.index, p.path, f"{p.path}: {reason}")
