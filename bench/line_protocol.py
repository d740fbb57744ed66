#!/usr/bin/env python3
"""Line-protocol ingest against the JSON path on the same points, and the InfluxDB writer.

Ingest: what POST /api/v2/write does before storage (read line protocol,
validate every point) against what POST /v1/ingest does (parse JSON,
validate), on bodies that hold exactly the same points. Both run
interleaved in one process, so the ratio holds when the machine's speed
drifts. Writer: host reports to line-protocol batches, as the InfluxDB
store does before sending.

    .venv/bin/python bench/line_protocol.py [--rounds 30] [--points 1000]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest_pipeline import agent_body, small_body

from chalicelib.core.influx import plan_influx_writes
from chalicelib.core.ingest import parse_ingest
from chalicelib.core.limits import Limits
from chalicelib.core.line_protocol import parse_line_protocol
from chalicelib.core.models import HostReport, InfluxApi


def as_line_protocol(json_body: bytes, now_ms: int) -> tuple[bytes, list[HostReport]]:
    """The same points as line protocol (host and host tags on every line, as Telegraf sends)."""
    reports = parse_ingest(json_body, "application/json", None, Limits(), now_ms).reports
    plan = plan_influx_writes(reports)
    assert not plan.rejected
    return b"".join(b.body() for b in plan.batches), reports


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--points", type=int, default=1000)
    args = parser.parse_args()
    now_ms = int(time.time() * 1000)
    limits = Limits()
    print(
        f"{'body':<32} {'path':<5} {'bytes':>8} {'median':>9} {'lines/s':>10} {'MB/s':>7}"
        f" {'LP/JSON time (median, min-max)':>32}"
    )
    for name, json_body in (
        ("agent-shaped (avg/min/max/last)", agent_body(args.points, now_ms)),
        ("Contract 1 example point x1000", small_body(args.points, now_ms)),
    ):
        lp_body, reports = as_line_protocol(json_body, now_ms)
        n = sum(len(r.points) for r in reports)

        def json_path(body: bytes = json_body, n: int = n) -> None:
            parsed = parse_ingest(body, "application/json", None, limits, now_ms)
            assert parsed.accepted_points == n
            assert not parsed.rejected

        def lp_path(body: bytes = lp_body, n: int = n) -> None:
            parsed = parse_line_protocol(
                body, None, precision="ms", api=InfluxApi.V2, limits=limits, now_ms=now_ms
            )
            assert parsed.accepted_points == n
            assert not parsed.rejected

        for fn in (json_path, lp_path):
            fn()  # warm the name caches both use
        json_times, lp_times, ratios = [], [], []
        for _ in range(args.rounds):
            gc.collect()
            tj = timed(json_path)
            tl = timed(lp_path)
            json_times.append(tj)
            lp_times.append(tl)
            ratios.append(tl / tj)
        for path, body, times in (("JSON", json_body, json_times), ("LP", lp_body, lp_times)):
            median = statistics.median(times)
            extra = ""
            if path == "LP":
                extra = f"{statistics.median(ratios):>14.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
            print(
                f"{name:<32} {path:<5} {len(body):>8} {median * 1e3:>7.2f}ms "
                f"{n / median:>10,.0f} {len(body) / median / 1e6:>7.1f} {extra:>32}"
            )
        write_times = []
        for _ in range(args.rounds):
            gc.collect()
            write_times.append(timed(lambda r=reports: plan_influx_writes(r)))  # type: ignore[misc]
        median = statistics.median(write_times)
        print(
            f"{name:<32} {'write':<5} {len(lp_body):>8} {median * 1e3:>7.2f}ms "
            f"{n / median:>10,.0f} {len(lp_body) / median / 1e6:>7.1f}"
        )
    print("LP: parse+validate line protocol; JSON: parse+validate JSON (same points);")
    print("write: host reports to line-protocol batches for the InfluxDB store")
    return 0


if __name__ == "__main__":
    sys.exit(main())
