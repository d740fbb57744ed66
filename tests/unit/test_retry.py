"""One retry-with-deadline policy and one Retry-After parser for the Lambda side."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.core.errors import AttemptFailed
from chalicelib.core.retry import (
    MAX_RETRY_AFTER,
    GaveUp,
    Retrier,
    RetryPolicy,
    parse_retry_after,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@dataclass
class FakeTime:
    """A monotonic clock that moves only when slept on (or when an attempt takes time)."""

    now: float = 100.0
    slept: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def retrier(policy: RetryPolicy, clock: FakeTime, jitter: float = 0.5) -> Retrier:
    return Retrier(policy, clock.monotonic, clock.sleep, lambda: jitter)


# -- Retry-After


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", timedelta(seconds=30)),
        (" 7 ", timedelta(seconds=7)),
        ("0", timedelta(0)),
        ("0.5", timedelta(seconds=0.5)),
        ("Sat, 21 Nov 2026 12:00:30 GMT", timedelta(seconds=30)),
        ("Sat, 21 Nov 2026 12:00:30 +0100", timedelta(0)),  # 11:00:30 UTC: already past
        ("Sat, 21 Nov 2026 11:00:00 GMT", timedelta(0)),
        ("9" * 400, MAX_RETRY_AFTER),
        ("Sat, 21 Nov 2026 12:00:30 -0000", None),  # no zone: could be any
        ("Sat, 21 Nov 2026 12:00:30", None),
        ("-5", None),
        ("1e3", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_reads_seconds_and_zoned_http_dates_only(value, expected):
    assert parse_retry_after(value, NOW) == expected


@given(st.text(max_size=40))
def test_retry_after_never_raises_and_never_asks_for_a_negative_wait(value):
    wait = parse_retry_after(value, NOW)
    assert wait is None or timedelta(0) <= wait <= MAX_RETRY_AFTER


# -- the policy


@given(
    st.integers(min_value=1, max_value=12),
    st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_jitter_keeps_each_wait_between_half_and_all_of_the_backoff(attempt, jitter):
    policy = RetryPolicy(first_backoff=timedelta(seconds=0.1), max_backoff=timedelta(seconds=1))
    ceiling = min(timedelta(seconds=1), timedelta(seconds=0.1) * 2 ** (attempt - 1))
    wait = policy.backoff(attempt, jitter)
    assert ceiling / 2 <= wait <= ceiling


def test_a_retry_after_longer_than_the_backoff_is_waited_out_and_a_shorter_one_is_not_a_hot_loop():
    policy = RetryPolicy()
    longer = AttemptFailed("429", retry_after=timedelta(seconds=3))
    assert policy.wait_before_retry(1, longer, timedelta(0), 0.0) == timedelta(seconds=3)
    shorter = AttemptFailed("429", retry_after=timedelta(0))
    assert policy.wait_before_retry(1, shorter, timedelta(0), 0.0) == timedelta(seconds=0.5)


def test_no_retry_for_a_failure_that_says_it_will_not_pass():
    policy = RetryPolicy()
    assert (
        policy.wait_before_retry(1, AttemptFailed("400", retryable=False), timedelta(0), 0) is None
    )


def test_the_sleep_budget_stops_retries_before_the_deadline_does():
    policy = RetryPolicy(max_sleep=timedelta(seconds=2))
    error = AttemptFailed("503")
    assert policy.wait_before_retry(2, error, timedelta(0), 0.0, slept=timedelta(0)) is not None
    assert (
        policy.wait_before_retry(2, error, timedelta(0), 0.0, slept=timedelta(seconds=1.5)) is None
    )


# -- the runner


def test_retries_until_an_attempt_succeeds_and_counts_the_attempts():
    clock = FakeTime()
    answers = iter([AttemptFailed("503"), AttemptFailed("503"), "ok"])

    def attempt(time_left: timedelta) -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert retrier(RetryPolicy(), clock).run(attempt) == ("ok", 3)
    assert clock.slept == [0.75, 1.5]  # 1 s then 2 s backoff, jitter at its middle


def test_only_attempt_failed_is_retried_anything_else_goes_straight_through():
    clock = FakeTime()
    calls = []

    def attempt(time_left: timedelta) -> None:
        calls.append(time_left)
        raise KeyError("a bug, not a failure")

    with pytest.raises(KeyError):
        retrier(RetryPolicy(), clock).run(attempt)
    assert (len(calls), clock.slept) == (1, [])


def test_a_failure_that_will_not_pass_gives_up_after_one_attempt():
    clock = FakeTime()
    heard = []

    def attempt(time_left: timedelta) -> None:
        raise AttemptFailed("403", retryable=False)

    with pytest.raises(GaveUp) as caught:
        retrier(RetryPolicy(), clock).run(attempt, lambda n, e, w: heard.append((n, w)))
    assert (caught.value.attempts, caught.value.error.reason) == (1, "403")
    assert heard == [(1, None)]
    assert clock.slept == []


def test_the_server_s_retry_after_is_what_the_runner_sleeps():
    clock = FakeTime()
    answers = iter([AttemptFailed("429", retry_after=timedelta(seconds=4)), "ok"])

    def attempt(time_left: timedelta) -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert retrier(RetryPolicy(), clock).run(attempt) == ("ok", 2)
    assert clock.slept == [4.0]


@given(
    st.integers(min_value=1, max_value=10),
    st.floats(min_value=0, max_value=1, exclude_max=True),
    st.floats(min_value=0, max_value=3),
    st.lists(st.none() | st.floats(min_value=0, max_value=30), max_size=10),
)
def test_attempts_and_waits_never_pass_the_deadline(attempts, jitter, takes, retry_afters):
    """Each attempt takes `takes` seconds and fails; servers ask for any Retry-After.
    No attempt starts with less than `min_attempt` left, so with attempts bounded by
    `min_attempt` the whole operation ends by the deadline."""
    policy = RetryPolicy(max_attempts=attempts)
    takes = min(takes, policy.min_attempt.total_seconds())
    clock = FakeTime()
    started = clock.now
    asked = iter(retry_afters)
    left: list[timedelta] = []

    def attempt(time_left: timedelta) -> None:
        left.append(time_left)
        clock.now += takes
        ra = next(asked, None)
        raise AttemptFailed("503", retry_after=timedelta(seconds=ra) if ra is not None else None)

    with pytest.raises(GaveUp) as caught:
        retrier(policy, clock, jitter).run(attempt)
    assert caught.value.attempts == len(left) <= attempts
    assert clock.now - started <= policy.deadline.total_seconds() + 1e-9
    assert all(t >= policy.min_attempt for t in left[1:])


def test_one_retrier_shares_its_deadline_and_sleep_budget_across_calls():
    clock = FakeTime()
    policy = RetryPolicy(
        first_backoff=timedelta(seconds=1),
        deadline=timedelta(seconds=10),
        min_attempt=timedelta(0),
        max_sleep=timedelta(seconds=2),
    )
    shared = retrier(policy, clock, jitter=0.999)
    answers = iter([AttemptFailed("503"), "first"])

    def attempt(time_left: timedelta) -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert shared.run(attempt) == ("first", 2)
    assert shared.slept == timedelta(seconds=0.9995)

    def failing(time_left: timedelta) -> None:
        raise AttemptFailed("503")

    # The second call has about 1 s of sleep left: the 1 s backoff fits once, 2 s does not.
    with pytest.raises(GaveUp) as caught:
        shared.run(failing)
    assert caught.value.attempts == 2
    assert shared.slept <= policy.max_sleep
