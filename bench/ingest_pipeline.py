#!/usr/bin/env python3
"""The collector's ingest pipeline against plain json.loads on the same 1,000-point body.

The pipeline is what every POST /v1/ingest does before it talks to AWS:
parse the JSON, validate every point, convert to Timestream WriteRecords
requests (limits enforced). Both sides run interleaved in one process, so
the ratio holds even when the machine's speed drifts.

    .venv/bin/python bench/ingest_pipeline.py [--rounds 30] [--points 1000]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chalicelib.core.ingest import parse_ingest
from chalicelib.core.limits import Limits
from chalicelib.core.timestream import plan_writes

STATS = ("", "_min", "_max", "_last")


def agent_body(n_points: int, now_ms: int, seed: int = 7) -> bytes:
    """A body shaped like the agent's: per field avg/min/max/last, tags per device."""
    rnd = random.Random(seed)
    shapes = [
        ("cpu", "cpu", ["user", "system", "iowait", "steal", "idle"]),
        ("mem", None, ["used_percent", "available", "used"]),
        ("disk", "mount", ["used_percent", "free"]),
        ("diskio", "device", ["read_bytes", "write_bytes", "read_ops", "write_ops"]),
        (
            "net",
            "iface",
            ["bytes_recv", "bytes_sent", "packets_recv", "packets_sent", "err_in", "drop_in"],
        ),
        ("load", None, ["load1", "load5", "load15"]),
    ]
    points = []
    for i in range(n_points):
        measurement, tag, fields = shapes[i % len(shapes)]
        values = {}
        for f in fields:
            base = rnd.uniform(0, 100)
            for s in STATS:
                values[f + s] = round(base * rnd.uniform(0.8, 1.2), 3)
        points.append(
            {
                "measurement": measurement,
                "time": now_ms - (i // len(shapes)) * 10_000,
                "tags": {tag: f"{tag}{i % 40}"} if tag else {},
                "fields": values,
            }
        )
    return json.dumps(
        {
            "host": "web-1.example.com",
            "tags": {"role": "web", "env": "prod"},
            "agent": {"name": "fleetpulse-agent", "version": "0.1.0"},
            "heartbeat": {"interval": 60, "state": "alive"},
            "points": points,
        }
    ).encode()


def small_body(n_points: int, now_ms: int) -> bytes:
    """Contract 1's example point repeated: three fields per point, the worst case for us."""
    points = [
        {
            "measurement": "cpu",
            "time": now_ms - i,
            "tags": {"cpu": f"cpu{i % 8}"},
            "fields": {"user": 3.2 + i % 7, "system": 1.1, "idle": 95.7},
        }
        for i in range(n_points)
    ]
    return json.dumps(
        {"host": "web-1.example.com", "tags": {"role": "web"}, "points": points}
    ).encode()


def measure(body: bytes, rounds: int, now_ms: int) -> tuple[float, float, list[float]]:
    limits = Limits()

    def baseline() -> None:
        json.loads(body)

    def pipeline() -> None:
        parsed = parse_ingest(body, "application/json", None, limits, now_ms)
        plan = plan_writes(parsed.reports)
        assert not plan.rejected
        assert not parsed.rejected

    for fn in (baseline, pipeline):  # warm the caches both have
        fn()
    base_times, ours_times, ratios = [], [], []
    for _ in range(rounds):
        gc.collect()
        t0 = time.perf_counter()
        baseline()
        t1 = time.perf_counter()
        pipeline()
        t2 = time.perf_counter()
        base_times.append(t1 - t0)
        ours_times.append(t2 - t1)
        ratios.append((t2 - t1) / (t1 - t0))
    return statistics.median(base_times), statistics.median(ours_times), ratios


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--points", type=int, default=1000)
    args = parser.parse_args()
    now_ms = int(time.time() * 1000)
    print(
        f"{'body':<34} {'bytes':>8} {'json.loads':>11} {'pipeline':>10} {'ratio (median, min-max)':>26}"
    )
    for name, body in (
        ("agent-shaped (avg/min/max/last)", agent_body(args.points, now_ms)),
        ("Contract 1 example point x1000", small_body(args.points, now_ms)),
    ):
        base, ours, ratios = measure(body, args.rounds, now_ms)
        print(
            f"{name:<34} {len(body):>8} {base * 1e3:>9.2f}ms {ours * 1e3:>8.2f}ms "
            f"{statistics.median(ratios):>10.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
        )
    print("target: pipeline under 4x json.loads on the same body")
    return 0


if __name__ == "__main__":
    sys.exit(main())
