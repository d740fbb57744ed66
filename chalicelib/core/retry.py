"""Retrying with a deadline: one policy for every outside call the Lambdas retry.

Timestream and InfluxDB writes and the notifiers' HTTP posts retry the same
way: exponential backoff with "equal jitter", at least as long as a
Retry-After asks, within a number of attempts, a total sleep and a deadline
that bounds attempts and waits together. Only a failure that says it may pass
(`AttemptFailed.retryable`, in core/errors.py so that `import app`
needs nothing of this module) is retried; any other exception goes straight to
the caller.

Pure: the clock, the sleep and the jitter are handed in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from chalicelib.core.errors import AttemptFailed

T = TypeVar("T")

# A wait longer than any deadline here means "stop now"; clamping keeps a huge
# number from overflowing timedelta.
MAX_RETRY_AFTER = timedelta(days=1)


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """The wait a Retry-After header asks for, or None when absent or unreadable.

    Delta-seconds (RFC 9110; a decimal fraction is accepted too) or an HTTP
    date, which must name its zone (`GMT`): a date without one (`-0000`, or
    none) could be any zone and is refused. A date in the past asks for no
    wait. `now` is the wall-clock time, UTC-aware.
    """
    if not value:
        return None
    value = value.strip()
    whole, dot, fraction = value.partition(".")
    if _digits(whole) and (not dot or _digits(fraction)):
        return timedelta(seconds=min(float(value), MAX_RETRY_AFTER.total_seconds()))
    from email.utils import parsedate_to_datetime  # rare: kept off the import path

    try:
        at = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if at.tzinfo is None:
        return None
    return min(max(at - now, timedelta(0)), MAX_RETRY_AFTER)


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


class GaveUp(Exception):
    """Retrying stopped: `error` is the last failure, after `attempts` attempts."""

    def __init__(self, error: AttemptFailed, attempts: int) -> None:
        super().__init__(f"{error.reason} (after {attempts} attempts)")
        self.error = error
        self.attempts = attempts


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often, how fast and for how long to retry.

    `deadline` bounds the whole operation (every attempt and every wait);
    a retry that could not start with `min_attempt` left before it is not
    made. `max_sleep`, when set, bounds the waits alone.
    """

    max_attempts: int = 5
    first_backoff: timedelta = timedelta(seconds=1)
    max_backoff: timedelta = timedelta(seconds=8)
    deadline: timedelta = timedelta(seconds=20)
    # Starting an attempt with less time than this left only produces a timeout.
    min_attempt: timedelta = timedelta(seconds=1)
    max_sleep: timedelta | None = None

    def backoff(self, attempt: int, jitter: float) -> timedelta:
        """The wait after failed attempt `attempt` (1-based); `jitter` is in [0, 1).

        "Equal jitter": never less than half the exponential backoff, so a
        burst of failures still spreads out, and never all at once.
        """
        backoff: timedelta = min(self.max_backoff, self.first_backoff * 2 ** (attempt - 1))
        return backoff * (0.5 + jitter / 2)

    def wait_before_retry(
        self,
        attempt: int,
        error: AttemptFailed,
        elapsed: timedelta,
        jitter: float,
        slept: timedelta = timedelta(0),
    ) -> timedelta | None:
        """How long to wait before attempt `attempt + 1`, or None to stop trying now.

        A Retry-After is honoured (the wait is at least what it asks); a wait
        that would pass the deadline or the sleep budget means stop.
        """
        if not error.retryable or attempt >= self.max_attempts:
            return None
        wait = self.backoff(attempt, jitter)
        if error.retry_after is not None:
            wait = max(wait, error.retry_after)
        if elapsed + wait + self.min_attempt > self.deadline:
            return None
        if self.max_sleep is not None and slept + wait > self.max_sleep:
            return None
        return wait


@dataclass(slots=True)
class Retrier:
    """Runs attempts under `policy`. One per operation: every call made through it
    shares one deadline (counted from `started`, the first call by default) and
    one sleep budget."""

    policy: RetryPolicy
    monotonic: Callable[[], float]
    sleep: Callable[[float], None]
    jitter: Callable[[], float]
    started: float | None = None
    slept: timedelta = timedelta(0)

    def elapsed(self) -> timedelta:
        if self.started is None:
            self.started = self.monotonic()
        return timedelta(seconds=self.monotonic() - self.started)

    def time_left(self) -> timedelta:
        return self.policy.deadline - self.elapsed()

    def run(
        self,
        attempt: Callable[[timedelta], T],
        on_failure: Callable[[int, AttemptFailed, timedelta | None], None] | None = None,
    ) -> tuple[T, int]:
        """`attempt(time_left)` until it returns: (its result, attempts made).

        An AttemptFailed is retried while the policy allows, then raised as
        GaveUp; `on_failure(attempt, error, wait or None)` hears of each one.
        Any other exception propagates at once.
        """
        n = 0
        while True:
            n += 1
            try:
                return attempt(self.time_left()), n
            except AttemptFailed as exc:
                wait = self.policy.wait_before_retry(
                    n, exc, self.elapsed(), self.jitter(), self.slept
                )
                if on_failure is not None:
                    on_failure(n, exc, wait)
                if wait is None:
                    raise GaveUp(exc, n) from exc
            self.sleep(wait.total_seconds())
            self.slept += wait
