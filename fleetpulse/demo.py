"""`fleetpulse local demo` (`make demo`): a scripted story on the local stack, checked as it goes.

Two hosts post every second. demo-web-1 stops reporting: late, then down, and the page
reaches PagerDuty and Slack (the local inbox); it reports again and both resolve.
demo-db-1's CPU goes busy: pending, then firing, a Slack message (warning: PagerDuty
takes critical only); it calms down and the alert resolves. A silence on demo-db-1 keeps
the next CPU alert quiet while it fires; deleting the silence sends it. Both hosts then
shut down cleanly and are retired, not paged.

Every step is checked against the API and the inbox; a step that does not happen within
its deadline stops the story, and the command exits 1.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetpulse.inbox import Notice
from fleetpulse.stack import LocalStack, free_port

WEB = "demo-web-1"
DB = "demo-db-1"
CPU_RULE = "cpu-busy"
RULES_TEMPLATE = """\
# The demo's rules: seconds instead of minutes, so the story fits in one.
heartbeat:
  grace: {grace}
  severity: critical
rules:
  - name: {rule}
    measurement: cpu
    field: idle
    op: "<"
    warning: 10
    recovery: 50
    for: {hold}
    match: {{cpu: total}}
    summary: "CPU {{value:.0f}}% idle on {{host}}"
"""
# What the demo must not inherit from the caller: it checks the local inbox.
CALLER_VARIABLES = ("FLEETPULSE_RULES", "FLEETPULSE_SLACK_WEBHOOK_URL", "FLEETPULSE_PAGERDUTY_URL")


@dataclass(frozen=True)
class Pace:
    """How fast the story runs. The command reads well; the test runs it faster."""

    tick: float = 1.0  # seconds between evaluations
    post_every: float = 1.0  # seconds between a live host's posts
    interval_s: int = 2  # the heartbeat interval the hosts announce
    grace: str = "3s"  # down after interval + grace
    hold: str = "4s"  # the CPU rule's `for`
    deadline: float = 20.0  # seconds each step may take


# Windows stay 2 s wide (late, pending), so a busy test machine still sees them.
FAST = Pace(tick=0.25, post_every=0.25, interval_s=1, grace="2s", hold="2s", deadline=10.0)


class StepFailed(Exception):
    pass


class Fleet:
    """The demo hosts: a thread posts for each live one, at its current CPU."""

    def __init__(self, stack: LocalStack, pace: Pace) -> None:
        import requests

        self.stack = stack
        self.pace = pace
        self.busy = {WEB: 12.0, DB: 8.0}
        self.live = {WEB, DB}
        self.errors: list[str] = []
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {stack.fleet_token}"
        self._lock = threading.Lock()
        # Held for a whole round of posts: a host taken out of the fleet gets no stray
        # "alive" post after its goodbye.
        self._round = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-fleet", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._session.close()

    def set(self, host: str, *, live: bool | None = None, busy: float | None = None) -> None:
        with self._round, self._lock:
            if live is True:
                self.live.add(host)
            elif live is False:
                self.live.discard(host)
            if busy is not None:
                self.busy[host] = busy

    def shut_down(self, host: str) -> None:
        """The host leaves the fleet with a `shutdown` heartbeat, as a clean stop does."""
        with self._round:
            with self._lock:
                self.live.discard(host)
            self.post(host, "shutdown")

    def post(self, host: str, state: str = "alive") -> None:
        now = int(time.time() * 1000)
        with self._lock:
            busy = self.busy[host]
        body: dict[str, Any] = {
            "host": host,
            "tags": {"role": "demo"},
            "heartbeat": {"interval": self.pace.interval_s, "state": state},
            "points": [
                {
                    "measurement": "cpu",
                    "time": now,
                    "tags": {"cpu": "total"},
                    "fields": {"idle": round(100 - busy, 1), "user": round(busy * 0.8, 1)},
                },
                {"measurement": "memory", "time": now, "fields": {"used_percent": 41.5}},
            ],
        }
        response = self._session.post(f"{self.stack.url}/v1/ingest", json=body, timeout=10)
        if response.status_code != 202:
            self.errors.append(f"{host}: HTTP {response.status_code} {response.text[:200]}")

    def _run(self) -> None:
        while not self._stop.wait(self.pace.post_every):
            with self._round:
                with self._lock:
                    hosts = sorted(self.live)
                for host in hosts:
                    try:
                        self.post(host)
                    except Exception as exc:
                        self.errors.append(f"{host}: {exc}")


class Story:
    """The narration: each line stamped with the seconds since the start."""

    def __init__(
        self,
        stack: LocalStack,
        fleet: Fleet,
        pace: Pace,
        out: Callable[[str], None],
        started: float,
    ) -> None:
        import requests

        self.stack = stack
        self.fleet = fleet
        self.pace = pace
        self.out = out
        self.started = started
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {stack.admin_token}"

    def say(self, text: str) -> None:
        self.out(f"[{time.monotonic() - self.started:5.1f}s] {text}")

    def api(self, method: str, path: str, body: Any = None) -> Any:
        response = self._session.request(method, self.stack.url + path, json=body, timeout=10)
        if response.status_code >= 300:
            raise StepFailed(f"{method} {path}: HTTP {response.status_code} {response.text[:200]}")
        return response.json()

    def host_state(self, host: str) -> str | None:
        hosts = self.api("GET", f"/v1/hosts?host={host}")["hosts"]
        return str(hosts[0]["state"]) if hosts else None

    def cpu_alert(self) -> dict[str, Any] | None:
        alerts = self.api("GET", f"/v1/alerts?host={DB}&state=pending,firing")["alerts"]
        found = [a for a in alerts if a["rule"] == CPU_RULE]
        return found[0] if found else None

    def expect(self, what: str, check: Callable[[], Any]) -> Any:
        """Wait for `check` to return something true; say so, or fail the story."""
        begun = time.monotonic()
        deadline = begun + self.pace.deadline
        while True:
            value = check()
            if value:
                self.say(f"  ok  {what} ({time.monotonic() - begun:.1f} s)")
                return value
            if self.fleet.errors:
                raise StepFailed(f"a demo host's post failed: {self.fleet.errors[0]}")
            if time.monotonic() > deadline:
                raise StepFailed(f"{what}: not within {self.pace.deadline:g} s")
            time.sleep(0.1)

    def notice(
        self, channel: str, status: str, host: str, since: int, contains: str = ""
    ) -> Callable[[], Notice | None]:
        assert self.stack.inbox is not None
        inbox = self.stack.inbox

        def check() -> Notice | None:
            for n in inbox.notices[since:]:
                if (n.channel, n.status, n.host) == (
                    channel,
                    status,
                    host,
                ) and contains in n.summary:
                    return n
            return None

        return check

    def mark(self) -> int:
        assert self.stack.inbox is not None
        return len(self.stack.inbox.notices)

    def run(self) -> None:
        s, f = self, self.fleet
        s.say(
            f"{WEB} and {DB} report every {self.pace.post_every:g} s "
            f"(heartbeat interval {self.pace.interval_s} s)"
        )
        s.expect(f"{WEB} and {DB} are up", lambda: s.host_state(WEB) == s.host_state(DB) == "up")

        s.say(f"1. {WEB} stops reporting, as if it crashed")
        mark = s.mark()
        f.set(WEB, live=False)
        s.expect(f"{WEB} is late", lambda: s.host_state(WEB) == "late")
        s.expect(f"{WEB} is down", lambda: s.host_state(WEB) == "down")
        s.expect("PagerDuty was paged (critical)", s.notice("pagerduty", "firing", WEB, mark))
        s.expect("Slack was told", s.notice("slack", "firing", WEB, mark, "stopped reporting"))
        s.say(f"   {WEB} reports again")
        mark = s.mark()
        f.set(WEB, live=True)
        s.expect(f"{WEB} is up", lambda: s.host_state(WEB) == "up")
        s.expect("PagerDuty incident resolved", s.notice("pagerduty", "resolved", WEB, mark))
        s.expect("Slack says resolved", s.notice("slack", "resolved", WEB, mark))

        s.say(
            f"2. {DB}'s CPU goes to 95% busy (rule {CPU_RULE}: warning below 10% idle "
            f"for {self.pace.hold})"
        )
        mark = s.mark()
        f.set(DB, busy=95.0)
        s.expect("the alert is pending", lambda: (s.cpu_alert() or {}).get("state") == "pending")
        s.expect("the alert fires", lambda: (s.cpu_alert() or {}).get("state") == "firing")
        s.expect("Slack was told (warning)", s.notice("slack", "firing", DB, mark, "CPU"))
        s.say(f"   {DB}'s CPU back to 10%")
        mark = s.mark()
        f.set(DB, busy=10.0)
        s.expect("Slack says resolved", s.notice("slack", "resolved", DB, mark))

        s.say(f"3. a silence on {DB} for 10 minutes, then its CPU goes busy again")
        silence = s.api(
            "POST",
            "/v1/silences",
            {"matchers": {"host": DB}, "duration": "10m", "comment": "demo: planned load test"},
        )
        mark = s.mark()
        f.set(DB, busy=95.0)
        s.expect(
            "the alert fires, silenced",
            lambda: (a := s.cpu_alert()) and a["state"] == "firing" and a["silenced_by"],
        )
        time.sleep(3 * self.pace.tick)
        sent = s.notice("slack", "firing", DB, mark)()
        if sent is not None:
            raise StepFailed("a silenced alert was notified")
        s.say("  ok  nothing was sent while it is silenced")
        s.say(f"   the silence is deleted (DELETE /v1/silences/{silence['silence_id']})")
        s.api("DELETE", f"/v1/silences/{silence['silence_id']}")
        s.expect("Slack is told now", s.notice("slack", "firing", DB, mark, "CPU"))
        mark = s.mark()
        f.set(DB, busy=10.0)
        s.expect("and resolved when the CPU calms down", s.notice("slack", "resolved", DB, mark))

        s.say("4. both hosts shut down cleanly")
        mark = s.mark()
        f.shut_down(WEB)
        f.shut_down(DB)
        s.expect(
            "both are retired",
            lambda: s.host_state(WEB) == s.host_state(DB) == "retired",
        )
        time.sleep(3 * self.pace.tick)
        if s.mark() != mark:
            raise StepFailed("a clean shutdown was notified")
        s.say("  ok  and nobody was paged")
        assert self.stack.inbox is not None
        paged = [n for n in self.stack.inbox.notices if n.channel == "pagerduty"]
        if [(n.status, n.host) for n in paged] != [("firing", WEB), ("resolved", WEB)]:
            raise StepFailed(f"PagerDuty got more than the host-down page: {paged}")


@contextmanager
def _own_environment(rules: Path) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in CALLER_VARIABLES}
    for name in CALLER_VARIABLES:
        os.environ.pop(name, None)
    os.environ["FLEETPULSE_RULES"] = str(rules.resolve())
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_demo(
    port: int = 0,
    state_dir: Path = Path(".fleetpulse/demo"),
    pace: Pace | None = None,
    out: Callable[[str], None] | None = None,
) -> int:
    """Run the story on a fresh local stack; 0 when every step happened in time."""
    pace = pace or Pace()
    say = out or (lambda text: print(text, flush=True))
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "inbox.jsonl").unlink(missing_ok=True)
    rules = state_dir / "rules.yaml"
    rules.write_text(RULES_TEMPLATE.format(grace=pace.grace, hold=pace.hold, rule=CPU_RULE))
    started = time.monotonic()
    with _own_environment(rules):
        stack = LocalStack(
            port=port or free_port(),
            state_dir=state_dir,
            tick=pace.tick,
            agent=False,
            out=lambda text: say(f"[{time.monotonic() - started:5.1f}s]   {text}"),
            announce_evaluations=False,
        )
        stack.start()
        fleet = Fleet(stack, pace)
        story = Story(stack, fleet, pace, say, started)
        say(
            f"fleetpulse demo: the local stack evaluating every {pace.tick:g} s "
            f"(rules {rules}), notifications to {stack.inbox_file}"
        )
        failed: str | None = None
        try:
            fleet.start()
            story.run()
        except StepFailed as exc:
            failed = str(exc)
        finally:
            fleet.stop()
            stack.stop()
    took = time.monotonic() - started
    if failed is not None:
        say(f"demo FAILED after {took:.1f} s: {failed}")
        return 1
    assert stack.inbox is not None
    say(
        f"demo complete in {took:.1f} s: {len(stack.inbox.notices)} notifications, "
        f"all in {stack.inbox_file}"
    )
    return 0
