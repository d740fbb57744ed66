#!/usr/bin/env python3
"""One quiet evaluation of 1,000 / 10,000 / 100,000 agent-shaped hosts, reading through a
real boto3 client: wall time, peak memory, DynamoDB requests.

The hosts table is served by a local HTTP endpoint (another process) that answers
DynamoDB's JSON protocol with Scan pages of 1 MB, as DynamoDB pages them, made of
agent-shaped host items (about 20 series and 200 fields, two services, a full hour
of CPU/memory history: what `bench/cost.py` measures a real item at). The
evaluate use-case runs as the Lambda does (`Services.alerting.evaluate`), so
botocore parses every page, the adapter decodes every item, the core evaluates.
Every host posted in the last minute and breaches nothing: a quiet evaluation.
Each size runs in its own process, so its peak RSS is its own.

    .venv/bin/python bench/scale.py [--hosts 1000 10000 100000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import subprocess
import sys
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


def host_item() -> dict[str, Any]:
    """One agent-shaped host item (low-level JSON), with a full history ring."""
    import random

    from alerting_eval import agent_points, item_size, low_level, policy

    from chalicelib.adapters.dynamodb import to_item
    from chalicelib.core.hosts import HISTORY_SLOTS, HISTORY_STEP_MS, host_update
    from chalicelib.core.instants import ms_of_instant
    from chalicelib.core.models import Event, EventStatus, HostReport
    from tests.support.memory import InMemoryHostStore

    del item_size
    seen = NOW - timedelta(seconds=20)
    seen_ms = ms_of_instant(seen)
    store = InMemoryHostStore()
    store.record(
        host_update(
            HostReport(
                host="HOSTNAME",
                tags={"role": "web", "env": "prod", "az": "az1"},
                interval_s=60,
                points=agent_points(seen_ms, random.Random(7), breach=False),
                events=[
                    Event("backup", EventStatus.OK, seen_ms, 86_400_000, "done"),
                    Event("nginx", EventStatus.OK, seen_ms, None, ""),
                ],
            ),
            seen,
            watch=policy().rules.by_measurement,
        )
    )
    item = to_item(low_level(next(iter(store.items.values()))))
    for slot in range(HISTORY_SLOTS):
        t = seen_ms - slot * HISTORY_STEP_MS
        item[f"h#{(t // HISTORY_STEP_MS) % HISTORY_SLOTS}"] = {
            "M": {"t": {"N": str(t)}, "c": {"N": "12.5"}, "m": {"N": "41.3"}}
        }
    return item


class Pages:
    """Scan pages of `n` copies of the item, each page 1 MB at most, made on demand."""

    def __init__(self, n: int) -> None:
        from alerting_eval import item_size

        item = host_item()
        self.n = n
        self.item_bytes = item_size(item)
        self.per_page = max(1, PAGE_BYTES // self.item_bytes)
        text = json.dumps(item)
        self.template = text.replace("HOSTNAME", "host-PPPPPPPPP")

    def page(self, start: int) -> bytes:
        end = min(self.n, start + self.per_page)
        items = ",".join(self.template.replace("PPPPPPPPP", f"{i:09d}") for i in range(start, end))
        doc = f'{{"Count":{end - start},"ScannedCount":{end - start},"Items":[{items}]'
        if end < self.n:
            doc += f',"LastEvaluatedKey":{{"host":{{"S":"host-{end - 1:09d}"}}}}'
        return (doc + "}").encode()


def serve(n: int, port_out: Any) -> None:
    pages = Pages(n)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            op = self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
            if op == "Scan" and body.get("TableName", "").endswith("-hosts"):
                last = body.get("ExclusiveStartKey", {}).get("host", {}).get("S")
                reply = pages.page(int(last.rsplit("-", 1)[1]) + 1 if last else 0)
            elif op == "Scan":
                reply = b'{"Count":0,"ScannedCount":0,"Items":[]}'
            else:
                reply = b"{}"
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_out.put((server.server_address[1], pages.item_bytes, pages.per_page))
    server.serve_forever()


def one(n: int) -> dict[str, Any]:
    """One evaluation of `n` hosts in this process (called in a child)."""
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
    server = multiprocessing.Process(target=serve, args=(n, queue), daemon=True)
    server.start()
    port, item_bytes, per_page = queue.get(timeout=120)

    from chalicelib.adapters.aws import AwsClients
    from chalicelib.settings import Settings
    from chalicelib.wiring import Services

    services = Services(
        Settings.from_env({"FLEETPULSE_STAGE": "bench"}),
        AwsClients("us-east-1", f"http://127.0.0.1:{port}"),
        clock=lambda: NOW,
    )
    calls: Counter[str] = Counter()
    client = services.clients.get("dynamodb")
    client.meta.events.register(
        "provide-client-params.dynamodb.*",
        lambda model, params, **_: calls.update([f"{model.name}({params.get('TableName')})"]),
    )
    services.alerting_policy  # noqa: B018  (the rules file, read once per container)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    cpu = time.process_time()
    report = services.alerting.evaluate(NOW)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    server.terminate()
    return {
        "hosts": n,
        "item_bytes": item_bytes,
        "per_page": per_page,
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": rss_before / 1024,
        "calls": dict(calls),
        "report": str(report)[:160],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one)))
        return 0
    print(f"goal: under {GOAL_S:g} s and {GOAL_MB} MB at 100,000 hosts\n")
    results = []
    for n in args.hosts:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(n)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        results.append(r)
        scans = sum(v for k, v in r["calls"].items() if k.startswith("Scan("))
        print(
            f"{n:>7,} hosts ({r['item_bytes']:,} B items, {r['per_page']} a page): "
            f"{r['wall_s']:6.1f} s wall, {r['cpu_s']:6.1f} s CPU, peak RSS {r['peak_rss_mb']:6.0f} MB"
            f" ({r['rss_before_mb']:.0f} before); {scans} Scan requests; {r['calls']}"
        )
    if len(results) > 1:
        a, b = results[0], results[-1]
        print(
            f"\n{b['hosts'] / a['hosts']:.0f}x the hosts: {b['wall_s'] / a['wall_s']:.1f}x the time, "
            f"{b['peak_rss_mb'] / a['peak_rss_mb']:.1f}x the peak memory; a quiet evaluation's"
            " requests grow with the hosts (one Scan page per ~1 MB of items)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
