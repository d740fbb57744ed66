#!/usr/bin/env python3
"""What one agent post costs in Timestream, before and after the lean default payload.

The real agent (its collector, aggregator, process watcher and self-diagnostics,
default settings, statsd off) samples this machine for one simulated minute:
one priming reading, then --samples readings --spacing seconds apart, then one
cut, exactly what `send_interval=60` / `sample_interval=10` send. The same
readings are folded three ways:

- before: the previous default, every gauge with `_count`, `_min`, `_max`,
  `_stddev`; kernel threads as process groups; the top groups by CPU even
  when they used none; zero average-only fields and zero totals sent.
- stats=count,min,max,stddev: today's agent with the full set opted back in.
- after: today's default (`stats=min,max`).

Timestream bills a record's parts: the time (8 bytes), each dimension's name
and value (the host and its tags, the point's tags), the measure name, each
field name, and 8 bytes per number. Prints points, fields, field-name and
value bytes, the JSON and gzip body, and Timestream bytes per minute and per
host-month (43,200 posts), with after/before ratios; --by-measurement shows
where the after bytes go, --ec2 adds the identity an agent on EC2 sends as host
tags (each record carries them as dimensions).

    python3 bench/agent_payload.py --samples 6 --spacing 0.5
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agent"))

from fleetpulse_agent import config
from fleetpulse_agent.agent import SELF_MEASUREMENT, Agent
from fleetpulse_agent.aggregate import Aggregator, round3
from fleetpulse_agent.collect import AVG, CONST, GAUGE, KINDS, SKIP_NET, SUM
from fleetpulse_agent.procs import Processes

HOST = "web-1.example.com"
POSTS_PER_MONTH = 30 * 24 * 60
# The identity an agent on EC2 adds as host tags (imds.py), values of real length: every
# record carries them as dimensions.
EC2_TAGS = {
    "instance_id": "i-0123456789abcdef0",
    "instance_type": "t3.small",
    "az": "us-east-1a",
    "region": "us-east-1",
    "account_id": "123456789012",
    "ami_id": "ami-0123456789abcdef0",
}
ALL_STATS = "count,min,max,stddev"
# Gauges before, average only now: the agent's own footprint, and the load averages.
WERE_GAUGES = ("rss_bytes", "cpu_percent", "load5", "load15")


def previous_flush(agg: Aggregator) -> list[dict[str, Any]]:
    """The previous default's points from the same folded samples."""
    points = []
    for (measurement, _), (tags, time_ms, stats) in agg.series.items():
        fields: dict[str, Any] = {}
        for name, (n, total, lo, hi, last, squares) in stats.items():
            kind = GAUGE if name in WERE_GAUGES else KINDS.get(name, GAUGE)
            if kind == CONST:
                fields[name] = round3(last)
            elif kind == SUM:
                fields[name] = round3(total)
            else:
                mean = total / n
                fields[name] = round3(mean)
                if kind != AVG:
                    fields[name + "_count"] = n
                    if n > 1:
                        fields[name + "_min"] = round3(lo)
                        fields[name + "_max"] = round3(hi)
                        var = max(0.0, squares / n - mean * mean)
                        fields[name + "_stddev"] = round3(math.sqrt(var))
        point: dict[str, Any] = {"measurement": measurement, "time": time_ms, "fields": fields}
        if tags:
            point["tags"] = tags
        points.append(point)
    return points


def previous_extras() -> list[tuple[str, dict[str, str], dict[str, Any]]]:
    """What the previous collector also sent each sample: swap when none is configured, and
    interfaces that never carried a packet (zero rates, zero errors)."""
    extras: list[tuple[str, dict[str, str], dict[str, Any]]] = []
    meminfo = Path("/proc/meminfo").read_text()
    if "SwapTotal:" in meminfo and int(meminfo.split("SwapTotal:")[1].split()[0]) == 0:
        extras.append(("swap", {}, {"total_bytes": 0, "used_bytes": 0, "used_percent": 0.0}))
    for line in Path("/proc/net/dev").read_text().splitlines()[2:]:
        name, _, rest = line.partition(":")
        name, v = name.strip(), rest.split()
        if name.startswith(SKIP_NET) or int(v[1]) or int(v[9]):
            continue
        fields = dict.fromkeys(("rx_bytes_per_s", "tx_bytes_per_s"), 0.0)
        fields.update(dict.fromkeys(("rx_packets_per_s", "tx_packets_per_s"), 0.0))
        fields.update(dict.fromkeys(("rx_errors", "tx_errors", "rx_drops", "tx_drops"), 0))
        extras.append(("net", {"interface": name}, fields))
    return extras


def record_bytes(host_tags: dict[str, str], point: dict[str, Any]) -> tuple[int, int, int]:
    """(Timestream bytes, field-name bytes, value bytes) of the point's one multi-measure
    record."""
    dims = {"host": HOST, **host_tags, **point.get("tags", {})}
    names = sum(len(k.encode()) for k in point["fields"])
    values = 8 * len(point["fields"])
    fixed = 8 + sum(len(k.encode()) + len(v.encode()) for k, v in dims.items())
    return fixed + len(point["measurement"].encode()) + names + values, names, values


def figures(host_tags: dict[str, str], points: list[dict[str, Any]]) -> dict[str, float]:
    parts = [record_bytes(host_tags, p) for p in points]
    body = json.dumps(
        {"host": HOST, "tags": host_tags, "points": points}, separators=(",", ":")
    ).encode()
    return {
        "points": len(points),
        "fields": sum(len(p["fields"]) for p in points),
        "name B": sum(n for _, n, _ in parts),
        "value B": sum(v for _, _, v in parts),
        "json B": len(body),
        "gzip B": len(gzip.compress(body)),
        "TS B/min": sum(t for t, _, _ in parts),
        "TS MB/month": sum(t for t, _, _ in parts) * POSTS_PER_MONTH / 1e6,
    }


def agent(tmp: Path, stats: str) -> Agent:
    env = {
        "FLEETPULSE_CONFIG": str(tmp / "agent.conf"),
        "FLEETPULSE_URL": "http://127.0.0.1:9/",
        "FLEETPULSE_TOKEN": "unused",
        "FLEETPULSE_SPOOL_DIR": str(tmp / ("spool-" + stats)),
        "FLEETPULSE_STATSD": "off",
        "FLEETPULSE_IMDS_URL": "",
        "FLEETPULSE_STATS": stats,
    }
    (tmp / "agent.conf").write_text("")
    return Agent(config.load(env=env, require_url=False))


def process_points(watcher: Processes) -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = []
    watcher.interval(time.monotonic(), int(time.time() * 1000), points)
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=6, help="samples per interval (6)")
    parser.add_argument("--spacing", type=float, default=0.5, help="seconds between samples")
    parser.add_argument(
        "--ec2", action="store_true", help="with the host tags an agent on EC2 adds (imds.py)"
    )
    parser.add_argument(
        "--by-measurement", action="store_true", help="after's bytes by measurement"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        after, full = agent(Path(tmp), "min,max"), agent(Path(tmp), ALL_STATS)
        assert config.SETTINGS["stats"][0] == "min,max", "the default changed: update the rows"
        after.procs = after.procs or Processes()
        # The previous watcher: kernel threads counted, and groups that used no CPU among
        # the top by CPU (ranked after those that did, in the order found, as before).
        old = Processes()
        old.skip_flags = 0
        old_groups = old.groups

        def idle_ranked_too() -> dict[str, Any]:
            groups = old_groups()
            for g in groups.values():
                g.ticks = g.ticks or 0.5  # type: ignore[assignment]
            return groups

        old.groups = idle_ranked_too  # type: ignore[method-assign]
        collector = after.collector
        collector.sample()  # counters need a first reading to become rates
        for w in (after.procs, old):
            process_points(w)  # and process CPU a first reading of every process
        before_agg = Aggregator()
        for _ in range(args.samples):
            time.sleep(args.spacing)
            now_ms = int(time.time() * 1000)
            for measurement, tags, fields in collector.sample():
                for agg in (after.aggregator, full.aggregator, before_agg):
                    agg.add(measurement, tags, fields, now_ms)
            for measurement, tags, fields in previous_extras():
                before_agg.add(measurement, tags, fields, now_ms)
        now_ms = int(time.time() * 1000)
        every = {**after.counters(), **all_totals(after)}
        for name in every:
            KINDS[name] = CONST
        before_agg.add(SELF_MEASUREMENT, {}, every, now_ms)
        full.aggregator.add(SELF_MEASUREMENT, {}, after.counters(), now_ms)
        old_procs = process_points(old)
        new_procs = process_points(after.procs)
        after.procs = None  # already read: the cut below takes the aggregator only
        batches: list[dict[str, Any]] = []
        after.on_batch = batches.append
        after.cut()
        host_tags = EC2_TAGS if args.ec2 else batches[0].get("tags", {})
        rows = {
            "before": previous_flush(before_agg) + old_procs,
            "opt-in stats=" + ALL_STATS: full.aggregator.flush() + new_procs,
            "after": [p for b in batches for p in b["points"]] + new_procs,
        }
    table = {name: figures(host_tags, points) for name, points in rows.items()}
    columns = list(next(iter(table.values())))
    print(
        f"one post: {args.samples} samples {args.spacing:g} s apart; host {HOST}, "
        f"host tags {host_tags or 'none'}; process groups: {len(old_procs)} before, "
        f"{len(new_procs)} after"
    )
    print(f"{'':34}" + "".join(f"{c:>12}" for c in columns))
    for name, row in table.items():
        print(
            f"{name:34}"
            + "".join(
                f"{row[c]:12.0f}" if c != "TS MB/month" else f"{row[c]:12.1f}" for c in columns
            )
        )
    before = table["before"]
    for name in list(table)[1:]:
        ratio = "".join(f"{table[name][c] / before[c]:12.3f}" for c in columns)
        print(f"{'ratio ' + name.split('=')[0] + '/before':34}{ratio}")
    if args.by_measurement:
        by: dict[str, list[int]] = {}
        for p in rows["after"]:
            total, _, _ = record_bytes(host_tags, p)
            row = by.setdefault(p["measurement"], [0, 0, 0])
            row[0] += 1
            row[1] += len(p["fields"])
            row[2] += total
        print(f"\nafter, by measurement:\n{'':20}{'points':>8}{'fields':>8}{'TS B':>8}")
        for m, (n, f, b) in sorted(by.items(), key=lambda kv: -kv[1][2]):
            print(f"{m:20}{n:8d}{f:8d}{b:8d}")


def all_totals(a: Agent) -> dict[str, int]:
    """Every total since start, zero or not (the previous default sent them all)."""
    return {
        "dropped_batches": a.spool.dropped,
        "dead_letters": a.spool.dead_letters,
        "quarantined": a.spool.quarantined,
        "collect_errors": a.collector.errors,
        "loop_errors": a.loop_errors,
        "statsd_packets": a.statsd.packets,
        "statsd_bad_lines": a.statsd.bad_lines,
        "statsd_dropped": a.statsd.dropped,
        "sent_batches": a.sender.sent_batches,
        "sent_points": a.sender.sent_points,
        "send_errors": a.sender.send_errors,
        "rejected": a.sender.rejected,
    }


if __name__ == "__main__":
    main()
