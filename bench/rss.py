#!/usr/bin/env python3
"""Peak memory of the API function's handler, route by route, as one warm container
serves them: is the configured `lambda_memory_size` enough?

An embedded moto server runs in this process; a child process (its own interpreter, as
a Lambda container is) imports `app` and calls `app.app(event, context)` with function
URL events: a 5,000-point ingest post, a Prometheus remote_write of 5,000 samples, an
InfluxDB line-protocol write of 5,000 lines, the status page and a host's page. After
each it prints its peak resident set (`ru_maxrss`). Lambda's runtime itself takes
about 30-40 MB beside the handler's interpreter.

    .venv/bin/python bench/rss.py [--points 5000]
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "ERROR",
}
os.environ.update(ENV)


def event(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "abc.lambda-url.us-east-1.on.aws", **headers},
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abc",
            "domainName": "abc.lambda-url.us-east-1.on.aws",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.9",
                "userAgent": "bench",
            },
            "requestId": "bench",
            "routeKey": "$default",
            "stage": "$default",
            "timeEpoch": 1763726400000,
        },
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


class Context:
    function_name = "fleetpulse-dev-api"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:fleetpulse-dev-api"
    aws_request_id = "bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 29_000


def child(token: str, admin_token: str, points: int) -> None:
    """The container: every route once, its peak RSS after each."""
    import time

    def peak() -> float:
        # VmHWM: this process's own peak (ru_maxrss would keep the parent's across exec).
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"interpreter: peak {peak():.0f} MB", flush=True)
    import app

    print(f"import app: peak {peak():.0f} MB", flush=True)
    auth = {"authorization": f"Bearer {token}"}
    admin = {"authorization": f"Bearer {admin_token}"}
    now = int(time.time() * 1000) // 60_000 * 60_000
    body = {
        "host": "big.example.com",
        "points": [
            {
                "measurement": "statsd",
                "time": now,
                "tags": {"key": f"k{i}"},
                "fields": {"count": float(i)},
            }
            for i in range(points)
        ],
    }
    from chalicelib.core.remote_write import encode_write_request

    samples = [
        ({"__name__": f"m_{i}", "instance": "big.example.com"}, [(1.0, now)]) for i in range(points)
    ]
    steps = [
        (
            f"ingest ({points:,} points, gzip JSON)",
            event(
                "POST",
                "/v1/ingest",
                {**auth, "content-type": "application/json", "content-encoding": "gzip"},
                gzip.compress(json.dumps(body).encode()),
            ),
        ),
        (
            f"remote_write ({points:,} samples)",
            event(
                "POST",
                "/api/v1/write",
                {
                    **auth,
                    "content-type": "application/x-protobuf",
                    "content-encoding": "snappy",
                    "x-prometheus-remote-write-version": "0.1.0",
                },
                encode_write_request(samples),
            ),
        ),
        ("status page", event("GET", "/status", admin)),
        ("host page", event("GET", "/status/hosts/big.example.com", admin)),
    ]
    for name, ev in steps:
        response = app.app(ev, Context())
        print(f"{name}: {response['statusCode']}, peak {peak():.0f} MB", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=5000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.points)
        return 0

    import logging

    from moto.server import ThreadedMotoServer

    from chalicelib.adapters.aws import AwsClients
    from chalicelib.settings import Settings
    from chalicelib.wiring import Services
    from fleetpulse.resources import create_all
    from tests.support.http import add_token

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        env = {"FLEETPULSE_AWS_ENDPOINT_URL": endpoint, "FLEETPULSE_TOKEN_CACHE_SECONDS": "60"}
        settings = Settings.from_env(env)
        services = Services(settings, AwsClients("us-east-1", endpoint))
        create_all(settings, services.clients)
        token = add_token(services, "fleet", "bench")
        admin = add_token(services, "admin", "bench-admin")
        config = json.loads((ROOT / ".chalice" / "config.json").read_text())
        stage = config["stages"]["dev"]
        memory = stage.get("lambda_memory_size", config.get("lambda_memory_size"))
        print(f"API function memory in .chalice/config.json: {memory} MB")
        out = subprocess.run(
            [sys.executable, __file__, "--child", token, admin, "--points", str(args.points)],
            env={**os.environ, **env},
            cwd=ROOT,
            check=False,
        )
        if out.returncode:
            return out.returncode
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
