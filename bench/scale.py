#!/usr/bin/env python3
"""One quiet evaluation of 1,000 / 10,000 / 100,000 agent-shaped hosts, reading through a
real boto3 client: wall time, peak memory, DynamoDB requests.

The hosts table is served by a local HTTP endpoint (another process) that answers
DynamoDB's JSON protocol with Scan pages of 1 MB, as DynamoDB pages them, made of
agent-shaped host items (three tags, two services, an hour of CPU/memory history,
the series the rules watch: what `bench/cost.py` measures a real item at). The
evaluate use-case runs as the Lambda does (`Services.alerting.evaluate`), so
every page goes through botocore, the adapter decodes every item, the core
evaluates. Every host posted in the last minute and breaches nothing: a quiet
evaluation. Each run is its own process, so its peak RSS is its own.

    .venv/bin/python bench/scale.py [--hosts 1000 10000 100000]
        [--items agent old] [--segments 4] [--slow-upto 10000] [--page-latency-ms 0]
        [--provisioned]

The Scan is read as the Lambda reads it: its pages parsed in one `json.loads`
(`parse_scans_fast`), in FLEETPULSE_SCAN_SEGMENTS parallel segments, which the
endpoint answers with disjoint ranges of hosts. Up to `--slow-upto` hosts, each size
also runs as before (botocore's parse, one segment), for the ratio. `--items old`
measures the item as the collector kept it before it became one write unit a post.
`--provisioned` runs each size again against the read units auto scaling keeps for it
(the template's read target and minimum): the endpoint meters each page as DynamoDB
does (its items' sizes, half a unit per 4 KB) and refuses what the rate and the burst
bank (300 s of unused units; full, then empty) cannot pay for.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PAGE_BYTES = 1024 * 1024
GOAL_S, GOAL_MB = 15.0, 1024


def host_item(shape: str) -> dict[str, Any]:
    """One agent-shaped host item (low-level JSON) after an hour of posts, one a minute,
    through the collector's own path (`host_update` with the rules' watch, and a store):
    what the item holds is what the code keeps. `agent`: that item; `old`: the same host
    as the collector kept it before the item became one write unit a post (every series'
    latest values as `s#` attributes, and a 60-slot history ring), for comparison."""
    import random

    from alerting_eval import agent_points, low_level, policy

    from chalicelib.adapters.dynamodb import to_item
    from chalicelib.core.hosts import host_update
    from chalicelib.core.instants import ms_of_instant
    from chalicelib.core.models import Event, EventStatus, HostReport
    from tests.support.memory import InMemoryHostStore

    store = InMemoryHostStore()
    rnd = random.Random(7)
    watch = policy().rules.by_measurement
    report = None
    for minute in range(59, -1, -1):
        seen = NOW - timedelta(minutes=minute, seconds=20)
        seen_ms = ms_of_instant(seen)
        report = HostReport(
            host="HOSTNAME",
            tags={"role": "web", "env": "prod", "az": "az1"},
            interval_s=60,
            points=agent_points(seen_ms, rnd, breach=False),
            events=[
                Event("backup", EventStatus.OK, seen_ms, 86_400_000, "done"),
                Event("nginx", EventStatus.OK, seen_ms, None, ""),
            ],
        )
        store.record(host_update(report, seen, watch=watch))
    item = to_item(low_level(next(iter(store.items.values()))))
    if shape == "old" and report is not None:
        from chalicelib.adapters.dynamodb.common import ddb_number
        from chalicelib.core.hosts import series_key

        for p in report.points:
            fields = {
                k: {"N": str(ddb_number(v))}
                for k, v in p.fields.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
            tags = {k: {"S": v} for k, v in p.tags.items()}
            item["s#" + series_key(p.measurement, p.tags)] = {
                "M": {
                    "m": {"S": p.measurement},
                    "tags": {"M": tags},
                    "t": {"N": str(p.time_ms)},
                    "f": {"M": fields},
                }
            }
        t0 = ms_of_instant(NOW)
        for minute in range(60):
            t = t0 - minute * 60_000
            item[f"h#{(t // 60_000) % 60}"] = {
                "M": {"t": {"N": str(t)}, "c": {"N": "12.5"}, "m": {"N": "41.3"}}
            }
    return item


class Pages:
    """Scan pages of `n` copies of the item, each page 1 MB at most, made on demand.
    Segment s of T is the s-th of T disjoint ranges of hosts."""

    def __init__(self, n: int, shape: str) -> None:
        from alerting_eval import item_size

        item = host_item(shape)
        self.n = n
        self.item_bytes = item_size(item)
        self.per_page = max(1, PAGE_BYTES // self.item_bytes)
        text = json.dumps(item, separators=(",", ":"))  # as DynamoDB sends it: no blanks
        self.template = text.replace("HOSTNAME", "host-PPPPPPPPP")

    def page(self, scan: dict[str, Any]) -> tuple[bytes, int]:
        """The page's body and the number of items in it."""
        segment, total = scan.get("Segment", 0), scan.get("TotalSegments", 1)
        start, stop = segment * self.n // total, (segment + 1) * self.n // total
        last = scan.get("ExclusiveStartKey", {}).get("host", {}).get("S")
        if last:
            start = int(last.rsplit("-", 1)[1]) + 1
        end = min(stop, start + self.per_page)
        items = ",".join(self.template.replace("PPPPPPPPP", f"{i:09d}") for i in range(start, end))
        doc = f'{{"Count":{end - start},"ScannedCount":{end - start},"Items":[{items}]'
        if end < stop:
            doc += f',"LastEvaluatedKey":{{"host":{{"S":"host-{end - 1:09d}"}}}}'
        return (doc + "}").encode(), end - start


class ReadCapacity:
    """A provisioned table's read units as DynamoDB meters a Scan: a page costs half a
    unit per 4 KB of its items' sizes, summed (eventually consistent); the table earns `units` a second
    and keeps up to 300 seconds of what it did not use (burst capacity), starting with
    `burst_s` seconds of it. A page it cannot pay for is refused (400,
    ProvisionedThroughputExceededException). `units` 0: no limit (on demand)."""

    BANK_S = 300.0

    def __init__(self, units: float, burst_s: float) -> None:
        self.units = units
        self.tokens = units * min(burst_s, self.BANK_S)
        self.at = time.monotonic()
        self.lock = threading.Lock()

    def take(self, items_bytes: int) -> bool:
        """Whether a page whose items are `items_bytes` (DynamoDB's item sizes) is read."""
        if not self.units:
            return True
        cost = -(-items_bytes // 4096) * 0.5
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.units * self.BANK_S, self.tokens + (now - self.at) * self.units)
            self.at = now
            if self.tokens < cost:
                return False
            self.tokens -= cost
            return True


THROTTLED = (
    b'{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",'
    b'"message":"The level of configured provisioned throughput for the table was exceeded."}'
)


def serve(
    n: int,
    shape: str,
    latency_s: float,
    port_out: Any,
    *,
    read_units: float = 0.0,
    burst_s: float = 300.0,
    refused: Any = None,
) -> None:
    pages = Pages(n, shape)
    capacity = ReadCapacity(read_units, burst_s)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            op = self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
            status = 200
            if op == "Scan" and body.get("TableName", "").endswith("-hosts"):
                time.sleep(latency_s)  # the service's own time for a page, if asked
                reply, count = pages.page(body)
                if not capacity.take(count * pages.item_bytes):
                    status, reply = 400, THROTTLED
                    with refused.get_lock():
                        refused.value += 1
            elif op == "Scan":
                reply = b'{"Count":0,"ScannedCount":0,"Items":[]}'
            else:
                reply = b"{}"
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_out.put((server.server_address[1], pages.item_bytes, pages.per_page))
    server.serve_forever()


def one(
    n: int,
    shape: str,
    segments: int,
    slow: bool,
    latency_s: float,
    *,
    read_units: float = 0.0,
    burst_s: float = 300.0,
) -> dict[str, Any]:
    """One evaluation of `n` hosts in this process (called in a child); `slow`: Scan
    pages parsed by botocore alone, as before `parse_scans_fast`; `read_units`,
    `burst_s`: the table's provisioned reads (`ReadCapacity`)."""
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "ERROR",
        }
    )
    queue: Any = multiprocessing.Queue()
    refused: Any = multiprocessing.Value("i", 0)
    server = multiprocessing.Process(
        target=serve,
        args=(n, shape, latency_s, queue),
        kwargs={"read_units": read_units, "burst_s": burst_s, "refused": refused},
        daemon=True,
    )
    server.start()
    port, item_bytes, per_page = queue.get(timeout=120)

    from chalicelib.adapters.aws import AwsClients
    from chalicelib.adapters.dynamodb.common import BEFORE_PARSE_SCAN, FAST_SCAN_ID
    from chalicelib.settings import Settings
    from chalicelib.wiring import Services

    services = Services(
        Settings.from_env({"FLEETPULSE_STAGE": "bench", "FLEETPULSE_SCAN_SEGMENTS": str(segments)}),
        AwsClients("us-east-1", f"http://127.0.0.1:{port}"),
        clock=lambda: NOW,
    )
    calls: Counter[str] = Counter()
    client = services.clients.get("dynamodb")
    if slow:  # the fast path's place among the client's handlers, held by one doing nothing
        client.meta.events.register(BEFORE_PARSE_SCAN, lambda **_: None, unique_id=FAST_SCAN_ID)
    client.meta.events.register(
        "provide-client-params.dynamodb.*",
        lambda model, params, **_: calls.update([f"{model.name}({params.get('TableName')})"]),
    )
    services.alerting_policy  # noqa: B018  (the rules file, read once per container)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    cpu = time.process_time()
    from chalicelib.core.ports import BackendUnavailable

    try:
        report: Any = services.alerting.evaluate(NOW)
    except BackendUnavailable as exc:  # a Scan refused past the adapter's patience
        report = f"failed: {exc}"
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    server.terminate()
    return {
        "hosts": n,
        "shape": shape,
        "slow": slow,
        "item_bytes": item_bytes,
        "per_page": per_page,
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": rss_before / 1024,
        "calls": dict(calls),
        "report": str(report)[:160],
        "refused": refused.value,
        "read_units": read_units,
        "burst_s": burst_s,
    }


def run(
    n: int,
    shape: str,
    segments: int,
    slow: bool,
    latency_ms: int,
    *,
    read_units: float = 0.0,
    burst_s: float = 300.0,
) -> dict[str, Any]:
    """One evaluation in a fresh process (its peak RSS its own)."""
    command = [sys.executable, __file__, "--one", str(n), "--items", shape]
    command += ["--segments", str(segments), "--page-latency-ms", str(latency_ms)]
    command += ["--read-units", str(read_units), "--burst-s", str(burst_s)]
    command += ["--slow-path"] if slow else []
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def provisioned_read_units(n: int, item_bytes: int) -> float:
    """What target tracking keeps for `n` hosts read once a minute (eventually
    consistent), at the template's default target and never under its minimum."""
    from fleetpulse import cfn

    params = cfn.load()["Parameters"]
    target = float(params["HostsReadTargetUtilization"]["Default"]) / 100
    floor = float(params["HostsReadCapacityMin"]["Default"])
    return max(floor, n * item_bytes / 4096 * 0.5 / 60 / target)


def line(r: dict[str, Any]) -> str:
    scans = sum(v for k, v in r["calls"].items() if k.startswith("Scan("))
    path = "botocore parse" if r["slow"] else "fast parse    "
    text = (
        f"{r['shape']:>4} {r['hosts']:>7,} hosts, {path}: {r['wall_s']:6.1f} s wall,"
        f" {r['cpu_s']:6.1f} s CPU, peak RSS {r['peak_rss_mb']:5.0f} MB"
        f" ({r['rss_before_mb']:.0f} before); {scans} Scan requests"
    )
    if r.get("read_units"):
        text += (
            f"; {r['read_units']:.0f} read units, {r['burst_s']:.0f} s of burst:"
            f" {r['refused']} pages refused"
        )
    if str(r.get("report", "")).startswith("failed"):
        text += f"; {r['report']}"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument(
        "--items",
        nargs="+",
        choices=["agent", "old"],
        default=["agent"],
        help="agent: the host item the collector writes; old: the item before it became one write unit a post",
    )
    parser.add_argument("--segments", type=int, default=4, help="FLEETPULSE_SCAN_SEGMENTS")
    parser.add_argument(
        "--slow-upto",
        type=int,
        default=10_000,
        help="also run botocore's own parse (the path before) up to this many hosts, for the"
        " ratio; 0: never",
    )
    parser.add_argument(
        "--page-latency-ms",
        type=int,
        default=0,
        help="the endpoint waits this long before each hosts page (DynamoDB's own time)",
    )
    parser.add_argument(
        "--provisioned",
        action="store_true",
        help="also run each size against the read units auto scaling keeps for it (the"
        " template's HostsReadTargetUtilization and HostsReadCapacityMin), with a full burst"
        " bank and with none",
    )
    parser.add_argument("--read-units", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--burst-s", type=float, default=300.0, help=argparse.SUPPRESS)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--slow-path", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        latency_s = args.page_latency_ms / 1000
        result = one(
            args.one,
            args.items[0],
            args.segments,
            args.slow_path,
            latency_s,
            read_units=args.read_units,
            burst_s=args.burst_s,
        )
        print(json.dumps(result))
        return 0
    print(f"goal: under {GOAL_S:g} s and {GOAL_MB} MB at 100,000 hosts")
    print(
        f"Scan in {args.segments} parallel segments, {args.page_latency_ms} ms a page at the"
        f" endpoint; {os.cpu_count()} cores on this machine\n"
    )
    for shape in args.items:
        fast: dict[int, dict[str, Any]] = {}
        for n in args.hosts:
            r = fast[n] = run(n, shape, args.segments, False, args.page_latency_ms)
            if n == args.hosts[0]:
                print(f"{shape} item: {r['item_bytes']:,} B, {r['per_page']} a 1 MB page")
            print(line(r))
            if args.provisioned:
                units = provisioned_read_units(n, r["item_bytes"])
                for burst_s in (300.0, 0.0):
                    kept = run(n, shape, args.segments, False, 0, read_units=units, burst_s=burst_s)
                    print(line(kept))
            if n <= args.slow_upto:
                before = run(n, shape, 1, True, args.page_latency_ms)
                print(line(before))
                print(
                    f"{'':>5}{n:>7,} hosts: {before['wall_s'] / r['wall_s']:.1f}x faster,"
                    f" {before['cpu_s'] / r['cpu_s']:.1f}x less CPU"
                    f" (botocore parse in one segment -> fast parse in {args.segments})"
                )
        if len(fast) > 1:
            a, b = fast[min(fast)], fast[max(fast)]
            print(
                f"{'':>5}{b['hosts'] / a['hosts']:.0f}x the hosts: {b['wall_s'] / a['wall_s']:.1f}x"
                f" the time, {b['peak_rss_mb'] / a['peak_rss_mb']:.1f}x the peak memory\n"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
