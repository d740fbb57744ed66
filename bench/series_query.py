#!/usr/bin/env python3
"""Query latency of history against a real influxd: 24 h at 1 minute of one host, as
`GET /v1/series` asks for it, and a rule's one grouped query over the whole fleet.

Starts Debian's influxd on a free loopback port in a temporary folder, writes
--hosts hosts x 24 h of one-minute CPU points through the collector's InfluxDB
store, then times InfluxDBMetricReader.read (the HTTP round trip, InfluxQL
and decoding) --runs times each:

- one host, 24 h, step 1m (1,440 points), the host page's 24 h chart at full detail;
- one host, 24 h, step 5m (288 points), what the page asks for;
- every host, the last 30 min averaged per host (a window or baseline rule's query).

    python3 bench/series_query.py --hosts 100 --runs 30
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chalicelib.adapters.history import InfluxDBMetricReader
from chalicelib.adapters.influxdb import InfluxDBMetricStore
from chalicelib.core.influx import InfluxTarget
from chalicelib.core.instants import ms_of_instant
from chalicelib.core.models import HostReport, InfluxApi, Point
from chalicelib.core.series import SeriesQuery, Stat
from fleetpulse.influxd import LOCAL_DATABASE, LocalInfluxd


def write(store: InfluxDBMetricStore, hosts: int, now: datetime) -> int:
    written = 0
    for h in range(hosts):
        points = []
        for m in range(24 * 60):
            at = now - timedelta(minutes=24 * 60 - m)
            fields = {"user": float((h + m) % 100), "system": 1.0, "idle": 50.0}
            points.append(Point("cpu", ms_of_instant(at), {"cpu": "total"}, fields, m, "", True))
        store.write([HostReport(host=f"web-{h}", tags={}, points=points)])
        written += len(points)
    return written


def timed(reader: InfluxDBMetricReader, query: SeriesQuery, runs: int) -> tuple[list[float], int]:
    times, count = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        series = reader.read(query)
        times.append((time.perf_counter() - start) * 1000)
        count = sum(len(s.points) for s in series)
    return times, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with tempfile.TemporaryDirectory(prefix="fleetpulse-bench-") as tmp:
        server = LocalInfluxd(Path(tmp))
        server.start()
        try:
            target = InfluxTarget(url=server.url, api=InfluxApi.V1, database=LOCAL_DATABASE)
            store = InfluxDBMetricStore(target)
            store.ensure_database()
            started = time.perf_counter()
            n = write(store, args.hosts, now)
            print(
                f"wrote {n} points ({args.hosts} hosts x 24 h at 1 min) "
                f"in {time.perf_counter() - started:.1f} s"
            )
            reader = InfluxDBMetricReader(target)
            day = now - timedelta(hours=24)
            cases = [
                (
                    "1 host, 24 h, step 1m",
                    SeriesQuery("cpu", "user", day, now, timedelta(minutes=1), Stat.AVG, "web-0"),
                ),
                (
                    "1 host, 24 h, step 5m",
                    SeriesQuery("cpu", "user", day, now, timedelta(minutes=5), Stat.AVG, "web-0"),
                ),
                (
                    f"{args.hosts} hosts, 30 min avg (rule)",
                    SeriesQuery("cpu", "user", now - timedelta(minutes=30), now, None, Stat.AVG),
                ),
            ]
            print(f"{'query':34} {'points':>7} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
            for name, query in cases:
                reader.read(query)  # warm the server's caches once
                times, count = timed(reader, query, args.runs)
                p95 = statistics.quantiles(times, n=20)[-1] if len(times) > 1 else times[0]
                print(
                    f"{name:34} {count:7d} {statistics.median(times):10.1f} "
                    f"{p95:8.1f} {max(times):8.1f}"
                )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
