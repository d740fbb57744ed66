#!/usr/bin/env python3
"""What one host costs a month, from what the code really does, beside CloudWatch.

Measured in one run, on this machine:

- the body: the real agent's default minute on this machine (its collector sampled
  every sample_interval for one send_interval: 6 samples, then one cut);
- the post: the API function as Lambda runs it (`app.app(event, context)` with a
  function URL's event) over a real boto3 stack pointed at an embedded moto server,
  one post a minute for 70 simulated minutes (the history ring fills in an hour):
  every AWS request it makes is counted, the host item's size before and after each
  UpdateItem is taken from the table (DynamoDB's item-size rules) and gives its write
  units, and every WriteRecords call is metered by Timestream's documented rule (the
  sum of its events' parts, common attributes once, in 1 KiB units; storage per record);
- compute: the handler's own CPU time (the moto server runs in another thread, not
  counted), stretched by Lambda's CPU share at the configured memory (a full vCPU at
  1,769 MB), plus the latency of each AWS request; botocore's parameter validation on
  and off, alternating post by post (`--profile` adds the handler's cProfile);
- the fleet token: its reads modelled for `--fleet-hosts` sharing it over
  `--containers` warm containers, beside one host alone;
- the hosts table's capacity: in the template's default mode (provisioned with auto
  scaling at its target utilization, the minimums amortized over `--fleet-hosts`) and
  on demand;
- the evaluation: the same host item copied `--fleet` and three times as many times,
  evaluations through the real adapters (botocore parses the Scan pages), the CPU
  per host added, and the Scan's read units;
- a bad sender: 5,000 new series a minute, through the same path;
- CloudWatch Logs: what the handler writes to stdout/stderr (file descriptors 1 and 2,
  which Lambda sends to the log group) over steady posts at the stage's
  POWERTOOLS_LOG_LEVEL and metrics setting, plus Lambda's START/END/REPORT lines unless
  `FLEETPULSE_PLATFORM_LOGS` leaves them out (`fleetpulse deploy finish`).

Deploy settings come from `.chalice/config.json` and the CloudFormation
template's defaults. Prices are us-east-1 list prices (table printed first).

    .venv/bin/python bench/cost.py [--minutes 70] [--fleet 10] [--fleet-hosts 1000]
        [--containers 10] [--profile]
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
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
    # A write is one WriteRecords call, metered in 1 KiB units: the sum of its events'
    # parts, common attributes once (docs.aws.amazon.com/timestream/latest/developerguide/
    # metering-and-pricing.writes.html, read on CHECKED; storage: metering-and-pricing.storage).
    "timestream_write": Price(
        0.50 / 1e6,
        "1 KiB of a WriteRecords call",
        "aws.amazon.com/timestream/pricing ($0.50 per million); metering-and-pricing.writes",
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
    "ddb_wcu_hour": Price(
        0.00065, "provisioned write unit-hour", "aws.amazon.com/dynamodb/pricing/provisioned"
    ),
    "ddb_rcu_hour": Price(
        0.00013, "provisioned read unit-hour", "aws.amazon.com/dynamodb/pricing/provisioned"
    ),
    "ddb_storage": Price(0.25, "GB-month of table storage", "aws.amazon.com/dynamodb/pricing"),
    "cw_metric": Price(
        0.30, "custom metric-month (first 10,000)", "aws.amazon.com/cloudwatch/pricing"
    ),
    "cw_put": Price(0.01 / 1000, "PutMetricData request", "aws.amazon.com/cloudwatch/pricing"),
    "cw_logs_ingest": Price(
        0.50, "GB of logs ingested (standard)", "aws.amazon.com/cloudwatch/pricing"
    ),
    "cw_logs_storage": Price(0.03, "GB-month of logs stored", "aws.amazon.com/cloudwatch/pricing"),
}
# CloudWatch Logs counts each event as its message's UTF-8 bytes plus 26 (PutLogEvents'
# batch-size rule, docs.aws.amazon.com/AmazonCloudWatch/latest/logs/cloudwatch_limits_cwl.html).
LOG_EVENT_OVERHEAD = 26
# Round trips inside a region, added to the measured CPU time for the billed duration.
LATENCY_S = {"dynamodb": 0.005, "timestream-write": 0.020, "sns": 0.010}


# -- deploy settings -------------------------------------------------------------------


@dataclass
class Deploy:
    memory_mb: int  # the API function (ingest)
    eval_memory_mb: int  # the evaluate function
    architecture: str
    memory_retention_h: int
    magnetic_retention_d: int
    request_path: str  # "api-gateway" or "function-url"
    platform_logs: bool = True  # Lambda's START/END/REPORT lines sent (its default)
    log_level: str = "INFO"  # POWERTOOLS_LOG_LEVEL
    metrics: bool = True  # powertools' EMF line (POWERTOOLS_METRICS_DISABLED unset)
    log_retention_d: int = 30  # the template's LogRetentionDays
    hosts_billing: str = "PAY_PER_REQUEST"  # the template's HostsTableBillingMode
    hosts_target: float = 70.0  # HostsWriteTargetUtilization, percent
    hosts_read_target: float = 20.0  # HostsReadTargetUtilization
    hosts_write_min: int = 5  # HostsWriteCapacityMin (the table's and its index's)
    hosts_read_min: int = 5  # HostsReadCapacityMin


@dataclass(frozen=True)
class Capacity:
    """The hosts table's capacity per host-month, for one host of `hosts`.

    Provisioned with target tracking: auto scaling keeps the provisioned units at the
    fleet's steady use divided by the target utilization, never under the minimum; the
    index (keys only) is written once per new host, so it sits at its minimums, which
    the fleet shares. On demand: every unit at its request price."""

    billing: str
    hosts: int
    write_target: float
    read_target: float
    write_min: int
    read_min: int

    @classmethod
    def of(cls, deploy: Deploy, hosts: int) -> Capacity:
        return cls(
            deploy.hosts_billing,
            hosts,
            deploy.hosts_target,
            deploy.hosts_read_target,
            deploy.hosts_write_min,
            deploy.hosts_read_min,
        )

    @property
    def provisioned(self) -> bool:
        return self.billing == "PROVISIONED"

    def _units(self, per_minute: float, floor: int, target: float) -> float:
        """A host's share of the provisioned units for `per_minute` units a minute each."""
        fleet = self.hosts * per_minute / 60 / (target / 100)
        return max(float(floor), fleet) / self.hosts

    def writes(self, units_per_post: float) -> float:
        if not self.provisioned:
            return POSTS_PER_MONTH * units_per_post * PRICES["ddb_write"].usd
        units = self._units(units_per_post, self.write_min, self.write_target)
        return units * HOURS_PER_MONTH * PRICES["ddb_wcu_hour"].usd

    def scan_reads(self, units_per_evaluation: float) -> float:
        if not self.provisioned:
            return EVALUATIONS_PER_MONTH * units_per_evaluation * PRICES["ddb_read"].usd
        units = self._units(units_per_evaluation, self.read_min, self.read_target)
        return units * HOURS_PER_MONTH * PRICES["ddb_rcu_hour"].usd

    def index_floor(self) -> float:
        if not self.provisioned:
            return 0.0
        hourly = self.write_min * PRICES["ddb_wcu_hour"].usd
        hourly += self.read_min * PRICES["ddb_rcu_hour"].usd
        return hourly * HOURS_PER_MONTH / self.hosts


def deploy_settings() -> Deploy:
    """The default deploy's settings, read from where the deploy reads them."""
    from fleetpulse import cfn

    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    stage = config["stages"]["dev"]
    default_memory = int(stage.get("lambda_memory_size", config.get("lambda_memory_size", 128)))
    api = {
        **config.get("lambda_functions", {}).get("api_handler", {}),
        **stage.get("lambda_functions", {}).get("api_handler", {}),
    }
    memory = int(api.get("lambda_memory_size", default_memory))
    evaluate = {
        **config.get("lambda_functions", {}).get("evaluate", {}),
        **stage.get("lambda_functions", {}).get("evaluate", {}),
    }
    arch = stage.get("lambda_architecture", config.get("lambda_architecture", "x86_64"))
    env = {**config.get("environment_variables", {}), **stage.get("environment_variables", {})}
    # `fleetpulse deploy finish` gives the API function a URL when the stage asks for one,
    # and the agents post there (docs/DEPLOY.md).
    url = env.get("FLEETPULSE_FUNCTION_URL", "").lower() == "true"
    params = cfn.load()["Parameters"]
    return Deploy(
        memory_mb=memory,
        eval_memory_mb=int(evaluate.get("lambda_memory_size", default_memory)),
        architecture=str(arch),
        memory_retention_h=int(params["MemoryStoreRetentionHours"]["Default"]),
        magnetic_retention_d=int(params["MagneticStoreRetentionDays"]["Default"]),
        request_path="function-url" if url else "api-gateway",
        # `fleetpulse deploy finish` sets the API function's LoggingConfig from these.
        platform_logs=env.get("FLEETPULSE_PLATFORM_LOGS", "false").lower() == "true",
        log_level=env.get("POWERTOOLS_LOG_LEVEL", "INFO"),
        metrics=env.get("POWERTOOLS_METRICS_DISABLED", "false").lower() != "true",
        log_retention_d=int(params["LogRetentionDays"]["Default"]),
        hosts_billing=str(params["HostsTableBillingMode"]["Default"]),
        hosts_target=float(params["HostsWriteTargetUtilization"]["Default"]),
        hosts_read_target=float(params["HostsReadTargetUtilization"]["Default"]),
        hosts_write_min=int(params["HostsWriteCapacityMin"]["Default"]),
        hosts_read_min=int(params["HostsReadCapacityMin"]["Default"]),
    )


# -- the agent's body ------------------------------------------------------------------


def agent_body(tmp: Path) -> dict[str, Any]:
    """One minute from the real agent on this machine, as its defaults send it: a sample
    every sample_interval, a batch every send_interval (6 samples at 10 s and 60 s).

    The agent's wall clock advances sample_interval per sample; the real pause between
    samples is short (a counter's rate is computed over it, its shape is the same)."""
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
    wall = [time.time()]
    agent = Agent(cfg, on_batch=batches.append, clock=lambda: wall[0])
    agent.sample()
    agent.aggregator.flush()  # the first reading only primes the counters
    for _ in range(max(1, round(cfg.send_interval / cfg.sample_interval))):
        time.sleep(0.2)
        wall[0] += cfg.sample_interval
        agent.sample()
    agent.cut()
    body = batches[0]
    for more in batches[1:]:  # a minute past the agent's batch limit: one post here
        body["points"].extend(more["points"])
    body["host"] = "web-1.example.com"
    return body


def shifted(body: dict[str, Any], delta_ms: int) -> dict[str, Any]:
    out = dict(body)
    out["points"] = [{**p, "time": p["time"] + delta_ms} for p in body["points"]]
    return out


def field_count(body: dict[str, Any]) -> int:
    return sum(len(p["fields"]) for p in body["points"])


def metric_count(body: dict[str, Any]) -> int:
    """Distinct series x field: what CloudWatch bills as custom metrics."""
    return len(
        {
            (p["measurement"], tuple(sorted(p.get("tags", {}).items())), name)
            for p in body["points"]
            for name in p["fields"]
        }
    )


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
        if kind == "B":  # its raw bytes (boto3 hands them over decoded)
            return len(inner) if isinstance(inner, bytes) else len(base64.b64decode(inner))
        raise ValueError(kind)

    return sum(len(k.encode()) + size(v) for k, v in item.items())


def write_units(before: int, after: int) -> int:
    """An UpdateItem is billed on the larger of the item before and after, per KB."""
    return max(1, math.ceil(max(before, after) / KIB))


def timestream_record_bytes(record: dict[str, Any]) -> int:
    """A stored record's size (metering-and-pricing.storage, also the write size of one
    event): 8 B of time, the UTF-8 bytes of dimension names and values and of measure
    names, 8 B per double or bigint, 1 per boolean, a string's bytes."""
    return 8 + _parts_bytes(record)


def timestream_request_bytes(common: dict[str, Any], records: list[dict[str, Any]]) -> int:
    """A WriteRecords call's write size (metering-and-pricing.writes): the sum of its
    events' parts, the common attributes (the host's dimensions, a shared time) once."""
    size = _parts_bytes(common) + (8 if "Time" in common else 0)
    for r in records:
        size += _parts_bytes(r) + (8 if "Time" in r else 0)
    return size


def timestream_request_kib(common: dict[str, Any], records: list[dict[str, Any]]) -> int:
    """Each write (WriteRecords call) is counted in units of 1 KiB."""
    return max(1, math.ceil(timestream_request_bytes(common, records) / KIB))


def _parts_bytes(record: dict[str, Any]) -> int:
    size = 0
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
    # each WriteRecords call as sent: (CommonAttributes, Records)
    writes: list[tuple[dict[str, Any], list[dict[str, Any]]]] = field(default_factory=list)

    # The handler's CPU inside the fleet token's GetItem calls (thread time: the wait on
    # the socket is not counted), to price the posts that find the token cached.
    token_cpu_s: float = 0.0
    _token_started: float | None = None

    def attach(self, client: Any) -> None:
        client.meta.events.register("provide-client-params.*.*", self._call)
        client.meta.events.register("after-call.dynamodb.GetItem", self._token_done)
        client.meta.events.register(
            "provide-client-params.timestream-write.WriteRecords", self._records
        )

    def _call(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        name = f"{model.service_model.service_name}.{model.name}"
        table = params.get("TableName")
        if isinstance(table, str):
            name += f"({table.rsplit('-', 1)[-1]})"
        self.calls[name] += 1
        if name == "dynamodb.GetItem(tokens)":
            self._token_started = time.thread_time()

    def _token_done(self, **_: Any) -> None:
        if self._token_started is not None:
            self.token_cpu_s += time.thread_time() - self._token_started
            self._token_started = None

    def _records(self, params: dict[str, Any], **_: Any) -> None:
        self.writes.append((params.get("CommonAttributes", {}), list(params["Records"])))

    def records(self) -> list[dict[str, Any]]:
        """Every record as Timestream stores it (common attributes merged in)."""
        from chalicelib.core.timestream import expand_records

        return [r for common, records in self.writes for r in expand_records(common, records)]

    def reset(self) -> None:
        self.calls.clear()
        self.writes.clear()
        self.token_cpu_s = 0.0
        self._token_started = None


def _patient_clients() -> Any:
    from chalicelib.adapters.aws import AwsClients

    class PatientClients(AwsClients):
        """The app's clients (their Config), except: moto is far slower than DynamoDB on
        big items, so no timeouts and no retries (a slow answer is not sent twice, the
        second would race the first inside moto). `checked` turns botocore's parameter
        validation back on for every client, as the app had it before."""

        checked = False

        def config(self, service: str) -> Any:
            from botocore.config import Config

            extra: dict[str, Any] = {
                "retries": {"mode": "standard", "max_attempts": 1},
                "read_timeout": 600,
            }
            if self.checked:
                extra["parameter_validation"] = True
            return super().config(service).merge(Config(**extra))

    return PatientClients


class LambdaContext:
    """What the Lambda runtime hands the handler (the logger reads these)."""

    function_name = "fleetpulse-dev-api"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:fleetpulse-dev-api"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 25_000


def url_event(path: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """A function URL's invocation (payload format 2.0), as Lambda hands it to `app.app`."""
    import base64

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
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.9",
                "userAgent": "fleetpulse-agent",
            },
            "requestId": "bench",
            "routeKey": "$default",
            "stage": "$default",
            "timeEpoch": 1763726400000,
        },
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


def platform_lines(duration_ms: float, memory_mb: int, used_mb: int) -> list[str]:
    """Lambda's text-format lines for one invocation (docs.aws.amazon.com/lambda/latest/dg/
    monitoring-cloudwatchlogs.html, python-logging.html), a warm one (no Init Duration):
    a request id is a 36-character UUID, the durations as Lambda prints them."""
    rid = "8f5cd1a4-1c2b-4a6e-9d3f-0b7e2a9c4d11"
    return [
        f"START RequestId: {rid} Version: $LATEST",
        f"END RequestId: {rid}",
        f"REPORT RequestId: {rid}\tDuration: {duration_ms:.2f} ms\tBilled Duration:"
        f" {math.ceil(duration_ms)} ms\tMemory Size: {memory_mb} MB\tMax Memory Used:"
        f" {used_mb} MB\t",
    ]


def event_bytes(lines: list[str]) -> int:
    """What CloudWatch Logs counts for these events."""
    return sum(len(line.encode()) + LOG_EVENT_OVERHEAD for line in lines)


class CapturedOutput:
    """Everything the process writes to file descriptors 1 and 2 (what Lambda's runtime
    sends to the log group, one event a line) while inside the `with`."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __enter__(self) -> CapturedOutput:
        sys.stdout.flush()
        sys.stderr.flush()
        self._file = tempfile.TemporaryFile()
        self._saved = [os.dup(1), os.dup(2)]
        os.dup2(self._file.fileno(), 1)
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *_: Any) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved in zip((1, 2), self._saved, strict=True):
            os.dup2(saved, fd)
            os.close(saved)
        self._file.seek(0)
        self.lines = [line for line in self._file.read().decode().splitlines() if line]
        self._file.close()


@dataclass
class LogFigures:
    app_events: float  # a post
    app_bytes: float  # a post, as CloudWatch Logs counts them
    sample: list[str]
    platform_bytes: int  # START, END, REPORT


def measure_logs(stack: Stack, bodies: list[dict[str, Any]], deploy: Deploy) -> LogFigures:
    """Posts `bodies` with the stage's logging settings (the rest of the run logs only
    errors, metrics off) and takes what each post writes. The API function publishes
    its metrics once a minute per container (`app.METRICS_FLUSH_SECONDS`): the posts
    are one container's minute, and the minute's metrics line is shared among them."""
    import app

    level = app.logger.log_level
    app.logger.setLevel(deploy.log_level)
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "false" if deploy.metrics else "true"
    lines: list[str] = []
    sample: list[str] = []
    try:
        app._last_flush[0] = time.monotonic()  # the container's minute starts
        for body in bodies:
            stack.now = stack.now + timedelta(minutes=1)
            with CapturedOutput() as out:
                status, reply, _ = stack.post(body)
            if status != 202:
                raise SystemExit(f"post answered {status}: {reply}")
            lines += out.lines
        with CapturedOutput() as out:  # the minute is over: its line goes out
            if app.metrics.metric_set:
                app.metrics.flush_metrics()
        lines += out.lines
        sample = lines[-3:]
    finally:
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
        app.logger.setLevel(level)
    n = max(len(bodies), 1)
    return LogFigures(len(lines) / n, event_bytes(lines) / n, sample, 0)


class Stack:
    """The app over boto3 clients talking to an embedded moto server, with a fake clock."""

    def __init__(self, deploy: Deploy) -> None:
        from moto.server import ThreadedMotoServer

        from chalicelib.settings import Settings
        from chalicelib.wiring import Services, use
        from fleetpulse.resources import create_all

        _PatientClients = self.clients_class = _patient_clients()
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
        from tests.support.http import add_token

        self.token = add_token(self.services, "fleet", "bench")
        self.context = LambdaContext()

    def checked_services(self) -> Any:
        """The same app over clients with botocore's parameter validation on (as before)."""
        from chalicelib.wiring import Services

        clients = self.clients_class("us-east-1", self.endpoint)
        clients.checked = True
        services = Services(self.settings, clients, clock=lambda: self.now)
        for service in ("dynamodb", "timestream-write", "sns"):
            self.meter.attach(services.clients.get(service))
        return services

    def post(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
        """One post as Lambda runs it: the function URL's event into `app.app`."""
        import app

        raw = gzip.compress(json.dumps(body).encode())
        headers = {
            "content-type": "application/json",
            "content-encoding": "gzip",
            "authorization": f"Bearer {self.token}",
        }
        event = url_event("/v1/ingest", headers, raw)
        cpu = time.thread_time()
        response = app.app(event, self.context)
        cpu = time.thread_time() - cpu
        return response["statusCode"], json.loads(response.get("body") or "{}"), cpu

    def host_item(self, host: str) -> dict[str, Any]:
        table = self.settings.hosts_table
        got = self.reader.get_item(TableName=table, Key={"host": {"S": host}})
        return dict(got.get("Item", {}))

    def catalog_item(self, host: str) -> dict[str, Any]:
        table = self.settings.series_table
        got = self.reader.get_item(TableName=table, Key={"host": {"S": host}})
        return dict(got.get("Item", {}))

    def close(self) -> None:
        self.services.clients.close()
        self.server.stop()


@dataclass
class PostFigures:
    """Per post, averaged over the run's last posts (the item at its steady size)."""

    requests: Counter[str]
    write_units: float  # the hosts table: every UpdateItem of the post
    item_bytes: int
    ts_records: float
    ts_calls: float
    ts_write_kib: float  # documented: per WriteRecords call, common attributes once
    ts_write_kib_per_record: float  # the old reading: each record in whole KiB
    ts_request_bytes: float
    ts_bytes: float  # stored: each record's own parts
    cpu_s: float
    accepted: int
    reply: dict[str, Any]
    catalog_read_units: float = 0.0  # the series catalog's GetItem (consistent)
    catalog_write_units: float = 0.0  # its PutItem
    catalog_bytes: int = 0
    catalog_every: float = 0.0  # posts between two catalog writes, in the steady state
    token_cpu_s: float = 0.0  # of cpu_s, inside the token's GetItem (read on every post here)


@dataclass
class _Post:
    """One post's meter readings."""

    requests: Counter[str]
    host_wcu: int
    catalog_rcu: float
    catalog_wcu: int
    ts_records: int
    ts_calls: int
    ts_kib: int
    ts_kib_old: int
    ts_request_bytes: int
    ts_bytes: int
    cpu_s: float
    accepted: int
    token_cpu_s: float = 0.0

    @property
    def writes_catalog(self) -> bool:
        return self.requests.get("dynamodb.PutItem(series)", 0) > 0


def run_posts(
    stack: Stack,
    bodies: list[dict[str, Any]],
    steady_from: int,
    host: str,
    catalog_every: timedelta,
) -> PostFigures:
    """Posts `bodies` one a minute and meters each. The steady post is the mean of the
    posts from `steady_from` on that do not write the series catalog, with the catalog's
    cost added at its steady rate: one write per `catalog_every` (chalicelib/core/hosts.py:
    a host whose series stay the same rewrites it every CATALOG_REFRESH; one whose series
    are new every post, once its CATALOG_SHAPES are known, every CATALOG_MIN_INTERVAL).
    A catalog write's cost is measured on the last post that made one (after the first,
    which also creates the item)."""
    posts: list[_Post] = []
    reply: dict[str, Any] = {}
    item_bytes = catalog_bytes = 0
    for i, body in enumerate(bodies):
        stack.now = stack.now + timedelta(minutes=1)
        before = item_size(stack.host_item(host))
        catalog_before = item_size(stack.catalog_item(host))
        stack.meter.reset()
        status, reply, cpu = stack.post(body)
        if status != 202:
            raise SystemExit(f"post {i} answered {status}: {reply}")
        item_bytes = item_size(stack.host_item(host))
        catalog_after = item_size(stack.catalog_item(host))
        calls = Counter(stack.meter.calls)
        # Each UpdateItem of the post is billed on the larger of the item before and
        # after (the ones in between are bounded by the larger).
        host_wcu = calls["dynamodb.UpdateItem(hosts)"] * write_units(before, item_bytes)
        # The catalog: one consistent GetItem (1 unit per 4 KB read), one PutItem (the
        # larger of the old and new item, per KB).
        rcu = calls["dynamodb.GetItem(series)"] * max(1, math.ceil(catalog_before / 4096))
        wcu = calls["dynamodb.PutItem(series)"] * write_units(catalog_before, catalog_after)
        if calls["dynamodb.PutItem(series)"]:
            catalog_bytes = catalog_after
        kib = kib_old = size_sum = request_bytes = 0
        for common, sent in stack.meter.writes:
            request_bytes += timestream_request_bytes(common, sent)
            kib += timestream_request_kib(common, sent)
        records = stack.meter.records()
        for r in records:
            b = timestream_record_bytes(r)
            size_sum += b
            kib_old += max(1, math.ceil(b / KIB))
        posts.append(
            _Post(
                calls,
                host_wcu,
                rcu,
                wcu,
                len(records),
                len(stack.meter.writes),
                kib,
                kib_old,
                request_bytes,
                size_sum,
                cpu,
                int(reply.get("accepted", 0)),
                stack.meter.token_cpu_s,
            )
        )
    plain = [p for p in posts[steady_from:] if not p.writes_catalog] or posts[steady_from:]
    writing = [p for p in posts if p.writes_catalog]
    every = catalog_every.total_seconds() / 60
    rate = 1 / every if writing else 0.0
    catalog = writing[-1] if writing else None

    def steady(get: Any) -> float:
        base = statistics.fmean(get(p) for p in plain)
        return base + rate * (get(catalog) - base) if catalog is not None else base

    names = {k for p in plain for k in p.requests} | set(catalog.requests if catalog else ())
    return PostFigures(
        requests=Counter({k: steady(lambda p, k=k: p.requests.get(k, 0)) for k in names}),  # type: ignore[misc]
        write_units=steady(lambda p: p.host_wcu),
        item_bytes=item_bytes,
        ts_records=steady(lambda p: p.ts_records),
        ts_calls=steady(lambda p: p.ts_calls),
        ts_write_kib=steady(lambda p: p.ts_kib),
        ts_write_kib_per_record=steady(lambda p: p.ts_kib_old),
        ts_request_bytes=steady(lambda p: p.ts_request_bytes),
        ts_bytes=steady(lambda p: p.ts_bytes),
        # CPU: the plain posts' (a catalog post's own is the first post's, cold clients).
        cpu_s=statistics.fmean(p.cpu_s for p in plain),
        accepted=round(statistics.fmean(p.accepted for p in plain)),
        reply=reply,
        catalog_read_units=steady(lambda p: p.catalog_rcu),
        catalog_write_units=steady(lambda p: p.catalog_wcu),
        catalog_bytes=catalog_bytes,
        catalog_every=every if writing else 0.0,
        token_cpu_s=statistics.fmean(p.token_cpu_s for p in plain),
    )


@dataclass
class EvalFigures:
    cpu_per_host_s: float
    read_units_per_host: float
    requests: Counter[str]


def run_evaluation(stack: Stack, item: dict[str, Any], fleet: int) -> EvalFigures:
    """Evaluations over `fleet` and `3 * fleet` copies of `item` (real Scan pages, parsed
    by botocore): the CPU per host is the difference over the hosts added, so the
    evaluation's fixed part (its other tables, its start) is not charged to the host,
    as for one host of a large fleet. The best of 3 runs at each size."""
    sizes = (fleet, 3 * fleet)
    cpu: dict[int, float] = {}
    requests: Counter[str] = Counter()
    for n in sizes:
        names = [f"copy-{i:06d}.example.com" for i in range(n)]
        _copies(stack, item, names, "PutRequest")
        stack.services.alerting.evaluate(stack.now)  # warm: rules loaded, transitions made
        runs = []
        for run in range(3):
            stack.meter.reset()
            started = time.thread_time()
            stack.services.alerting.evaluate(stack.now + timedelta(seconds=5 + run))
            runs.append(time.thread_time() - started)
        cpu[n] = min(runs)
        requests = Counter(stack.meter.calls)
        _copies(stack, item, names, "DeleteRequest")
    per_host = max(0.0, (cpu[sizes[1]] - cpu[sizes[0]]) / (sizes[1] - sizes[0]))
    # A Scan reads eventually consistent: half a unit per 4 KB of a page's items, summed
    # before rounding (1 MB pages: the rounding is under 0.4% of a page).
    read_units_per_host = item_size(item) / 4096 * 0.5
    return EvalFigures(per_host, read_units_per_host, requests)


def _copies(stack: Stack, item: dict[str, Any], names: list[str], request: str) -> None:
    table = stack.settings.hosts_table
    for start in range(0, len(names), 25):
        stack.reader.batch_write_item(
            RequestItems={
                table: [
                    {"PutRequest": {"Item": {**item, "host": {"S": n}}}}
                    if request == "PutRequest"
                    else {"DeleteRequest": {"Key": {"host": {"S": n}}}}
                    for n in names[start : start + 25]
                ]
            }
        )


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


@dataclass(frozen=True)
class TokenRequests:
    """The fleet token's requests per post. Every host of a fleet sends the same token;
    each warm API container caches its record for FLEETPULSE_TOKEN_CACHE_SECONDS, so the
    fleet reads it (GetItem, consistent: 1 read unit) once per container per cache period,
    and records its use (UpdateItem, 1 write unit) about once an hour (`TOUCH_EVERY`;
    at most once per container, the bound counted here)."""

    gets: float
    touches: float

    @classmethod
    def model(cls, hosts: int, containers: int, cache_s: int) -> TokenRequests:
        posts_per_minute = hosts  # one post a minute each
        containers = max(1, min(containers, hosts))
        refreshes = containers * (60 / cache_s) if cache_s else posts_per_minute
        gets = min(1.0, refreshes / posts_per_minute)
        touches = min(1.0, containers / (60 * posts_per_minute))
        return cls(gets, touches)


def lambda_seconds(
    cpu_s: float, requests: Counter[str], deploy: Deploy, memory_mb: int | None = None
) -> float:
    """Billed duration: CPU stretched by the memory's vCPU share, plus AWS round trips."""
    share = min(1.0, (memory_mb or deploy.memory_mb) / FULL_VCPU_MB)
    wait = sum(n * LATENCY_S.get(op.split(".")[0], 0.0) for op, n in requests.items())
    return cpu_s / share + wait


def host_month(
    post: PostFigures,
    ev: EvalFigures,
    deploy: Deploy,
    tokens: TokenRequests,
    capacity: Capacity,
    *,
    posts: int = POSTS_PER_MONTH,
    per_record_writes: bool = False,
    log_bytes: float = 0.0,  # a post's CloudWatch Logs events
) -> dict[str, float]:
    p = PRICES
    gbs = p["lambda_arm64" if deploy.architecture == "arm64" else "lambda_x86_64"].usd
    memory_gb = deploy.memory_mb / 1024
    bytes_per_hour = post.ts_bytes * 60
    path = "function_url" if deploy.request_path == "function-url" else "apigw_rest"
    # The handler's round trips: the post's own requests with the modelled token reads.
    waits = Counter(post.requests)
    waits["dynamodb.GetItem(tokens)"] = tokens.gets
    waits["dynamodb.UpdateItem(tokens)"] = tokens.touches
    # The post's CPU with the token read only as often as the model says (each post of
    # the run read it: its CPU inside that GetItem is measured).
    cpu_s = post.cpu_s - post.token_cpu_s * (1 - tokens.gets)
    post_lambda_s = lambda_seconds(cpu_s, waits, deploy)
    eval_lambda_s = lambda_seconds(ev.cpu_per_host_s, Counter(), deploy, deploy.eval_memory_mb)
    kib = post.ts_write_kib_per_record if per_record_writes else post.ts_write_kib
    return {
        "timestream writes": posts * kib * p["timestream_write"].usd,
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
        "dynamodb writes (host item)": capacity.writes(post.write_units),
        "dynamodb instance_id index (its minimum, shared)": capacity.index_floor(),
        "cloudwatch logs (ingest)": posts * log_bytes / GB * p["cw_logs_ingest"].usd,
        # Stored as ingested for LogRetentionDays (an upper bound: CloudWatch compresses).
        "cloudwatch logs (storage)": posts
        * log_bytes
        / GB
        * deploy.log_retention_d
        / (HOURS_PER_MONTH / 24)
        * p["cw_logs_storage"].usd,
        "dynamodb series catalog": posts
        * (
            post.catalog_read_units * p["ddb_read"].usd
            + post.catalog_write_units * p["ddb_write"].usd
        ),
        "dynamodb token reads and writes": posts
        * (tokens.gets * p["ddb_read"].usd + tokens.touches * p["ddb_write"].usd),
        "dynamodb storage": (post.item_bytes + post.catalog_bytes) / GB * p["ddb_storage"].usd,
        "evaluation reads": capacity.scan_reads(ev.read_units_per_host),
        "evaluation compute": EVALUATIONS_PER_MONTH
        * eval_lambda_s
        * deploy.eval_memory_mb
        / 1024
        * gbs,
    }


STORAGE = ("timestream writes", "timestream memory store", "timestream magnetic store")


def cloudwatch_month(body: dict[str, Any]) -> dict[str, float]:
    """The CloudWatch agent publishing the same fields: one custom metric per field and
    tag set, one PutMetricData a minute (up to 1,000 metrics a request)."""
    metrics = metric_count(body)
    return {
        "custom metrics": metrics * PRICES["cw_metric"].usd,
        "PutMetricData": POSTS_PER_MONTH
        * math.ceil(field_count(body) / 1000)
        * PRICES["cw_put"].usd,
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


def show_catalog(post: PostFigures) -> None:
    if not post.catalog_every:
        print("  series catalog: not written")
        return
    print(
        f"  series catalog: {post.catalog_bytes} B, written once every {post.catalog_every:.0f}"
        f" posts in the steady state: {post.catalog_read_units:.4f} read and"
        f" {post.catalog_write_units:.4f} write units a post"
    )


def show_bill(title: str, bill: dict[str, float]) -> None:
    print(f"\n{title}")
    for name, usd in bill.items():
        print(f"  {name:<34} ${usd:9.4f}")
    total = sum(bill.values())
    other = sum(v for k, v in bill.items() if k not in STORAGE)
    print(f"  {'total':<34} ${total:9.4f}")
    print(f"  {'of which not metric storage':<34} ${other:9.4f}")


def compare_validation(
    stack: Stack, bodies: list[dict[str, Any]], profile: Any = None
) -> tuple[float, float]:
    """Handler CPU per post with botocore's parameter validation on (before) and off (the
    app's clients now), alternating post by post over the same host item; `profile`
    watches the posts without it (and is not counted in the figures)."""
    from chalicelib.wiring import use

    unchecked, checked = stack.services, stack.checked_services()
    cpu: dict[bool, list[float]] = {True: [], False: []}
    for i, body in enumerate(bodies):
        with_checks = i % 2 == 0
        warming = i < 2  # the first post of each builds its clients and adapters
        use(checked if with_checks else unchecked)
        stack.now = stack.now + timedelta(minutes=1)
        status, reply, spent = stack.post(body)
        if status != 202:
            raise SystemExit(f"post answered {status}: {reply}")
        if not warming:
            cpu[with_checks].append(spent)
        if profile is not None and not warming and not with_checks:
            stack.now = stack.now + timedelta(seconds=1)
            again = shifted(body, 1000)
            profile.enable()
            stack.post(again)
            profile.disable()
    use(unchecked)
    # The median: a post that shares the machine's cores with a neighbour's burst is noise.
    return statistics.median(cpu[True] or [0.0]), statistics.median(cpu[False] or [0.0])


def show_profile(profile: Any, posts: int, top: int = 15) -> None:
    import pstats

    stats = pstats.Stats(profile)
    print(f"\nhandler profile, {posts} posts, top {top} by own CPU time (ms a post):")
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]  # type: ignore[attr-defined]
    for (filename, line, name), (_, calls, tottime, cumtime, _) in rows:
        where = "/".join(Path(filename).parts[-2:])
        print(
            f"  {tottime / posts * 1000:7.2f} own {cumtime / posts * 1000:7.2f} cum "
            f"{calls // posts:6d} calls  {where}:{line} {name}"
        )


def main() -> int:
    from chalicelib.core.hosts import CATALOG_MIN_INTERVAL, CATALOG_REFRESH, CATALOG_SHAPES
    from chalicelib.core.instants import ms_of_instant

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=int, default=70, help="posts, one a minute")
    # moto's Scan slows down with the square of the table's size: a few copies are enough
    # for the per-host CPU (the difference between this many and three times as many).
    parser.add_argument("--fleet", type=int, default=10, help="host items in the evaluation")
    parser.add_argument(
        "--bad-minutes",
        type=int,
        default=CATALOG_SHAPES + 3,
        help="posts of the bad sender (its steady state begins after CATALOG_SHAPES)",
    )
    parser.add_argument(
        "--fleet-hosts", type=int, default=1000, help="hosts sharing one fleet token"
    )
    parser.add_argument(
        "--containers", type=int, default=10, help="warm API containers serving that fleet"
    )
    parser.add_argument(
        "--compare-posts", type=int, default=40, help="posts timed with and without checks"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the steady posts")
    args = parser.parse_args()

    print(f"us-east-1 list prices, checked {CHECKED}:")
    for name, price in PRICES.items():
        print(f"  {name:<20} ${price.usd:<13.10g} per {price.unit:<34} {price.source}")

    deploy = deploy_settings()
    print(
        f"\ndeploy defaults: API {deploy.memory_mb} MB, evaluate {deploy.eval_memory_mb} MB, "
        f"{deploy.architecture}, memory store {deploy.memory_retention_h} h, magnetic "
        f"{deploy.magnetic_retention_d} d, requests via {deploy.request_path}, logs at"
        f" {deploy.log_level}, platform lines {'on' if deploy.platform_logs else 'off'},"
        f" log retention {deploy.log_retention_d} d"
    )
    with tempfile.TemporaryDirectory() as tmp:
        body = agent_body(Path(tmp))
    instants = sorted({p["time"] for p in body["points"]})
    print(
        f"agent body on this machine: {len(body['points'])} points at {len(instants)} instants, "
        f"{field_count(body)} fields, {len(json.dumps(body))} bytes of JSON"
    )
    now_ms = ms_of_instant(datetime(2026, 11, 21, 12, 0, tzinfo=UTC))
    first = instants[0]
    bodies = [shifted(body, now_ms + (i + 1) * 60_000 - first) for i in range(args.minutes)]

    import cProfile

    profile = cProfile.Profile(time.thread_time) if args.profile else None
    stack = Stack(deploy)
    try:
        steady_from = min(60, args.minutes - 5)
        post = run_posts(
            stack, bodies, steady_from=steady_from, host=body["host"], catalog_every=CATALOG_REFRESH
        )
        later = [
            shifted(body, now_ms + (args.minutes + i + 1) * 60_000 - first)
            for i in range(args.compare_posts)
        ]
        checked_cpu, unchecked_cpu = compare_validation(stack, later, profile)
        logged = measure_logs(
            stack,
            [
                shifted(body, now_ms + (args.minutes + args.compare_posts + i + 1) * 60_000 - first)
                for i in range(10)
            ],
            deploy,
        )
        item = stack.host_item(body["host"])
        ev = run_evaluation(stack, item, args.fleet)
        bad_host = "statsd-storm.example.com"
        bad = run_posts(
            stack,
            [
                bad_sender_body(ms_of_instant(stack.now), i + 1, bad_host)
                for i in range(args.bad_minutes)
            ],
            # its first CATALOG_SHAPES posts write the catalog; from then on, once an hour
            steady_from=min(CATALOG_SHAPES, args.bad_minutes - 1),
            host=bad_host,
            catalog_every=CATALOG_MIN_INTERVAL,
        )
        bad_item = stack.host_item(bad_host)
        bad_ev = run_evaluation(stack, bad_item, args.fleet)
    finally:
        stack.close()

    print(
        f"\nper post: {dict(post.requests)}; host item {post.item_bytes} B -> "
        f"{post.write_units:.2f} write units; handler CPU {post.cpu_s * 1000:.1f} ms, of which"
        f" {post.token_cpu_s * 1000:.1f} ms in the token's GetItem (every post here; priced"
        " at the fleet token's rate below)"
    )
    show_catalog(post)
    print(
        f"timestream, per post: {post.ts_records:.0f} records in {post.ts_calls:.0f} WriteRecords"
        f" calls; {post.ts_bytes:.0f} B stored ({post.ts_bytes / max(post.ts_records, 1):.0f} B"
        f" a record), {post.ts_request_bytes:.0f} B metered with the common attributes once"
    )
    print(
        f"  write units: {post.ts_write_kib:.0f} KiB a post as documented (each WriteRecords"
        f" call in 1 KiB units, metering-and-pricing.writes); the old reading, each record in"
        f" whole KiB: {post.ts_write_kib_per_record:.0f} KiB"
        f" ({post.ts_write_kib_per_record / max(post.ts_write_kib, 1):.1f}x)"
    )
    saved = 1 - unchecked_cpu / checked_cpu if checked_cpu else 0.0
    print(
        f"ingest handler CPU per post (app.app with a function URL event, median of"
        f" {args.compare_posts} posts alternating): botocore parameter validation on"
        f" {checked_cpu * 1000:.1f} ms,"
        f" off (now) {unchecked_cpu * 1000:.1f} ms ({saved:.0%} less)"
    )
    if profile is not None:
        show_profile(profile, max(args.compare_posts // 2 - 1, 1))
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
    gbs = PRICES["lambda_arm64" if deploy.architecture == "arm64" else "lambda_x86_64"].usd
    sizes = []
    for mb in (256, 512, 1024, 1769):
        sized = Deploy(mb, mb, deploy.architecture, 0, 0, deploy.request_path)
        seconds = lambda_seconds(post.cpu_s, post.requests, sized)
        usd = POSTS_PER_MONTH * seconds * mb / 1024 * gbs
        sizes.append(f"{mb} MB {seconds * 1000:.0f} ms ${usd:.4f}")
    print(
        f"ingest handler per post and a host-month, by memory ({deploy.architecture}): "
        + "; ".join(sizes)
    )

    cache_s = int(stack.settings.token_cache.total_seconds())
    alone = TokenRequests.model(1, 1, cache_s)
    fleet = TokenRequests.model(args.fleet_hosts, args.containers, cache_s)
    print(
        f"fleet token, per post: one host alone {alone.gets:.3f} GetItem"
        f" {alone.touches:.4f} UpdateItem; {args.fleet_hosts} hosts over {args.containers} warm"
        f" containers (cache {cache_s} s) {fleet.gets:.4f} GetItem {fleet.touches:.6f} UpdateItem"
        f" (measured for one host: {post.requests.get('dynamodb.GetItem(tokens)', 0):.2f} GetItem)"
    )
    waits = Counter(post.requests)
    waits["dynamodb.GetItem(tokens)"] = fleet.gets
    duration = lambda_seconds(post.cpu_s - post.token_cpu_s * (1 - fleet.gets), waits, deploy)
    # Max Memory Used: three digits, as the API function's reports show at 256 MB
    # (bench/rss.py: 24 to 74 MB of Python, plus the runtime's 30 to 40).
    platform = platform_lines(duration * 1000, deploy.memory_mb, 100)
    logged.platform_bytes = event_bytes(platform)
    print(
        f"cloudwatch logs, per post at POWERTOOLS_LOG_LEVEL={deploy.log_level}, metrics"
        f" {'on' if deploy.metrics else 'off'} (measured over 10 posts): {logged.app_events:.1f}"
        f" events, {logged.app_bytes:.0f} B from the handler (each event's bytes + 26);"
        f" Lambda's START, END and REPORT lines {logged.platform_bytes} B"
        f" ({', '.join(str(len(line)) for line in platform)} B + 3 x 26)"
    )
    for line in logged.sample:
        print(f"  handler: {line}")
    print(f"  platform: {platform[-1]!r}")
    with_platform = logged.app_bytes + logged.platform_bytes
    log_bytes = logged.app_bytes if not deploy.platform_logs else with_platform
    capacity = Capacity.of(deploy, args.fleet_hosts)
    on_demand = Capacity.of(replace(deploy, hosts_billing="PAY_PER_REQUEST"), args.fleet_hosts)
    print(
        f"hosts table: {deploy.hosts_billing} (the template's default); provisioned: auto"
        f" scaling at {deploy.hosts_target:.0f}% of the write units and"
        f" {deploy.hosts_read_target:.0f}% of the read units, at least"
        f" {deploy.hosts_write_min} write and {deploy.hosts_read_min} read units for the"
        f" table and for its index; {args.fleet_hosts} hosts need"
        f" {args.fleet_hosts * post.write_units / 60 / (deploy.hosts_target / 100):.1f} write"
        " and"
        f" {args.fleet_hosts * ev.read_units_per_host / 60 / (deploy.hosts_read_target / 100):.1f}"
        " read units"
    )
    bill = host_month(post, ev, deploy, fleet, capacity, log_bytes=log_bytes)
    show_bill(
        f"one host of {args.fleet_hosts}, one post a minute, a month (Timestream writes as"
        " documented):",
        bill,
    )
    show_bill(
        "the same, a host with a token of its own (read on every post):",
        host_month(post, ev, deploy, alone, capacity, log_bytes=log_bytes),
    )
    loud = host_month(post, ev, deploy, fleet, capacity, log_bytes=with_platform)
    quiet = host_month(post, ev, deploy, fleet, capacity, log_bytes=logged.app_bytes)
    print(
        f"  cloudwatch logs with Lambda's platform lines (FLEETPULSE_PLATFORM_LOGS=true):"
        f" ingest ${loud['cloudwatch logs (ingest)']:.4f} storage"
        f" ${loud['cloudwatch logs (storage)']:.4f}; without (the default):"
        f" ingest ${quiet['cloudwatch logs (ingest)']:.4f} storage"
        f" ${quiet['cloudwatch logs (storage)']:.4f}"
    )
    one_hour = host_month(post, ev, replace(deploy, memory_retention_h=1), fleet, capacity)
    print(
        f"  memory store at Timestream's minimum (1 h): ${one_hour['timestream memory store']:.4f}"
    )
    old = host_month(post, ev, deploy, fleet, capacity, per_record_writes=True)
    print(
        f"  timestream writes at the old reading (each record in whole KiB): "
        f"${old['timestream writes']:.4f}, total ${sum(old.values()):.4f}"
    )
    before = host_month(
        replace(post, cpu_s=checked_cpu),
        ev,
        replace(deploy, architecture="x86_64"),
        alone,
        on_demand,
        per_record_writes=True,
        log_bytes=with_platform,
    )
    demand = host_month(post, ev, deploy, fleet, on_demand, log_bytes=log_bytes)
    print(
        "  the hosts table on demand (HostsTableBillingMode=PAY_PER_REQUEST): host item"
        f" ${demand['dynamodb writes (host item)']:.4f}, evaluation reads"
        f" ${demand['evaluation reads']:.4f}; total ${sum(demand.values()):.4f}, of which"
        f" not metric storage ${sum(v for k, v in demand.items() if k not in STORAGE):.4f}"
    )
    print(
        "\nbefore (each record metered in whole KiB, x86_64, botocore validation on, the"
        " token read every post, Lambda's platform lines, the hosts table on demand) and"
        " now, a host-month:"
    )
    for name, usd in bill.items():
        print(f"  {name:<34} ${before[name]:9.4f} ${usd:9.4f}")
    for title, keys in (("total", list(bill)), ("of which not metric storage", None)):
        chosen = keys or [k for k in bill if k not in STORAGE]
        print(
            f"  {title:<34} ${sum(before[k] for k in chosen):9.4f}"
            f" ${sum(bill[k] for k in chosen):9.4f}"
        )
    cw = cloudwatch_month(body)
    show_bill(f"the CloudWatch agent publishing the same {metric_count(body)} metrics:", cw)
    print(f"  ratio CloudWatch / fleetpulse: {sum(cw.values()) / sum(bill.values()):.0f}x")

    print(
        f"\nbad sender, 5,000 new series a minute: per post {dict(bad.requests)}; host item "
        f"{bad.item_bytes} B -> {bad.write_units:.2f} write units; reply {json.dumps(bad.reply)[:160]}"
    )
    show_catalog(bad)
    # Its logs taken as a normal post's (not measured for it).
    bad_bill = host_month(bad, bad_ev, deploy, fleet, capacity, log_bytes=log_bytes)
    show_bill("the bad sender, a month:", bad_bill)

    def ddb_and_eval(b: dict[str, float]) -> float:
        return sum(v for k, v in b.items() if k.startswith(("dynamodb", "evaluation")))

    ratio = ddb_and_eval(bad_bill) / ddb_and_eval(bill)
    bad_demand = host_month(bad, bad_ev, deploy, fleet, on_demand, log_bytes=log_bytes)
    print(
        f"  its DynamoDB + evaluation cost vs a normal host's: {ratio:.1f}x"
        f" ({ddb_and_eval(bad_demand) / ddb_and_eval(demand):.1f}x with the hosts table on"
        " demand)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
