"""The agent: sample every sample_interval, cut a batch every send_interval, send in the background.

The collect loop only ever touches memory and the spool; the network is the
sender thread's business, so a stuck collector never delays a sample. Neither
loop lets an exception out: each failure is logged with its reason and counted.
"""

from __future__ import annotations

import signal
import threading
import time

from fleetpulse_agent.aggregate import MAX_POINTS_PER_BATCH, Aggregator, chunks
from fleetpulse_agent.checks import CheckRunner, agent_deliver
from fleetpulse_agent.collect import CONST, KINDS, Collector
from fleetpulse_agent.deliver import Sender, encode, envelope
from fleetpulse_agent.diagnose import Diagnosis
from fleetpulse_agent.imds import identity
from fleetpulse_agent.log import log
from fleetpulse_agent.procs import Processes
from fleetpulse_agent.send import Response, SendError
from fleetpulse_agent.spool import Spool
from fleetpulse_agent.statsd import StatsdAggregator, StatsdServer

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations stay strings at run time (PEP 563): typing is never loaded
    from typing import Any, Callable, Dict, List, Optional

    from fleetpulse_agent.checks import Check


SELF_MEASUREMENT = "fleetpulse_agent"


def host_tags(cfg: Any) -> Dict[str, str]:
    tags = identity(cfg.imds_url) if cfg.ec2_tags and cfg.imds_url else {}
    tags.update(cfg.tags)
    return tags


class Agent:
    """One host's agent. `run()` is the daemon; `once()` is one cycle for cron."""

    def __init__(
        self,
        cfg: Any,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        collector: Optional[Collector] = None,
        post: Optional[Callable[[bytes], Response]] = None,
        on_batch: Optional[Callable[[Dict[str, Any]], None]] = None,
        checks: Optional[List[Check]] = None,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.monotonic = monotonic
        self.tags = host_tags(cfg)
        self.spool = Spool(
            cfg.spool_dir, int(cfg.spool_max_mb * 2**20), int(cfg.memory_queue_mb * 2**20)
        )
        self.sender = Sender(cfg, self.spool, post=post, clock=clock)
        self.collector = collector or Collector(clock=monotonic)
        self.aggregator = Aggregator(stats=cfg.stats)
        self.statsd = StatsdAggregator(cfg.statsd_max_series)
        self.server: Optional[StatsdServer] = None
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.loop_errors = 0
        self.interval_started = monotonic()
        self.on_batch = on_batch  # tests watch every batch that enters the spool
        self.procs: Optional[Processes] = Processes.of(cfg) if cfg.processes else None
        self.diagnosis = Diagnosis()
        # Exec checks run in a thread of their own: a hung plugin never delays a sample.
        self.checks = None
        if checks:
            self.checks = CheckRunner(
                checks, agent_deliver(self), clock, monotonic, cfg.send_interval
            )

    # -- the collect side

    def sample(self) -> None:
        now_ms = int(self.clock() * 1000)
        for measurement, tags, fields in self.collector.sample():
            self.aggregator.add(measurement, tags, fields, now_ms)

    def counters(self) -> Dict[str, int]:
        """The spool's levels, and the totals since start that are not zero (absent: none)."""
        batches, size = self.spool.usage()
        out = {
            "spool_bytes": size,
            "spool_batches": batches,
            "memory_batches": len(self.spool.memory),
        }
        totals = {
            "dropped_batches": self.spool.dropped,
            "dead_letters": self.spool.dead_letters,
            "quarantined": self.spool.quarantined,
            "collect_errors": self.collector.errors,
            "loop_errors": self.loop_errors,
            "statsd_packets": self.statsd.packets,
            "statsd_bad_lines": self.statsd.bad_lines,
            "statsd_dropped": self.statsd.dropped,
            "sent_batches": self.sender.sent_batches,
            "sent_points": self.sender.sent_points,
            "send_errors": self.sender.send_errors,
            "rejected": self.sender.rejected,
        }
        out.update((k, v) for k, v in totals.items() if v)
        return out

    def cut(self, state: str = "alive") -> int:
        """Close the interval: its points go to the spool as one or more batches."""
        now = self.monotonic()
        now_ms = int(self.clock() * 1000)
        counters = self.counters()
        for name in counters:
            KINDS[name] = CONST  # totals since start: the last value is the one to send
        self.aggregator.add(SELF_MEASUREMENT, {}, counters, now_ms)
        points = self.aggregator.flush()
        events = []
        for event, point, _ in self.checks.take() if self.checks else ():
            events.append(event)  # steady check results ride with the interval's batch
            points.append(point)
        try:
            points += self.statsd.flush(now_ms, max(0.001, now - self.interval_started))
        except Exception as exc:  # the host's own points must not be lost with the statsd ones
            self.loop_errors += 1
            log.exception("statsd interval lost: %s", exc)
        self.interval_started = now
        if self.procs and state == "alive":
            events += self.procs.take(points)
        events += self.diagnosis.events(now_ms)
        parts = chunks(points, MAX_POINTS_PER_BATCH)
        for part in parts:
            doc = envelope(self.cfg.host, self.tags, self.cfg.send_interval, state)
            doc["points"] = part
            if events:
                doc["events"], events = events, []
            self.put(doc, now_ms)
        return len(parts)

    def put(self, doc: Dict[str, Any], time_ms: Optional[int] = None) -> None:
        if self.on_batch:
            self.on_batch(doc)
        self.spool.put(encode(doc), time_ms)
        self.wake.set()

    # -- the daemon

    def start(self) -> None:
        """Open the statsd listener; start the sender thread and the process watcher's."""
        if self.cfg.statsd:
            try:
                self.server = StatsdServer(self.cfg.statsd, self.statsd).start()
                log.info("statsd listening on %s:%d", *self.server.address[:2])
            except OSError as exc:
                log.error("statsd listener on %s:%d not started: %s", *self.cfg.statsd, exc)
        self.sender_thread = threading.Thread(target=self._send_loop, name="sender", daemon=True)
        self.sender_thread.start()
        if self.procs:
            self.procs.start(self.stopping)
        if self.checks:
            self.checks.start()

    def _send_loop(self) -> None:
        while not self.stopping.is_set():
            self.wake.clear()
            wait = self.sender.send_pending()
            if self.stopping.is_set():
                return
            if wait > 0:
                self.stopping.wait(wait)  # backing off: new batches wait in the spool too
            else:
                self.wake.wait()

    def run(self) -> None:
        """Sample and send until SIGTERM/SIGINT (or stop()), then shut down cleanly."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: self.stop())
            signal.signal(signal.SIGINT, lambda *_: self.stop())
        log.info(
            "agent started: host %s, sampling every %gs, sending every %gs to %s",
            self.cfg.host,
            self.cfg.sample_interval,
            self.cfg.send_interval,
            self.sender.url,
        )
        self.start()
        next_sample = self.monotonic()
        next_cut = next_sample + self.cfg.send_interval
        while not self.stopping.is_set():
            try:
                self.sample()
                if self.monotonic() >= next_cut - self.cfg.sample_interval / 2:
                    self.cut()
                    next_cut += self.cfg.send_interval
            except Exception as exc:  # the loop outlives any one failure
                self.loop_errors += 1
                log.exception("collect cycle failed: %s", exc)
            now = self.monotonic()
            next_sample += self.cfg.sample_interval
            if next_sample < now:  # suspended or overloaded: skip, never burst
                next_sample = now + self.cfg.sample_interval
                next_cut = max(next_cut, now)
            self.stopping.wait(next_sample - now)
        self.shutdown()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def shutdown(self) -> None:
        """Flush what can be sent within shutdown_timeout, then say `shutdown` to the collector."""
        deadline = self.clock() + self.cfg.shutdown_timeout
        self.stopping.set()
        self.wake.set()
        if self.server:
            self.server.stop()
        if self.checks:
            self.checks.stop()
        try:
            self.sample()
            self.cut("shutdown")
        except Exception as exc:
            log.exception("last batch not written: %s", exc)
        # Most of the time for the backlog; the rest to say goodbye if the backlog is stuck.
        flush_until = self.clock() + 0.7 * (deadline - self.clock())
        left = flush_until - self.clock()
        if left > 0:
            self.sender.send_pending(deadline=flush_until, lock_wait=left, urgent=True)
        if self.spool.pending():
            # The backlog stays for the next start; the collector still hears we stopped on purpose.
            self.say_shutdown(deadline)
        log.info("agent stopped; %d batches left in the spool", len(self.spool.pending()))

    def say_shutdown(self, deadline: float) -> bool:
        if self.sender.retry_after_until > self.clock() or deadline <= self.clock():
            return False
        doc = envelope(self.cfg.host, self.tags, self.cfg.send_interval, "shutdown")
        doc["points"] = []
        self.sender.request_deadline = time.monotonic() + deadline - self.clock()
        try:
            response = self.sender.post(encode(doc))
        except SendError as exc:
            log.warning("shutdown heartbeat not sent: %s", exc)
            return False
        log.info("shutdown heartbeat sent: %d", response.status)
        return 200 <= response.status < 300

    # -- cron mode

    def once(self, budget: float) -> bool:
        """One cycle: sample twice a second apart (rates need two readings), spool, send
        the backlog (and any exec checks, run once). True when the spool is empty afterwards.
        """
        if self.checks:
            self.checks.once()
        self.sample()
        time.sleep(min(1.0, self.cfg.sample_interval))
        self.aggregator.flush()  # the first reading only primed the counters
        self.sample()
        self.cut()
        self.sender.send_pending(deadline=self.clock() + budget, lock_wait=min(budget, 10.0))
        return not self.spool.pending()
