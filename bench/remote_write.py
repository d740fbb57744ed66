#!/usr/bin/env python3
"""Remote-write ingest against the JSON path on the same samples.

What POST /api/v1/write does before storage (snappy, protobuf, mapping,
validation) against what POST /v1/ingest does (gzip or not, JSON,
validation), on bodies that hold exactly the same points: node_exporter-like
series of one host, one sample each, as one scrape arrives. Both run
interleaved in one process, so the ratios hold when the machine's speed
drifts.

    .venv/bin/python bench/remote_write.py [--rounds 30] [--series 1000]
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chalicelib.core.ingest import parse_ingest
from chalicelib.core.limits import Limits
from chalicelib.core.remote_write import encode_write_request, parse_remote_write

FAMILIES = [
    ("node_cpu_seconds_total", lambda i: {"cpu": str(i // 8), "mode": f"m{i % 8}"}),
    ("node_network_receive_bytes_total", lambda i: {"device": f"eth{i}"}),
    ("node_filesystem_avail_bytes", lambda i: {"mountpoint": f"/srv/{i}", "fstype": "ext4"}),
    ("node_memory_stat", lambda i: {}),
]


def scrape(n: int, now_ms: int) -> list[tuple[dict[str, str], list[tuple[float, int]]]]:
    """n series of one target, one sample each (names made unique per label-less series)."""
    out = []
    for i in range(n):
        name, labels = FAMILIES[i % len(FAMILIES)]
        extra = labels(i)
        if not extra:
            name = f"{name}_{i}"
        out.append(
            (
                {"__name__": name, "instance": "web-1:9100", "job": "node", **extra},
                [(i * 1.5, now_ms)],
            )
        )
    return out


def as_json(series: list[tuple[dict[str, str], list[tuple[float, int]]]]) -> bytes:
    points = []
    for labels, samples in series:
        tags = {k: v for k, v in labels.items() if k not in ("__name__", "instance")}
        for value, t in samples:
            points.append(
                {
                    "measurement": labels["__name__"],
                    "time": t,
                    "tags": tags,
                    "fields": {"value": value},
                }
            )
    return json.dumps({"host": "web-1", "points": points}).encode()


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--series", type=int, default=1000)
    args = parser.parse_args()
    now_ms = int(time.time() * 1000)
    limits = Limits()
    series = scrape(args.series, now_ms)
    rw_body = encode_write_request(series)
    json_body = as_json(series)
    gz_body = gzip.compress(json_body)
    n = len(series)

    def rw_path() -> None:
        decoded = parse_remote_write(
            rw_body,
            "application/x-protobuf",
            "snappy",
            user_agent="Prometheus/2.45.3",
            limits=limits,
            now_ms=now_ms,
        )
        assert decoded.parsed.accepted_points == n
        assert not decoded.parsed.rejected

    def json_path() -> None:
        parsed = parse_ingest(json_body, "application/json", None, limits, now_ms)
        assert parsed.accepted_points == n
        assert not parsed.rejected

    def gzip_path() -> None:
        parsed = parse_ingest(gz_body, "application/json", "gzip", limits, now_ms)
        assert parsed.accepted_points == n

    paths = {
        "remote_write": (rw_path, rw_body),
        "JSON": (json_path, json_body),
        "JSON+gzip": (gzip_path, gz_body),
    }
    for fn, _ in paths.values():
        fn()  # warm the name caches and build the protobuf classes
    times: dict[str, list[float]] = {name: [] for name in paths}
    ratios: dict[str, list[float]] = {"JSON": [], "JSON+gzip": []}
    for _ in range(args.rounds):
        gc.collect()
        round_times = {name: timed(fn) for name, (fn, _) in paths.items()}
        for name, t in round_times.items():
            times[name].append(t)
        for name, values in ratios.items():
            values.append(round_times["remote_write"] / round_times[name])
    print(f"{n} series, one sample each, one host (node_exporter-like)")
    print(f"{'path':<13} {'bytes':>8} {'median':>9} {'samples/s':>11}")
    for name, (_, body) in paths.items():
        median = statistics.median(times[name])
        print(f"{name:<13} {len(body):>8} {median * 1e3:>7.2f}ms {n / median:>11,.0f}")
    for name, values in ratios.items():
        print(
            f"remote_write/{name} time: median {statistics.median(values):.2f}x "
            f"(min {min(values):.2f}, max {max(values):.2f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
