"""The remote-checks use-cases: the admin API, the one-minute schedule, the batch runner.

`schedule` (every minute): one Scan of the checks table (API checks and each
check's state per location), the check alerts decided from that state and
written through the alerting service's compare-and-swap path, then the due
runs split into batches, each handed to a runner invocation (asynchronous
Lambda invocations in AWS; in-process in tests and the local stack).

`run_batch`: the batch's runs at once on a thread pool, each bounded by its
own timeout, so no check waits on another's; then `record`: points through
the MetricStore, each location's state with a conditional write, and the
alerts of the batch's checks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools import Logger

from chalicelib.core.alert_message import AlertKind
from chalicelib.core.alerts import AlertChange, AlertRecord
from chalicelib.core.checks import (
    Check,
    ChecksError,
    CheckStore,
    LocationState,
    ProbeResult,
    Run,
    advance,
    aligned_runs,
    batches,
    check_changes,
    due_runs,
    parse_check,
    parse_results,
    result_report,
    run_json,
    run_of_json,
)
from chalicelib.core.errors import Forbidden, InvalidPayload, NotFound, Problem
from chalicelib.core.instants import instant_of_ms, ms_of_instant
from chalicelib.core.models import HostReport
from chalicelib.core.ports import AlertStore, BackendUnavailable, MetricStore, SilenceStore
from chalicelib.core.tokens import Principal, ScopeKind

if TYPE_CHECKING:
    from chalicelib.services.alerting import AlertingService, EvaluationReport

logger = Logger(child=True)

MAX_THREADS = 64
RECORD_ATTEMPTS = 3


class Invoker(Protocol):
    def invoke(self, payload: dict[str, Any]) -> None:
        """Start one runner on `payload`, without waiting for it."""


class CheckHome(Protocol):
    """The home deployment, seen from a probe in another location."""

    def checks(self, location: str) -> list[dict[str, Any]]: ...

    def post(self, results: Sequence[ProbeResult]) -> None: ...


Prober = Callable[[Check, str, datetime], ProbeResult]


@dataclass(slots=True)
class CheckReport:
    """What a schedule or a batch did, for logs and metrics."""

    checks: int = 0
    runs: int = 0
    batches: int = 0
    up: int = 0
    down: int = 0
    recorded: int = 0
    lost_races: int = 0
    transitions: int = 0
    notifications: int = 0
    failures: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "checks": self.checks,
            "runs": self.runs,
            "batches": self.batches,
            "up": self.up,
            "down": self.down,
            "recorded": self.recorded,
            "lost_races": self.lost_races,
            "transitions": self.transitions,
            "notifications": self.notifications,
            "failures": self.failures[:20],
        }


class CheckService:
    def __init__(
        self,
        *,
        store: CheckStore,
        file_checks: Callable[[], tuple[Check, ...]],
        metrics: MetricStore,
        alerts: AlertStore,
        silences: SilenceStore,
        alerting: Callable[[], AlertingService],
        invoker: Callable[[], Invoker],
        prober: Prober,
        clock: Callable[[], datetime],
        location: str,
        simulate_locations: bool = False,
        batch_size: int = 50,
        window: timedelta = timedelta(minutes=1),
        status_url: str | None = None,
        home: Callable[[], CheckHome] | None = None,
    ) -> None:
        self.store = store
        # Set in a location away from home: definitions come from the home collector, results
        # go to it, and this deployment keeps no state (no checks table, no alerts).
        self._home = home
        self._file_checks = file_checks
        self.metrics = metrics
        self.alerts = alerts
        self.silences = silences
        self._alerting = alerting
        self._invoker = invoker
        self.prober = prober
        self.clock = clock
        self.location = location
        self.simulate_locations = simulate_locations
        self.batch_size = batch_size
        self.window = window
        self.status_url = status_url

    # -- definitions

    def checks(self, specs: Iterable[Mapping[str, Any]] | None = None) -> list[Check]:
        """The file's checks, then the API's (a name the file defines is the file's)."""
        out = list(self._file_checks())
        names = {c.name for c in out}
        for spec in self.store.scan()[0] if specs is None else specs:
            try:
                check = parse_check(spec, self.location)
            except ChecksError as exc:
                logger.warning("stored check unreadable", extra={"spec": spec, "reason": str(exc)})
                continue
            if check.name not in names:
                names.add(check.name)
                out.append(check)
        return out

    def listing(self, location: str | None = None) -> list[dict[str, Any]]:
        checks = sorted(self.checks(), key=lambda c: c.name)
        return [
            {**c.as_json(), "source": c.source}
            for c in checks
            if location is None or location in c.locations
        ]

    def get(self, name: str) -> dict[str, Any]:
        for check in self.checks():
            if check.name == name:
                return {**check.as_json(), "source": check.source}
        raise NotFound(f"no check named {name!r}")

    def put(self, name: str, body: object, now: datetime) -> tuple[dict[str, Any], bool]:
        """Create or replace an API check; (the check, created). 400 names the field."""
        if isinstance(body, dict):
            # What GET answers can be PUT back: `source` is ours to say, not the body's.
            body = {"name": name, **{k: v for k, v in body.items() if k != "source"}}
        try:
            check = parse_check(body, self.location)
        except ChecksError as exc:
            raise InvalidPayload(
                "invalid check", [Problem(path or "$", message) for path, message in exc.problems]
            ) from None
        if check.name != name:
            raise InvalidPayload(
                "invalid check", [Problem("name", f"must be {name!r}, as in the path")]
            )
        if any(c.name == name for c in self._file_checks()):
            raise InvalidPayload(
                "check defined in the checks file",
                [Problem("name", f"{name!r} is defined in the checks file; change it there")],
            )
        created = self.store.get(name) is None
        self.store.put(name, check.as_json(), now)
        return {**check.as_json(), "source": "api"}, created

    def delete(self, name: str) -> None:
        if any(c.name == name for c in self._file_checks()):
            raise InvalidPayload(
                "check defined in the checks file",
                [Problem("name", f"{name!r} is defined in the checks file; remove it there")],
            )
        if not self.store.delete(name):
            raise NotFound(f"no check named {name!r}")

    # -- schedule

    def schedule(self, now: datetime) -> CheckReport:
        """Decide the check alerts from what is stored, then start the due runs."""
        if self._home is not None:
            return self._schedule_away(now)
        specs, states = self.store.scan()
        checks = self.checks(specs)
        report = CheckReport(checks=len(checks))
        self._decide(checks, states, now, report, only=None)
        mine = None if self.simulate_locations else frozenset({self.location})
        runs = due_runs(checks, states, mine, now, self.window)
        self._start(runs, now, report)
        return report

    def _schedule_away(self, now: datetime) -> CheckReport:
        assert self._home is not None
        try:
            specs = self._home().checks(self.location)
        except BackendUnavailable as exc:
            logger.warning("home collector unreachable", extra={"reason": str(exc)})
            return CheckReport(failures=[str(exc)])
        checks = []
        for spec in specs:
            try:
                checks.append(parse_check(spec, self.location))
            except ChecksError as exc:
                logger.warning("check from home unreadable", extra={"reason": str(exc)})
        report = CheckReport(checks=len(checks))
        self._start(aligned_runs(checks, self.location, now, self.window), now, report)
        return report

    def _start(self, runs: list[Run], now: datetime, report: CheckReport) -> None:
        report.runs = len(runs)
        invoker = self._invoker() if runs else None
        for batch in batches(runs, self.batch_size):
            payload = {"scheduled_at": ms_of_instant(now), "runs": [run_json(r) for r in batch]}
            assert invoker is not None
            try:
                invoker.invoke(payload)
            except BackendUnavailable as exc:
                report.failures.append(str(exc))
                logger.warning("runner not started", extra={"reason": str(exc)})
                continue
            report.batches += 1

    # -- run

    def run_batch(self, payload: Mapping[str, Any]) -> CheckReport:
        """Run a batch concurrently, each run at its offset, then record the results."""
        runs = [run_of_json(raw, self.location) for raw in payload.get("runs", [])]
        scheduled = payload.get("scheduled_at")
        results = self.run(runs, instant_of_ms(int(scheduled)) if scheduled else None)
        report = CheckReport(runs=len(results))
        if self._home is not None:
            report.up = sum(r.up for r in results)
            report.down = len(results) - report.up
            try:
                self._home().post(results)
            except BackendUnavailable as exc:
                report.failures.append(str(exc))
                logger.warning("results not posted home", extra={"reason": str(exc)})
            return report
        self.record({r.check.name: r.check for r in runs}, results, report)
        return report

    def run(self, runs: list[Run], scheduled_at: datetime | None = None) -> list[ProbeResult]:
        """Every run at once: a run that hangs holds its own thread until its timeout."""
        if not runs:
            return []
        started = time.monotonic()
        # How late this runner started: an offset counts from the schedule's instant.
        lag = 0.0
        if scheduled_at is not None:
            lag = max((self.clock() - scheduled_at).total_seconds(), 0.0)

        def one(run: Run) -> ProbeResult:
            if run.offset:
                wait = run.offset.total_seconds() - lag - (time.monotonic() - started)
                if wait > 0:
                    time.sleep(wait)
            return self.prober(run.check, run.location, self.clock())

        with ThreadPoolExecutor(max_workers=min(len(runs), MAX_THREADS)) as pool:
            return list(pool.map(one, runs))

    def record(
        self,
        checks: Mapping[str, Check],
        results: list[ProbeResult],
        report: CheckReport,
    ) -> None:
        """Store results: points first (data), then each location's state, then the alerts."""
        by_host: dict[str, HostReport] = {}
        for r in results:
            if r.check in checks:
                one = result_report(checks[r.check], r)
                by_host.setdefault(one.host, HostReport(host=one.host)).points.extend(one.points)
        reports = list(by_host.values())  # one write request per target host, not per run
        try:
            refused = self.metrics.write(reports)
            if refused:
                report.failures.extend(r.reason for r in refused[:5])
        except BackendUnavailable as exc:
            report.failures.append(f"points not written: {exc}")
            logger.warning("check points not written", extra={"reason": str(exc)})
        known = [r for r in results if r.check in checks]
        report.up += sum(r.up for r in known)
        report.down += sum(not r.up for r in known)
        # One writer per (check, location), in time order; the pairs in parallel.
        chains: dict[tuple[str, str], list[ProbeResult]] = {}
        for result in sorted(known, key=lambda r: r.at):
            chains.setdefault((result.check, result.location), []).append(result)

        def store(chain: list[ProbeResult]) -> list[tuple[LocationState | None, bool, str]]:
            return [self._store_state(result) for result in chain]

        states: dict[str, dict[str, LocationState]] = {}
        moved: set[str] = set()  # checks whose alert this batch may change
        with ThreadPoolExecutor(max_workers=max(1, min(len(chains), 16))) as pool:
            pairs = zip(chains, pool.map(store, chains.values()), strict=True)
            for (name, location), stored in pairs:
                for state, may_change, outcome in stored:
                    if state is not None:
                        states.setdefault(name, {})[location] = state
                    if may_change:
                        moved.add(name)
                    if outcome == "recorded":
                        report.recorded += 1
                    elif outcome == "lost":
                        report.lost_races += 1
                    else:
                        report.failures.append(outcome)
        names = frozenset(moved)
        if not names:
            return  # every run up, as before: no alert can move (the schedule still decides)
        current: dict[str, dict[str, LocationState]] = {}
        for name in names:
            check = checks[name]
            for loc in check.locations:
                got = states[name].get(loc) or self.store.state(name, loc)
                if got is not None:
                    current.setdefault(name, {})[loc] = got
        self._decide(list(checks.values()), current, self.clock(), report, only=names)

    def _store_state(self, result: ProbeResult) -> tuple[LocationState | None, bool, str]:
        """(the state stored, whether the check's alert may move, what happened): runs on
        the writer pool, so it reports rather than counting."""
        for _ in range(RECORD_ATTEMPTS):
            try:
                previous = self.store.state(result.check, result.location)
                if previous is not None and previous["at"] >= ms_of_instant(result.at):
                    return None, False, "lost"  # a later run is already recorded
                state = advance(previous, result)
                prev_at = previous["at"] if previous else None
                if self.store.record(result.check, result.location, state, prev_at):
                    steady = previous is not None and previous["fails"] == 0 and result.up
                    return state, not steady, "recorded"
            except BackendUnavailable as exc:
                return None, True, str(exc)
        return None, True, "lost"

    def accept(self, body: object, now: datetime) -> CheckReport:
        """Results a probe in another location posted to the collector."""
        try:
            results = parse_results(body, now)
        except ChecksError as exc:
            raise InvalidPayload(
                "invalid check results", [Problem(p or "$", m) for p, m in exc.problems]
            ) from None
        checks = {c.name: c for c in self.checks()}
        problems = [
            Problem(f"results[{i}]", f"no check {r.check!r} runs from {r.location!r}")
            for i, r in enumerate(results)
            if r.check not in checks or r.location not in checks[r.check].locations
        ]
        if problems:
            raise InvalidPayload("unknown check or location", problems)
        report = CheckReport(runs=len(results))
        self.record(checks, results, report)
        return report

    # -- alerts

    def _decide(
        self,
        checks: list[Check],
        states: Mapping[str, Mapping[str, LocationState]],
        now: datetime,
        report: CheckReport,
        only: frozenset[str] | None,
    ) -> None:
        from chalicelib.core.evaluation import Evaluation

        try:
            records = {r.alert_id: r for r in self.alerts.scan() if r.kind is AlertKind.CHECK}
            active = [s for s in self.silences.list() if s.active_at(now)]
        except BackendUnavailable as exc:
            report.failures.append(str(exc))
            return

        def silenced(record: AlertRecord) -> bool:
            builtin = record.builtin_labels()
            return any(s.matches(builtin, record.labels) for s in active)

        changes: list[AlertChange] = check_changes(
            checks, states, records, silenced, now, status_url=self.status_url, only=only
        )
        if not changes:
            return
        alerting = self._alerting()
        done: EvaluationReport = alerting.apply(Evaluation(now, changes, [], {}), _report())
        report.transitions += done.transitions
        report.notifications += done.notifications
        report.lost_races += done.lost_races


def _report() -> EvaluationReport:
    from chalicelib.services.alerting import EvaluationReport

    return EvaluationReport()


class InProcessInvoker:
    """Runs each batch at once, in this process (tests, the local stack)."""

    def __init__(self, run: Callable[[dict[str, Any]], Any]) -> None:
        self._run = run

    def invoke(self, payload: dict[str, Any]) -> None:
        self._run(payload)


def require_probe(principal: Principal) -> None:
    """A probe posts results and reads its location's checks with a fleet (or admin) token."""
    if principal.scope.kind is ScopeKind.HOST:
        raise Forbidden(
            f"this needs a fleet or admin token; token {principal.token_id} is {principal.scope}"
        )
