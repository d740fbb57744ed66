#!/usr/bin/env python3
"""Bytes and fields per agent post: the istatd set (count, avg, min, max, stddev) against
the previous avg/min/max/last, from the same real samples of this machine.

The agent's own collector reads /proc --samples times (a production interval
is 6 samples: one every 10 s, sent every 60 s); both aggregations fold the
same samples. Prints bytes per post as JSON and gzipped (what the agent
sends), fields per post, and after/before ratios. Fields are what the stores
bill: Timestream counts 8 bytes per double plus each measure name's bytes,
InfluxDB stores one column per field.

    python3 bench/agent_payload.py --samples 6
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agent"))

from fleetpulse_agent.aggregate import Aggregator, round3
from fleetpulse_agent.collect import AVG, CONST, GAUGE, KINDS, SUM, Collector


def previous_flush(agg: Aggregator) -> list[dict]:
    """The wire format before the istatd set: avg, _min, _max, _last per gauge field."""
    points = []
    for (measurement, _), (tags, time_ms, stats) in agg.series.items():
        fields = {}
        for name, (n, total, lo, hi, last, _squares) in stats.items():
            kind = KINDS.get(name, GAUGE)
            if kind == CONST:
                fields[name] = round3(last)
            elif kind == SUM:
                fields[name] = round3(total)
            else:
                fields[name] = round3(total / n)
                if kind != AVG:
                    fields[name + "_min"] = round3(lo)
                    fields[name + "_max"] = round3(hi)
                    fields[name + "_last"] = round3(last)
        point = {"measurement": measurement, "time": time_ms, "fields": fields}
        if tags:
            point["tags"] = tags
        points.append(point)
    return points


def post(points: list[dict]) -> bytes:
    body = {"host": "web-1.example.com", "tags": {"role": "web"}, "points": points}
    return json.dumps(body, separators=(",", ":")).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=6, help="samples per interval (6)")
    parser.add_argument("--spacing", type=float, default=0.5, help="seconds between samples")
    args = parser.parse_args()
    collector = Collector()
    collector.sample()  # counters need a first reading to become rates
    agg = Aggregator()
    for _ in range(args.samples):
        time.sleep(args.spacing)
        for measurement, tags, fields in collector.sample():
            agg.add(measurement, tags, fields, int(time.time() * 1000))
    before = previous_flush(agg)
    after = agg.flush()
    rows = []
    for name, points in (("before (avg/min/max/last)", before), ("after (istatd set)", after)):
        raw = post(points)
        fields = sum(len(p["fields"]) for p in points)
        rows.append((name, len(raw), len(gzip.compress(raw)), fields, len(points)))
    print(f"{args.samples} samples per interval, {rows[0][4]} points per post")
    print(f"{'':28} {'json B':>8} {'gzip B':>8} {'fields':>7}")
    for name, raw, gz, fields, _ in rows:
        print(f"{name:28} {raw:8d} {gz:8d} {fields:7d}")
    (_, r0, g0, f0, _), (_, r1, g1, f1, _) = rows
    print(f"{'ratio after/before':28} {r1 / r0:8.3f} {g1 / g0:8.3f} {f1 / f0:7.3f}")


if __name__ == "__main__":
    main()
