"""Properties of the alerting engine over many generated histories (time passed in).

Each runs twice: over the in-memory stores and over the DynamoDB adapters on moto, so the
fake and the real stores are held to the same behaviour. moto costs tens of milliseconds
a request (a history is hundreds of them), so the DynamoDB run tries a few histories where
the in-memory run tries sixty.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.alerting import T0, Fleet, rules

RULE = {
    "name": "disk-full",
    "measurement": "disk",
    "field": "used_percent",
    "critical": 90,
    "repeat_interval": "1d",
}
ALERT = "web-1/disk-full/mount=/"
MEMORY_EXAMPLES = 60


def examples(backend, on_dynamodb: int):
    return settings(
        max_examples=MEMORY_EXAMPLES if backend.name == "memory" else on_dynamodb,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


gaps = st.integers(min_value=10, max_value=180).map(lambda s: timedelta(seconds=s))
low = st.floats(min_value=0, max_value=89.9)
high = st.floats(min_value=90.1, max_value=100)


def test_one_episode_gives_exactly_one_firing_and_one_resolved_message(backend):
    @examples(backend, on_dynamodb=5)
    @given(
        hold=st.sampled_from(["0s", "1m", "5m"]),
        keep=st.sampled_from(["0s", "2m"]),
        before=st.lists(st.tuples(gaps, low), max_size=5),
        during=st.lists(st.tuples(gaps, high), min_size=1, max_size=30),
        after=st.lists(st.tuples(gaps, low), min_size=1, max_size=5),
        repeat_at_same_instant=st.lists(st.booleans(), min_size=45, max_size=45),
    )
    def episode(*, hold, keep, before, during, after, repeat_at_same_instant):
        fleet = Fleet(rules({**RULE, "for": hold, "keep_firing_for": keep}), stores=backend.make())
        at = T0
        first_high = last_high = None
        twice = iter(repeat_at_same_instant)
        # Enough low values after the breach that keep_firing_for has surely run out.
        tail = after + [(timedelta(minutes=1), 50.0)] * 4
        for phase, steps in (("before", before), ("during", during), ("after", tail)):
            for gap, value in steps:
                at += gap
                fleet.post("web-1", at, disk=value)
                fleet.evaluate(at)
                if next(twice, False):
                    fleet.evaluate(at)
                if phase == "during":
                    first_high = first_high or at
                    last_high = at
        statuses = fleet.statuses(ALERT)
        held = last_high - first_high >= fleet.policy.rules.by_name["disk-full"].hold
        if held:
            assert statuses == ["firing", "resolved"]
            assert len({m["dedup_key"] for m in fleet.messages}) == 1
        else:
            assert statuses == []

    episode()


histories = st.lists(
    st.tuples(
        gaps,
        st.lists(st.one_of(st.none(), low, high), min_size=3, max_size=3),  # per host; None: silent
        st.booleans(),  # the publisher fails this time
    ),
    min_size=1,
    max_size=25,
)


def play(fleet: Fleet, history, each):
    at = T0
    for gap, values, fails in history:
        at += gap
        for i, value in enumerate(values):
            if value is not None:
                fleet.post(f"web-{i}", at, disk=value)
        fleet.publisher.fail = int(fails)
        each(fleet, at)


def test_evaluating_twice_at_the_same_instant_changes_nothing(backend):
    @examples(backend, on_dynamodb=3)
    @given(history=histories, hold=st.sampled_from(["0s", "2m"]))
    def evaluate_twice(history, hold):
        fleet = Fleet(rules({**RULE, "for": hold, "keep_firing_for": "1m"}), stores=backend.make())

        def twice(fleet: Fleet, at):
            fleet.evaluate(at)
            alerts = fleet.stored_alerts()
            sent = len(fleet.messages)
            hosts = fleet.stored_hosts()
            report = fleet.evaluate(at)
            assert (report.transitions, report.notifications, report.host_writes) == (0, 0, 0)
            assert fleet.stored_alerts() == alerts
            assert len(fleet.messages) == sent
            assert fleet.stored_hosts() == hosts

        play(fleet, history, twice)

    evaluate_twice()


def test_two_evaluators_racing_send_what_one_evaluator_sends(backend):
    @examples(backend, on_dynamodb=3)
    @given(history=histories, order=st.lists(st.booleans(), min_size=25, max_size=25))
    def race(history, order):
        alone, racing = Fleet(stores=backend.make()), Fleet(stores=backend.make())
        second = racing.evaluator()
        turns = iter(order)
        history = [(gap, values, False) for gap, values, _ in history]
        play(alone, history, lambda fleet, at: fleet.evaluate(at))

        def both(fleet: Fleet, at):
            plans = [fleet.service.plan(at), second.plan(at)]
            if next(turns):
                plans.reverse()
            fleet.service.apply(*plans[0])
            second.apply(*plans[1])

        play(racing, history, both)
        assert racing.messages == alone.messages

    race()


def test_a_host_that_keeps_posting_is_never_paged(backend):
    @examples(backend, on_dynamodb=5)
    @given(
        interval=st.sampled_from([1, 10, 60, 300, 3600, 86400]),
        grace=st.sampled_from([timedelta(seconds=5), timedelta(minutes=2), timedelta(hours=1)]),
        posts=st.lists(
            st.tuples(st.floats(min_value=0.5, max_value=1.0), st.floats(min_value=0, max_value=1)),
            min_size=1,
            max_size=20,
        ),
    )
    def keeps_posting(interval, grace, posts):
        fleet = Fleet(default_grace=grace, stores=backend.make())
        period = timedelta(seconds=interval)
        at = T0
        fleet.post("web-1", at, interval=interval)
        for share_of_allowed, evaluate_at in posts:
            # Each gap is at most period + grace: the host is never silent longer than allowed.
            gap = period * 0.5 + (period * 0.5 + grace) * share_of_allowed
            gap -= timedelta(microseconds=gap.microseconds % 1000)  # the collector keeps ms
            fleet.evaluate(at + gap * evaluate_at)
            fleet.evaluate(at + gap)  # the very instant before the next post
            at += gap
            fleet.post("web-1", at, interval=interval)
            fleet.evaluate(at)
        assert fleet.messages == []
        assert fleet.stored_hosts()["web-1"].state.value == "up"

    keeps_posting()
