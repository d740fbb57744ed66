#!/usr/bin/env python3
"""What one host costs a month, from what the code really does, beside CloudWatch.

Measured in one run, on this machine:

- the body: the real agent's collector runs once here (two samples a second
  apart, one cut), and that batch is the post;
- the post: the collector app (chalice's test client) over a real boto3 stack
  pointed at an embedded moto server, one post a minute for 70 simulated
  minutes (the history ring fills in an hour): every AWS request it makes is
  counted, the host item's size before and after each UpdateItem is taken
  from the table (DynamoDB's item-size rules) and gives its write units, and
  every WriteRecords record is metered by Timestream's documented rule;
- compute: the handler's own CPU time (the moto server runs in another
  thread, not counted), stretched by Lambda's CPU share at the configured
  memory (a full vCPU at 1,769 MB), plus the latency of each AWS request;
- the evaluation: the same host item copied `--fleet` times, one evaluation
  through the real adapters (botocore parses the Scan pages), CPU per host,
  and the Scan's read units;
- a bad sender: 5,000 new series a minute, through the same path.

Deploy settings come from `.chalice/config.json` and the CloudFormation
template's defaults. Prices are us-east-1 list prices (table printed first).

    .venv/bin/python bench/cost.py [--minutes 70] [--fleet 300]
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "agent"))

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
    }
)
for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "FLEETPULSE_AWS_ENDPOINT_URL"):
    os.environ.pop(var, None)

HOURS_PER_MONTH = 730
POSTS_PER_MONTH = HOURS_PER_MONTH * 60  # one post a minute
EVALUATIONS_PER_MONTH = HOURS_PER_MONTH * 60  # the evaluate schedule runs every minute
KIB = 1024
GB = 1024**3
# Lambda gives a function a full vCPU at 1,769 MB and a share in proportion below it.
FULL_VCPU_MB = 1769


@dataclass(frozen=True)
class Price:
    usd: float
    unit: str
    source: str


CHECKED = "2026-12-02"
# us-east-1 list prices, as published on each service's pricing page on CHECKED.
PRICES = {
    "timestream_write": Price(
        0.50 / 1e6, "1 KiB write", "aws.amazon.com/timestream/pricing ($0.50 per million)"
    ),
    "timestream_memory": Price(
        0.036, "GB-hour of memory store", "aws.amazon.com/timestream/pricing"
    ),
    "timestream_magnetic": Price(
        0.03, "GB-month of magnetic store", "aws.amazon.com/timestream/pricing"
    ),
    "apigw_rest": Price(
        3.50 / 1e6, "REST API request", "aws.amazon.com/api-gateway/pricing (first 333M)"
    ),
    "function_url": Price(0.0, "function URL request", "aws.amazon.com/lambda/pricing (no charge)"),
    "lambda_request": Price(0.20 / 1e6, "Lambda invocation", "aws.amazon.com/lambda/pricing"),
    "lambda_x86_64": Price(0.0000166667, "GB-second, x86_64", "aws.amazon.com/lambda/pricing"),
    "lambda_arm64": Price(0.0000133334, "GB-second, arm64", "aws.amazon.com/lambda/pricing"),
    "ddb_write": Price(
        0.625 / 1e6, "on-demand write unit", "aws.amazon.com/dynamodb/pricing/on-demand"
    ),
    "ddb_read": Price(
        0.125 / 1e6, "on-demand read unit", "aws.amazon.com/dynamodb/pricing/on-demand"
    ),
    "ddb_storage": Price(0.25, "GB-month of table storage", "aws.amazon.com/dynamodb/pricing"),
    "cw_metric": Price(
        0.30, "custom metric-month (first 10,000)", "aws.amazon.com/cloudwatch/pricing"
    ),
    "cw_put": Price(0.01 / 1000, "PutMetricData request", "aws.amazon.com/cloudwatch/pricing"),
}
# Round trips inside a region, added to the measured CPU time for the billed duration.
LATENCY_S = {"dynamodb": 0.005, "timestream-write": 0.020, "sns": 0.010}


# -- deploy settings -------------------------------------------------------------------


@dataclass
class Deploy:
    memory_mb: int
    architecture: str
    memory_retention_h: int
    magnetic_retention_d: int
    request_path: str  # "api-gateway" or "function-url"


def deploy_settings() -> Deploy:
    """The default deploy's settings, read from where the deploy reads them."""
    from fleetpulse import cfn

    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    stage = config["stages"]["dev"]
    memory = int(stage.get("lambda_memory_size", config.get("lambda_memory_size", 128)))
    arch = stage.get("lambda_architecture", config.get("lambda_architecture", "x86_64"))
    env = {**config.get("environment_variables", {}), **stage.get("environment_variables", {})}
    # `fleetpulse deploy finish` gives the API function a URL when the stage asks for one,
    # and the agents post there (docs/DEPLOY.md).
    url = env.get("FLEETPULSE_FUNCTION_URL", "").lower() == "true"
    params = cfn.load()["Parameters"]
    return Deploy(
        memory_mb=memory,
        architecture=str(arch),
        memory_retention_h=int(params["MemoryStoreRetentionHours"]["Default"]),
        magnetic_retention_d=int(params["MagneticStoreRetentionDays"]["Default"]),
        request_path="function-url" if url else "api-gateway",
    )


# -- the agent's body ------------------------------------------------------------------


def agent_body(tmp: Path) -> dict[str, Any]:
    """One batch from the real agent on this machine (its collector, sampled twice)."""
    from fleetpulse_agent import config
    from fleetpulse_agent.agent import Agent

    env = {
        "FLEETPULSE_CONFIG": str(tmp / "agent.conf"),
        "FLEETPULSE_URL": "http://127.0.0.1:9/",
        "FLEETPULSE_TOKEN": "unused",
        "FLEETPULSE_SPOOL_DIR": str(tmp / "spool"),
        "FLEETPULSE_STATSD": "off",
    }
    (tmp / "agent.conf").write_text("")
    cfg = config.load(env=env, require_url=False)
    batches: list[dict[str, Any]] = []
    agent = Agent(cfg, on_batch=batches.append)
    agent.sample()
    time.sleep(1.0)
    agent.aggregator.flush()  # the first reading only primes the counters
    agent.sample()
    agent.cut()
    body = batches[0]
    body["host"] = "web-1.example.com"
    return body


def shifted(body: dict[str, Any], delta_ms: int) -> dict[str, Any]:
    out = dict(body)
    out["points"] = [{**p, "time": p["time"] + delta_ms} for p in body["points"]]
    return out


def field_count(body: dict[str, Any]) -> int:
    return sum(len(p["fields"]) for p in body["points"])


# -- metering rules --------------------------------------------------------------------


def item_size(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it (low-level JSON): names and values in bytes,
    a number about one byte per two significant digits plus one, a map or list 3 bytes
    plus 1 per element."""

    def size(v: dict[str, Any]) -> int:
        ((kind, inner),) = v.items()
        if kind == "S":
            return len(inner.encode())
        if kind == "N":
            digits = inner.lstrip("-").split("e")[0].split("E")[0].replace(".", "").strip("0")
            return (max(len(digits), 1) + 1) // 2 + 1
        if kind in ("BOOL", "NULL"):
            return 1
        if kind == "M":
            return 3 + sum(len(k.encode()) + size(x) + 1 for k, x in inner.items())
        if kind == "L":
            return 3 + sum(size(x) + 1 for x in inner)
        if kind == "SS":
            return sum(len(s.encode()) for s in inner)
        raise ValueError(kind)

    return sum(len(k.encode()) + size(v) for k, v in item.items())


def write_units(before: int, after: int) -> int:
    """An UpdateItem is billed on the larger of the item before and after, per KB."""
    return max(1, math.ceil(max(before, after) / KIB))


def timestream_record_bytes(record: dict[str, Any]) -> int:
    """Timestream's write metering: 8 B of time, the UTF-8 bytes of dimension names and
    values and of measure names, 8 B per double or bigint, 1 per boolean, a string's bytes."""
    size = 8
    for d in record.get("Dimensions", []):
        size += len(d["Name"].encode()) + len(d["Value"].encode())
    size += len(record.get("MeasureName", "").encode())
    for m in record.get("MeasureValues", []):
        size += len(m["Name"].encode()) + _value_bytes(m["Type"], m["Value"])
    if "MeasureValue" in record:
        size += _value_bytes(record.get("MeasureValueType", "DOUBLE"), record["MeasureValue"])
    return size


def _value_bytes(kind: str, value: str) -> int:
    if kind in ("DOUBLE", "BIGINT", "TIMESTAMP"):
        return 8
    if kind == "BOOLEAN":
        return 1
    return len(value.encode())


# -- the stack -------------------------------------------------------------------------


@dataclass
class Meter:
    """What the app's clients sent, per AWS operation, and what it is billed."""

    calls: Counter[str] = field(default_factory=Counter)
    records: list[dict[str, Any]] = field(default_factory=list)

    def attach(self, client: Any) -> None:
        client.meta.events.register("provide-client-params.*.*", self._call)
        client.meta.events.register(
            "provide-client-params.timestream-write.WriteRecords", self._records
        )

    def _call(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        name = f"{model.service_model.service_name}.{model.name}"
        table = params.get("TableName")
        if isinstance(table, str):
            name += f"({table.rsplit('-', 1)[-1]})"
        self.calls[name] += 1

    def _records(self, params: dict[str, Any], **_: Any) -> None:
        from chalicelib.core.timestream import expand_records

        self.records.extend(expand_records(params.get("CommonAttributes", {}), params["Records"]))

    def reset(self) -> None:
        self.calls.clear()
        self.records.clear()


def _patient_clients() -> Any:
    from chalicelib.adapters.aws import AwsClients

    class PatientClients(AwsClients):
        """moto is far slower than DynamoDB on big items: no timeouts, no retries, so a
        slow answer is not sent twice (the second would race the first inside moto)."""

        def _make(self, service: str) -> Any:
            import boto3
            from botocore.config import Config

            config = Config(retries={"mode": "standard", "max_attempts": 1}, read_timeout=600)
            return boto3.client(
                service, region_name=self.region, endpoint_url=self.endpoint_url, config=config
            )

    return PatientClients


class Stack:
    """The app over boto3 clients talking to an embedded moto server, with a fake clock."""

    def __init__(self, deploy: Deploy) -> None:
        from moto.server import ThreadedMotoServer

        from chalicelib.settings import Settings
        from chalicelib.wiring import Services, use
        from fleetpulse.resources import create_all

        _PatientClients = _patient_clients()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
        env = {
            "FLEETPULSE_TOKEN_CACHE_SECONDS": "60",
            "FLEETPULSE_MEMORY_RETENTION_HOURS": str(deploy.memory_retention_h),
            "FLEETPULSE_MAGNETIC_RETENTION_DAYS": str(deploy.magnetic_retention_d),
        }
        self.settings = Settings.from_env(env)
        self.services = Services(
            self.settings, _PatientClients("us-east-1", self.endpoint), clock=lambda: self.now
        )
        create_all(self.settings, self.services.clients)
        self.meter = Meter()
        for service in ("dynamodb", "timestream-write", "sns"):
            self.meter.attach(self.services.clients.get(service))
        # A separate client reads the host item: its requests are not the app's.
        self.reader = _PatientClients("us-east-1", self.endpoint).get("dynamodb")
        use(self.services)
        from chalice.test import Client

        import app
        from tests.support.http import add_token

        self.token = add_token(self.services, "fleet", "bench")
        self.client = Client(app.app, stage_name="dev")
        self.client.__enter__()

    def post(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
        raw = gzip.compress(json.dumps(body).encode())
        headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Authorization": f"Bearer {self.token}",
        }
        cpu = time.thread_time()
        response = self.client.http.post("/v1/ingest", headers=headers, body=raw)
        cpu = time.thread_time() - cpu
        return response.status_code, json.loads(response.body or b"{}"), cpu

    def host_item(self, host: str) -> dict[str, Any]:
        table = self.settings.hosts_table
        got = self.reader.get_item(TableName=table, Key={"host": {"S": host}})
        return dict(got.get("Item", {}))

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        self.services.clients.close()
        self.server.stop()


@dataclass
class PostFigures:
    """Per post, averaged over the run's last posts (the item at its steady size)."""

    requests: Counter[str]
    write_units: float
    item_bytes: int
    ts_records: float
    ts_write_kib: float
    ts_bytes: float
    cpu_s: float
    accepted: int
    reply: dict[str, Any]


def run_posts(
    stack: Stack, bodies: list[dict[str, Any]], steady_from: int, host: str
) -> PostFigures:
    requests: Counter[str] = Counter()
    wcu = 0
    records = kib = size_sum = 0
    cpu_total = 0.0
    accepted = 0
    reply: dict[str, Any] = {}
    item_bytes = 0
    steady = 0
    for i, body in enumerate(bodies):
        stack.now = stack.now + timedelta(minutes=1)
        before = item_size(stack.host_item(host))
        stack.meter.reset()
        status, reply, cpu = stack.post(body)
        if status != 202:
            raise SystemExit(f"post {i} answered {status}: {reply}")
        after_item = stack.host_item(host)
        item_bytes = item_size(after_item)
        if i < steady_from:
            continue
        steady += 1
        updates = stack.meter.calls["dynamodb.UpdateItem(hosts)"]
        # Each UpdateItem of the post: the first is billed on the item before and
        # after; the split ones in between are bounded by the final size.
        wcu += updates * write_units(before, item_bytes)
        requests.update(stack.meter.calls)
        for r in stack.meter.records:
            b = timestream_record_bytes(r)
            records += 1
            size_sum += b
            kib += max(1, math.ceil(b / KIB))
        cpu_total += cpu
        accepted += int(reply.get("accepted", 0))
    n = max(steady, 1)
    return PostFigures(
        requests=Counter({k: v / n for k, v in requests.items()}),  # type: ignore[misc]
        write_units=wcu / n,
        item_bytes=item_bytes,
        ts_records=records / n,
        ts_write_kib=kib / n,
        ts_bytes=size_sum / n,
        cpu_s=cpu_total / n,
        accepted=accepted // n,
        reply=reply,
    )


@dataclass
class EvalFigures:
    cpu_per_host_s: float
    read_units_per_host: float
    requests: Counter[str]


def run_evaluation(stack: Stack, item: dict[str, Any], fleet: int) -> EvalFigures:
    """One evaluation over `fleet` copies of `item` (real Scan pages, parsed by botocore)."""
    table = stack.settings.hosts_table
    names = [f"copy-{i:06d}.example.com" for i in range(fleet)]
    for start in range(0, fleet, 25):
        stack.reader.batch_write_item(
            RequestItems={
                table: [
                    {"PutRequest": {"Item": {**item, "host": {"S": name}}}}
                    for name in names[start : start + 25]
                ]
            }
        )
    total_bytes = item_size(item) * (fleet + 1)
    stack.services.alerting.evaluate(stack.now)  # warm: rules loaded, first transitions made
    stack.meter.reset()
    cpu = time.thread_time()
    stack.services.alerting.evaluate(stack.now + timedelta(seconds=5))
    cpu = time.thread_time() - cpu
    # A Scan reads eventually consistent: half a unit per 4 KB of items read.
    read_units = math.ceil(total_bytes / 4096) * 0.5
    for start in range(0, fleet, 25):
        stack.reader.batch_write_item(
            RequestItems={
                table: [
                    {"DeleteRequest": {"Key": {"host": {"S": n}}}}
                    for n in names[start : start + 25]
                ]
            }
        )
    return EvalFigures(cpu / (fleet + 1), read_units / (fleet + 1), Counter(stack.meter.calls))


def scan_parse_per_host(item: dict[str, Any], runs: int = 5) -> tuple[float, float, int]:
    """botocore's parse of one 1 MB Scan page of copies of `item` (what the evaluate
    Lambda's client does with each page), and the adapter's decode: seconds per host."""
    import botocore.session
    from botocore.parsers import create_parser

    from chalicelib.adapters.dynamodb import snapshot_from_item

    per_page = max(1, (1024 * 1024) // max(item_size(item), 1))
    items = [{**item, "host": {"S": f"copy-{i:06d}.example.com"}} for i in range(per_page)]
    body = json.dumps({"Items": items, "Count": per_page, "ScannedCount": per_page}).encode()
    model = botocore.session.get_session().get_service_model("dynamodb")
    shape = model.operation_model("Scan").output_shape
    parser = create_parser("json")
    best_parse = best_decode = float("inf")
    for _ in range(runs):
        started = time.process_time()
        parsed = parser.parse(
            {"body": body, "headers": {}, "status_code": 200}, shape
        )  # same call botocore makes
        best_parse = min(best_parse, time.process_time() - started)
        started = time.process_time()
        for raw in parsed["Items"]:
            snapshot_from_item(raw)
        best_decode = min(best_decode, time.process_time() - started)
    return best_parse / per_page, best_decode / per_page, per_page


# -- the bill ---------------------------------------------------------------------------


def lambda_seconds(cpu_s: float, requests: Counter[str], deploy: Deploy) -> float:
    """Billed duration: CPU stretched by the memory's vCPU share, plus AWS round trips."""
    share = min(1.0, deploy.memory_mb / FULL_VCPU_MB)
    wait = sum(n * LATENCY_S.get(op.split(".")[0], 0.0) for op, n in requests.items())
    return cpu_s / share + wait


def host_month(
    post: PostFigures, ev: EvalFigures, deploy: Deploy, posts: int = POSTS_PER_MONTH
) -> dict[str, float]:
    p = PRICES
    gbs = p["lambda_arm64" if deploy.architecture == "arm64" else "lambda_x86_64"].usd
    memory_gb = deploy.memory_mb / 1024
    bytes_per_hour = post.ts_bytes * 60
    path = "function_url" if deploy.request_path == "function-url" else "apigw_rest"
    post_lambda_s = lambda_seconds(post.cpu_s, post.requests, deploy)
    eval_lambda_s = lambda_seconds(ev.cpu_per_host_s, Counter(), deploy)
    return {
        "timestream writes": posts * post.ts_write_kib * p["timestream_write"].usd,
        "timestream memory store": bytes_per_hour
        * deploy.memory_retention_h
        / GB
        * HOURS_PER_MONTH
        * p["timestream_memory"].usd,
        "timestream magnetic store": bytes_per_hour
        * HOURS_PER_MONTH
        * 12
        * min(deploy.magnetic_retention_d, 365)
        / 365
        / GB
        * p["timestream_magnetic"].usd,
        f"requests ({deploy.request_path})": posts * p[path].usd,
        "lambda invocations": posts * p["lambda_request"].usd,
        "lambda compute (ingest)": posts * post_lambda_s * memory_gb * gbs,
        "dynamodb writes (host item)": posts * post.write_units * p["ddb_write"].usd,
        "dynamodb storage": post.item_bytes / GB * p["ddb_storage"].usd,
        "evaluation reads": EVALUATIONS_PER_MONTH * ev.read_units_per_host * p["ddb_read"].usd,
        "evaluation compute": EVALUATIONS_PER_MONTH * eval_lambda_s * memory_gb * gbs,
    }


STORAGE = ("timestream writes", "timestream memory store", "timestream magnetic store")


def cloudwatch_month(body: dict[str, Any]) -> dict[str, float]:
    """The CloudWatch agent publishing the same fields: one custom metric per field and
    tag set, one PutMetricData a minute (up to 1,000 metrics a request)."""
    metrics = field_count(body)
    return {
        "custom metrics": metrics * PRICES["cw_metric"].usd,
        "PutMetricData": POSTS_PER_MONTH * math.ceil(metrics / 1000) * PRICES["cw_put"].usd,
    }


def bad_sender_body(now_ms: int, minute: int, host: str, n: int = 5000) -> dict[str, Any]:
    base = now_ms + minute * 60_000
    return {
        "host": host,
        "heartbeat": {"interval": 60, "state": "alive"},
        "points": [
            {
                "measurement": "statsd",
                "time": base,
                "tags": {"key": f"user-{minute}-{i}"},
                "fields": {"count": float(i)},
            }
            for i in range(n)
        ],
    }


def show_bill(title: str, bill: dict[str, float]) -> None:
    print(f"\n{title}")
    for name, usd in bill.items():
        print(f"  {name:<34} ${usd:9.4f}")
    total = sum(bill.values())
    other = sum(v for k, v in bill.items() if k not in STORAGE)
    print(f"  {'total':<34} ${total:9.4f}")
    print(f"  {'of which not metric storage':<34} ${other:9.4f}")


def main() -> int:
    from chalicelib.core.instants import ms_of_instant

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=int, default=70, help="posts, one a minute")
    # moto's Scan slows down with the square of the table's size: a few copies are enough
    # for the per-host CPU (the fixed part of an evaluation is counted in, so it errs high).
    parser.add_argument("--fleet", type=int, default=10, help="host items in the evaluation")
    parser.add_argument("--bad-minutes", type=int, default=2, help="posts of the bad sender")
    args = parser.parse_args()

    print(f"us-east-1 list prices, checked {CHECKED}:")
    for name, price in PRICES.items():
        print(f"  {name:<20} ${price.usd:<13.10g} per {price.unit:<34} {price.source}")

    deploy = deploy_settings()
    print(
        f"\ndeploy defaults: {deploy.memory_mb} MB {deploy.architecture}, memory store "
        f"{deploy.memory_retention_h} h, magnetic {deploy.magnetic_retention_d} d, "
        f"requests via {deploy.request_path}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        body = agent_body(Path(tmp))
    print(
        f"agent body on this machine: {len(body['points'])} points, {field_count(body)} fields, "
        f"{len(json.dumps(body))} bytes of JSON"
    )
    now_ms = ms_of_instant(datetime(2026, 11, 21, 12, 0, tzinfo=UTC))
    first = min(p["time"] for p in body["points"])
    bodies = [shifted(body, now_ms + (i + 1) * 60_000 - first) for i in range(args.minutes)]

    stack = Stack(deploy)
    try:
        post = run_posts(stack, bodies, steady_from=min(60, args.minutes - 5), host=body["host"])
        item = stack.host_item(body["host"])
        ev = run_evaluation(stack, item, args.fleet)
        bad_host = "statsd-storm.example.com"
        bad = run_posts(
            stack,
            [
                bad_sender_body(ms_of_instant(stack.now), i + 1, bad_host)
                for i in range(args.bad_minutes)
            ],
            steady_from=min(1, args.bad_minutes - 1),
            host=bad_host,
        )
        bad_item = stack.host_item(bad_host)
        bad_ev = run_evaluation(stack, bad_item, 2)
    finally:
        stack.close()

    print(
        f"\nper post: {dict(post.requests)}; host item {post.item_bytes} B -> "
        f"{post.write_units:.1f} write units; {post.ts_records:.0f} Timestream records, "
        f"{post.ts_bytes / max(post.ts_records, 1):.0f} B each on average, "
        f"{post.ts_write_kib:.0f} KiB billed ({post.ts_bytes / 1024 / max(post.ts_write_kib, 1):.0%}"
        f" of the billed KiB used); handler CPU {post.cpu_s * 1000:.1f} ms"
    )
    print(
        f"evaluation: {ev.cpu_per_host_s * 1e6:.0f} us CPU per host, "
        f"{ev.read_units_per_host:.3f} read units per host; {dict(ev.requests)}"
    )
    parse_s, decode_s, per_page = scan_parse_per_host(item)
    per_host = parse_s + decode_s
    print(
        f"evaluation read path, this item: botocore parses a 1 MB Scan page of {per_page} hosts"
        f" in {parse_s * per_page:.2f} s ({parse_s * 1e6:.0f} us a host), the adapter decodes"
        f" it in {decode_s * per_page:.2f} s; at a full vCPU one evaluation reads 10,000 hosts in"
        f" {per_host * 10_000:.1f} s, 100,000 in {per_host * 100_000:.0f} s (the function has 55 s)"
    )
    sizes = []
    for mb in (256, 512, 1024, 1769):
        sized = Deploy(mb, deploy.architecture, 0, 0, deploy.request_path)
        seconds = lambda_seconds(post.cpu_s, post.requests, sized)
        usd = POSTS_PER_MONTH * seconds * mb / 1024 * PRICES["lambda_x86_64"].usd
        sizes.append(f"{mb} MB {seconds * 1000:.0f} ms ${usd:.4f}")
    print("ingest handler per post and a host-month, by memory (x86_64): " + "; ".join(sizes))
    bill = host_month(post, ev, deploy)
    show_bill("one host, one post a minute, a month:", bill)
    cw = cloudwatch_month(body)
    show_bill(f"the CloudWatch agent publishing the same {field_count(body)} fields:", cw)
    print(f"  ratio CloudWatch / fleetpulse: {sum(cw.values()) / sum(bill.values()):.0f}x")

    print(
        f"\nbad sender, 5,000 new series a minute: per post {dict(bad.requests)}; host item "
        f"{bad.item_bytes} B -> {bad.write_units:.0f} write units; reply {json.dumps(bad.reply)[:160]}"
    )
    bad_bill = host_month(bad, bad_ev, deploy)
    show_bill("the bad sender, a month:", bad_bill)

    def ddb_and_eval(b: dict[str, float]) -> float:
        return sum(v for k, v in b.items() if k.startswith(("dynamodb", "evaluation")))

    ratio = ddb_and_eval(bad_bill) / ddb_and_eval(bill)
    print(f"  its DynamoDB + evaluation cost vs a normal host's: {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
