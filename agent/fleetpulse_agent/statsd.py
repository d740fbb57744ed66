"""A statsd-compatible UDP listener for services on the host.

Counters (`c`), gauges (`g`, with `+n`/`-n` deltas), timers (`ms`, `h`, `d`)
and sets (`s`) are aggregated per send interval; DogStatsD `|#tag:value`
tags become point tags. A service's own heartbeats and nagios-style status go
through the `event` command.

Each statsd name is a measurement tagged `source=statsd` and `type=counter|
gauge|timer|set`; the fields are `count`, `rate` (counters), `value`
(gauges), `count`, `mean`, `min`, `max`, `p50`, `p90`, `p99` (timers) and
`unique` (sets).
"""

from __future__ import annotations

import contextlib
import math
import re
import socket
import threading
import time

from fleetpulse_agent.aggregate import round3
from fleetpulse_agent.config import valid_name
from fleetpulse_agent.log import log
from fleetpulse_agent.send import random_fraction

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations stay strings at run time (PEP 563): typing is never loaded
    from typing import Any, Dict, List, Optional, Tuple


TYPES = {"c": "counter", "g": "gauge", "ms": "timer", "h": "timer", "d": "timer", "s": "set"}
FIELD_NAMES = {"count", "rate", "value", "mean", "min", "max", "p50", "p90", "p99", "unique"}
OWN_TAGS = ("source", "type")
RESERVED_MEASUREMENTS = ("event", "alert")
MAX_TIMER_SAMPLES = 1000  # per series and interval; beyond it a reservoir keeps a fair sample
MAX_SET_VALUES = 10000
_BAD = re.compile(r"[^A-Za-z0-9_./-]")


def clean_name(raw: str) -> Optional[str]:
    """A statsd name as a valid measurement or tag name; None when nothing usable is left."""
    name = _BAD.sub("_", raw.strip())[:128]
    if not name:
        return None
    if not (name[0].isalpha() or name[0] == "_"):
        name = "_" + name[:127]
    if name in RESERVED_MEASUREMENTS or not valid_name(name):
        name = "statsd." + name
    return name[:128] if valid_name(name[:128]) else None


class StatsdAggregator:
    """Metrics of the running interval, fed from the listener thread, flushed by the agent."""

    def __init__(self, max_series: int = 2000, rand: Any = random_fraction) -> None:
        self.max_series = max_series
        self.rand = rand
        self.lock = threading.Lock()
        self.series: Dict[Tuple[str, str, Tuple[Tuple[str, str], ...]], list] = {}
        self.gauges: Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float] = {}
        self.packets = 0
        self.bad_lines = 0
        self.dropped = 0

    def feed(self, packet: bytes) -> None:
        """Take one datagram (one or more newline-separated lines). Never raises."""
        self.packets += 1
        for raw in packet.decode("utf-8", "replace").splitlines():
            line = raw.strip()
            if not line:
                continue
            try:
                if not self._metric(line):
                    self.bad_lines += 1
            except (ValueError, IndexError):
                self.bad_lines += 1

    def _metric(self, line: str) -> bool:
        name_part, sep, rest = line.partition(":")
        if not sep:
            return False
        parts = rest.split("|")
        if len(parts) < 2 or parts[1] not in TYPES:
            return False
        name = clean_name(name_part)
        if name is None:
            return False
        kind = TYPES[parts[1]]
        rate, tags = 1.0, {}
        for extra in parts[2:]:
            if extra.startswith("@"):
                rate = float(extra[1:])
                if not 0 < rate <= 1:
                    return False
            elif extra.startswith("#"):
                tags = _tags(extra[1:])
        raw = parts[0].strip()
        if kind != "set":
            value = float(raw)  # checked before anything is stored: a bad line leaves no trace
            if not math.isfinite(value):
                return False
        tag_key = tuple(sorted(tags.items()))
        with self.lock:
            key = (name, kind, tag_key)
            entry = self.series.get(key)
            if entry is None:
                if len(self.series) >= self.max_series:
                    self.dropped += 1
                    return True
                entry = self.series[key] = [tags, 0.0, [], 0, 0.0, None, None, set()]
            if kind == "counter":
                entry[1] += value / rate
            elif kind == "gauge":
                if raw[0] in "+-":
                    value += self.gauges.get((name, tag_key), 0.0)
                if len(self.gauges) > 2 * self.max_series:
                    self.gauges.clear()  # forget old bases rather than grow without bound
                self.gauges[(name, tag_key)] = value
                entry[1] = value
                entry[3] += 1
            elif kind == "timer":
                entry[3] += 1
                entry[4] += value
                entry[5] = value if entry[5] is None else min(entry[5], value)
                entry[6] = value if entry[6] is None else max(entry[6], value)
                samples = entry[2]
                if len(samples) < MAX_TIMER_SAMPLES:
                    samples.append(value)
                else:  # reservoir sampling: every value had the same chance to be kept
                    slot = int(self.rand() * entry[3])
                    if slot < MAX_TIMER_SAMPLES:
                        samples[slot] = value
            elif len(entry[7]) < MAX_SET_VALUES:
                entry[7].add(raw)
        return True

    def flush(self, time_ms: int, interval_s: float) -> List[Dict[str, Any]]:
        """The interval's points; starts a new interval."""
        with self.lock:
            series, self.series = self.series, {}
        points = []
        for (name, kind, _), (tags, total, samples, n, tsum, lo, hi, values) in series.items():
            if kind == "counter":
                fields = {"count": round3(total), "rate": round3(total / interval_s)}
            elif kind == "gauge":
                fields = {"value": round3(total)}
            elif kind == "timer":
                samples.sort()
                fields = {
                    "count": n,
                    "mean": round3(tsum / n),
                    "min": round3(lo),
                    "max": round3(hi),
                }
                for q in (50, 90, 99):
                    fields["p%d" % q] = round3(
                        samples[min(len(samples) - 1, int(len(samples) * q / 100))]
                    )
            else:
                fields = {"unique": len(values)}
            point_tags = dict(tags)
            point_tags.update(source="statsd", type=kind)
            points.append(
                {"measurement": name, "time": time_ms, "tags": point_tags, "fields": fields}
            )
        return points


def _tags(raw: str) -> Dict[str, str]:
    tags = {}
    for item in raw.split(","):
        key, _, value = item.partition(":")
        key = clean_name(key) or ""
        # A tag may not shadow the agent's own tags or share a name with a field.
        if key and value and key not in OWN_TAGS and key not in FIELD_NAMES and len(key) <= 60:
            tags[key] = value[:256]
    return tags


class StatsdServer:
    """The UDP socket and its reader thread (a daemon thread: it never blocks shutdown)."""

    def __init__(self, address: Tuple[str, int], aggregator: StatsdAggregator) -> None:
        self.aggregator = aggregator
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.address = self.sock.getsockname()
        self.thread = threading.Thread(target=self._serve, name="statsd", daemon=True)
        self.running = True

    def start(self) -> "StatsdServer":
        self.thread.start()
        return self

    def _serve(self) -> None:
        while self.running:
            try:
                packet = self.sock.recv(65535)
            except OSError:
                if not self.running:
                    return
                time.sleep(0.1)
                continue
            try:
                self.aggregator.feed(packet)
            except Exception as exc:  # a strange datagram must not end the listener
                log.warning("statsd datagram ignored: %s", exc)

    def stop(self) -> None:
        self.running = False
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked recv on Linux
        with contextlib.suppress(OSError):
            self.sock.close()
