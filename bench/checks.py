#!/usr/bin/env python3
"""Remote checks: how many one runner invocation can run, and what a check costs a month.

Measured in one run, against servers on 127.0.0.1:

- throughput: one batch of N HTTP and TCP checks through `CheckService.run` (the runner's
  thread pool), checks per second and per one-minute window; and the same batch with one
  check that hangs until its timeout, to show the batch waits on its slowest run only;
- requests: one schedule and one runner batch of 50 checks through the real adapters over
  moto, counting every DynamoDB, Timestream and Lambda request a botocore hook sees;
- cost: those counts and the measured runner time at us-east-1 list prices (table below),
  per check-month (a check every 60 s from one location: 43,200 runs in 30 days).

    .venv/bin/python bench/checks.py [--checks 500] [--batch 50]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
    }
)

# us-east-1 list prices. Sources: aws.amazon.com/lambda/pricing (x86, requests),
# aws.amazon.com/dynamodb/pricing/on-demand (after the November 2024 on-demand cut),
# aws.amazon.com/timestream/pricing (LiveAnalytics writes, per 1 KB). As published 2025.
PRICES = {
    "lambda_gb_s": 0.0000166667,  # USD per GB-second
    "lambda_request": 0.20 / 1e6,  # USD per invocation
    "dynamodb_write": 0.625 / 1e6,  # USD per write request unit (1 KB)
    "dynamodb_read": 0.125 / 1e6,  # USD per read request unit (4 KB strongly consistent)
    "timestream_write": 0.50 / 1e6,  # USD per 1 KB write
}
RUNS_PER_MONTH = 30 * 24 * 60  # every 60 s, one location
RUNNER_MEMORY_GB = 0.5  # the dev stage's lambda_memory_size


class Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        if self.path == "/hang":
            time.sleep(30)
            return
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def serve() -> tuple[ThreadingHTTPServer, socket.socket]:
    web = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    web.daemon_threads = True
    web.request_queue_size = 1024
    threading.Thread(target=web.serve_forever, daemon=True).start()
    tcp = socket.create_server(("127.0.0.1", 0), backlog=1024)

    def accept() -> None:
        while True:
            try:
                conn, _ = tcp.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    return web, tcp


def specs(n: int, web_port: int, tcp_port: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        if i % 2:
            out.append({"name": f"c{i}", "type": "tcp", "host": "127.0.0.1", "port": tcp_port})
        else:
            url = f"http://127.0.0.1:{web_port}/health"
            out.append({"name": f"c{i}", "type": "http", "url": url, "body_contains": "ok"})
    return out


def throughput(n: int, web_port: int, tcp_port: int) -> None:
    from chalicelib.adapters.probes import probe
    from chalicelib.core.checks import Run, parse_check
    from chalicelib.services.checks import CheckService

    service = CheckService.__new__(CheckService)
    service.prober = probe
    service.clock = lambda: datetime.now(UTC)
    runs = [Run(parse_check(s, "us-east-1"), "us-east-1") for s in specs(n, web_port, tcp_port)]
    now = datetime.now(UTC)
    service.run(runs[:20], now)  # warm up
    started = time.perf_counter()
    results = service.run(runs, now)
    elapsed = time.perf_counter() - started
    up = sum(r.up for r in results)
    print(f"one batch of {n} checks (http and tcp, 64 threads): {elapsed:.2f} s, {up} up")
    print(f"  {n / elapsed:,.0f} checks/s: {n / elapsed * 60:,.0f} per one-minute window")
    hung = parse_check(
        {
            "name": "hung",
            "type": "http",
            "url": f"http://127.0.0.1:{web_port}/hang",
            "timeout": "2s",
        },
        "us-east-1",
    )
    batch = [Run(hung, "us-east-1"), *runs[:49]]
    started = time.perf_counter()
    results = service.run(batch, now)
    with_hung = time.perf_counter() - started
    others = max(r.latency_ms for r in results[1:])
    print(
        f"a batch of 50 with one check hanging to its 2 s timeout: {with_hung:.2f} s in all; "
        f"the other 49 took at most {others:.0f} ms each ({results[0].reason!r})"
    )


def requests_per_batch(batch: int, web_port: int, tcp_port: int) -> tuple[Counter[str], float]:
    from moto import mock_aws

    from chalicelib.adapters.aws import AwsClients
    from chalicelib.settings import Settings
    from chalicelib.wiring import Services
    from fleetpulse.resources import create_all

    with mock_aws(), tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checks.yaml"
        path.write_text(json.dumps({"checks": specs(batch, web_port, tcp_port)}))
        settings = Settings.from_env(
            {
                "FLEETPULSE_CHECKS": str(path),
                "FLEETPULSE_CHECKS_BATCH": str(batch),
                "FLEETPULSE_ALERTS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:fleetpulse-dev-alerts",
            }
        )
        services = Services(settings, AwsClients(region="us-east-1"))
        create_all(settings, services.clients)
        seen: Counter[str] = Counter()
        for name in ("dynamodb", "timestream-write", "lambda"):
            client = services.clients.get(name)
            client.meta.events.register(
                "before-call.*.*",
                lambda model, name=name, **_: seen.update([f"{name}:{model.name}"]),
            )
        payloads: list[dict[str, Any]] = []

        class Capture:
            def invoke(self, payload: dict[str, Any]) -> None:
                payloads.append(payload)

        checks = services.checks
        checks._invoker = Capture  # count the fan-out, run the batch below
        now = datetime.now(UTC)
        for minute, label in enumerate(("first minute", "steady state")):
            seen.clear()
            payloads.clear()
            checks.schedule(now + timedelta(minutes=minute))
            scheduled = Counter(seen)
            started = time.perf_counter()
            for payload in payloads:
                checks.run_batch(payload)
            runner_s = time.perf_counter() - started
            ran = seen - scheduled
            print(f"{label}: schedule ({batch} checks, {len(payloads)} batch): {dict(scheduled)}")
            print(f"  one runner batch of {batch}: {dict(ran)}; {runner_s:.2f} s over moto")
        # Cost from the steady state: every run up, as most are.
        return ran + scheduled, runner_s


def cost(calls: Counter[str], batch: int, runner_s: float) -> None:
    per_run = {k: v / batch for k, v in calls.items()}
    reads = per_run.get("dynamodb:GetItem", 0) + per_run.get("dynamodb:Scan", 0)
    writes = per_run.get("dynamodb:PutItem", 0)
    ts = per_run.get("timestream-write:WriteRecords", 0)
    # A Timestream write is billed per record-KB, not per request: one record per run.
    items = {
        "Lambda GB-s": runner_s / batch * RUNNER_MEMORY_GB * PRICES["lambda_gb_s"],
        "Lambda requests": (1 / batch + 1 / batch) * PRICES["lambda_request"],
        "DynamoDB reads": reads * PRICES["dynamodb_read"],
        "DynamoDB writes": writes * PRICES["dynamodb_write"],
        "Timestream writes": (1 if ts else 0) * PRICES["timestream_write"],
    }
    print("\nprices (USD, us-east-1):", json.dumps(PRICES))
    print(f"per check-month ({RUNS_PER_MONTH:,} runs, one location, batches of {batch}):")
    total = 0.0
    for name, per in items.items():
        month = per * RUNS_PER_MONTH
        total += month
        print(f"  {name:<18} ${month:.5f}")
    print(f"  {'total':<18} ${total:.4f}  (10,000 checks: ${total * 10_000:,.0f}/month)")
    print(
        "  runner time is what this machine took over moto; a real batch of healthy "
        "targets waits on network round trips instead"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=500)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args()
    web, tcp = serve()
    web_port, tcp_port = web.server_address[1], tcp.getsockname()[1]
    throughput(args.checks, int(web_port), tcp_port)
    calls, runner_s = requests_per_batch(args.batch, int(web_port), tcp_port)
    cost(calls, args.batch, runner_s)
    print(
        f"\n10,000 checks a minute in batches of {args.batch}: "
        f"{10_000 // args.batch} runner invocations a minute"
    )


if __name__ == "__main__":
    main()
