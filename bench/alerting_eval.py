#!/usr/bin/env python3
"""One alerting evaluation at 1,000 and 10,000 hosts x 20 rules: compute, and DynamoDB requests.

Hosts look like what the agent sends (about 20 series and 200 fields each,
two services); 2% of them breach a rule, and a few are silent. Two figures,
measured in one run:

- pure compute: `chalicelib.core.evaluation.evaluate` alone (hosts, open
  alerts, silences and the time in; changes out), median of several runs,
  plus the time to decode the hosts' DynamoDB items (the adapter's part);
- requests per evaluation: the whole use-case (AlertingService) over
  counting fakes of the stores, which count what the DynamoDB adapters send:
  one Scan page per MB of items (item size as DynamoDB documents it), one
  request per conditional write, one Publish per notification. At 1,000
  hosts the same two evaluations also run through the real adapters against
  moto, counted with a botocore hook on the clients, as a cross-check (moto
  pages at 1 MB too, but sizes numbers as their text, so it pages a little
  sooner). A first evaluation (the breaching hosts go pending, the silent
  ones down), then a quiet one 5 s later.

    .venv/bin/python bench/alerting_eval.py [--hosts 1000 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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

from chalicelib.adapters.dynamodb import (  # noqa: E402
    alert_to_item,
    ddb_number,
    snapshot_from_item,
    to_item,
)
from chalicelib.core.evaluation import AlertingPolicy, evaluate  # noqa: E402
from chalicelib.core.hosts import host_update  # noqa: E402
from chalicelib.core.instants import ms_of_instant  # noqa: E402
from chalicelib.core.models import Event, EventStatus, HostReport, Point  # noqa: E402
from chalicelib.core.rules import parse_rules  # noqa: E402
from chalicelib.core.silences import parse_silence  # noqa: E402
from chalicelib.services.alerting import AlertingService  # noqa: E402
from tests.support.memory import (  # noqa: E402
    InMemoryAlertPublisher,
    InMemoryAlertStore,
    InMemoryHostStore,
    InMemoryMetricStore,
    InMemorySilenceStore,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
BREACHING = 0.02
SILENT = 0.005
# Hosts last posted up to 50 s before NOW: a second evaluation soon after sees them
# all still up, and finds nothing to change.
QUIET_AFTER = timedelta(seconds=5)


def rule(
    name: str, measurement: str, field: str, op: str, *levels: float, **kw: Any
) -> dict[str, Any]:
    warning, critical = levels
    return {
        "name": name,
        "measurement": measurement,
        "field": field,
        "op": op,
        "warning": warning,
        "critical": critical,
        **kw,
    }


RULES = [
    rule(
        "cpu-busy", "cpu", "idle", "<", 10, 3, recovery=20, **{"for": "10m"}, match={"cpu": "total"}
    ),
    rule("cpu-iowait", "cpu", "iowait", ">", 30, 60, **{"for": "15m"}, match={"cpu": "total"}),
    rule("cpu-steal", "cpu", "steal", ">", 20, 50, **{"for": "15m"}),
    rule("cpu-system", "cpu", "system", ">", 50, 80, **{"for": "15m"}),
    rule("memory-high", "memory", "used_percent", ">", 90, 97, **{"for": "5m"}),
    rule("swap-high", "swap", "used_percent", ">", 50, 80, **{"for": "15m"}),
    rule(
        "disk-full",
        "disk",
        "used_percent",
        ">",
        85,
        95,
        recovery=82,
        **{"for": "5m"},
        match={"fstype": "!tmpfs"},
        summary="Disk {tags[mount]} at {value:.0f}% on {host}",
    ),
    rule("disk-inodes", "disk", "inodes_used_percent", ">", 85, 95, **{"for": "5m"}),
    rule("load-per-core", "system", "load5", ">", 2, 4, divide_by="n_cpus", **{"for": "15m"}),
    rule("load1-per-core", "system", "load1", ">", 4, 8, divide_by="n_cpus", **{"for": "5m"}),
    rule("file-handles", "system", "file_handles", ">", 500000, 900000),
    rule("diskio-busy", "diskio", "util_percent", ">", 80, 95, **{"for": "10m"}),
    rule("diskio-writes", "diskio", "write_bytes_per_s", ">", 4e8, 8e8, **{"for": "10m"}),
    rule("net-rx", "net", "rx_bytes_per_s", ">", 1e9, 2e9, **{"for": "5m"}),
    rule("net-errors", "net", "rx_errors", ">", 10, 100, **{"for": "5m"}),
    rule("net-drops", "net", "tx_drops", ">", 10, 100, **{"for": "5m"}),
    rule("tcp-close-wait", "tcp", "close_wait", ">", 500, 2000, **{"for": "10m"}),
    rule("tcp-time-wait", "tcp", "time_wait", ">", 20000, 50000, **{"for": "10m"}),
    rule("zombies", "processes", "zombie", ">", 5, 50, **{"for": "30m"}),
    rule("blocked", "processes", "blocked", ">", 10, 50, **{"for": "10m"}),
]
STATS = ("", "_min", "_max", "_last")


def agent_points(now_ms: int, rnd: random.Random, breach: bool) -> list[Point]:
    """About what the agent posts each interval: ~20 series, gauges with min/max/last."""

    def gauges(**fields: float) -> dict[str, float]:
        return {
            f + s: round(v * rnd.uniform(0.9, 1.1), 3) for f, v in fields.items() for s in STATS
        }

    disk_used = 97.0 if breach else rnd.uniform(20, 70)
    points = [
        Point(
            "cpu", now_ms, {"cpu": "total"}, gauges(user=20, system=5, iowait=1, steal=0.5, idle=73)
        ),
        Point(
            "memory",
            now_ms,
            {},
            {
                "total_bytes": 8e9,
                "available_bytes": 4e9,
                "used_bytes": 4e9,
                **gauges(used_percent=50),
            },
        ),
        Point(
            "swap", now_ms, {}, {"total_bytes": 2e9, "used_bytes": 1e8, **gauges(used_percent=5)}
        ),
        Point(
            "system",
            now_ms,
            {},
            {
                "load1": 0.5,
                "load5": 0.6,
                "load15": 0.7,
                "uptime_s": 86400,
                "n_cpus": 4,
                "file_handles": 2000,
                "file_handles_max": 1e6,
            },
        ),
        Point(
            "processes", now_ms, {}, gauges(total=200, running=2, blocked=0, zombie=0, threads=600)
        ),
        Point(
            "tcp",
            now_ms,
            {},
            {"established": 40, "time_wait": 100, "close_wait": 2, "listen": 10, "syn_sent": 0},
        ),
    ]
    for i, mount in enumerate(("/", "/var", "/data")):
        used = disk_used if i == 0 else rnd.uniform(10, 60)
        points.append(
            Point(
                "disk",
                now_ms,
                {"mount": mount, "device": f"nvme0n1p{i}", "fstype": "ext4"},
                {
                    "total_bytes": 1e11,
                    "used_bytes": used * 1e9,
                    "used_percent": used,
                    "inodes_used_percent": 5.0,
                },
            )
        )
    for device in ("nvme0n1", "nvme1n1"):
        points.append(
            Point(
                "diskio",
                now_ms,
                {"device": device},
                gauges(
                    read_bytes_per_s=1e6,
                    write_bytes_per_s=2e6,
                    reads_per_s=50,
                    writes_per_s=80,
                    util_percent=10,
                ),
            )
        )
    for iface in ("eth0", "eth1"):
        points.append(
            Point(
                "net",
                now_ms,
                {"interface": iface},
                {
                    **gauges(
                        rx_bytes_per_s=1e6,
                        tx_bytes_per_s=1e6,
                        rx_packets_per_s=900,
                        tx_packets_per_s=800,
                    ),
                    "rx_errors": 0,
                    "tx_errors": 0,
                    "rx_drops": 0,
                    "tx_drops": 0,
                },
            )
        )
    for app in ("api", "worker", "statsd"):
        points.append(
            Point(app, now_ms, {"source": "statsd", "type": "timer"}, gauges(p50=12.0, p99=80.0))
        )
    return points


def low_level(value: Any) -> Any:
    """Plain values (as the in-memory store keeps them) with numbers DynamoDB can hold."""
    if isinstance(value, dict):
        return {k: low_level(v) for k, v in value.items() if v is not None}
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return ddb_number(value)


def fleet(n: int, seed: int = 7) -> InMemoryHostStore:
    """`n` hosts, written through the collector's own path (host_update)."""
    rnd = random.Random(seed)
    store = InMemoryHostStore()
    watch = policy().rules.by_measurement  # as the ingest narrows what an item keeps
    for i in range(n):
        silent = rnd.random() < SILENT
        seen = NOW - (timedelta(minutes=10) if silent else timedelta(seconds=rnd.uniform(0, 50)))
        seen_ms = ms_of_instant(seen)
        report = HostReport(
            host=f"host-{i:05d}.example.com",
            tags={
                "role": rnd.choice(["web", "db", "batch", "cache"]),
                "env": "prod",
                "az": f"az{i % 3}",
            },
            interval_s=60,
            points=agent_points(seen_ms, rnd, breach=rnd.random() < BREACHING),
            events=[
                Event("backup", EventStatus.OK, seen_ms, 86_400_000, "done"),
                Event("nginx", EventStatus.OK, seen_ms, None, ""),
            ],
        )
        store.record(host_update(report, seen, watch=watch))
    return store


def item_size(value: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it: names and values in bytes; a number about
    one byte per two significant digits plus one; a map or list 3 bytes plus 1 per element."""

    def size(v: dict[str, Any]) -> int:
        ((kind, inner),) = v.items()
        if kind == "S":
            return len(inner.encode())
        if kind == "N":
            return len(inner.strip("-").replace(".", "").strip("0")) // 2 + 1
        if kind in ("BOOL", "NULL"):
            return 1
        if kind == "M":
            return 3 + sum(len(k.encode()) + size(x) + 1 for k, x in inner.items())
        if kind == "L":
            return 3 + sum(size(x) + 1 for x in inner)
        raise ValueError(kind)

    return sum(len(k.encode()) + size(v) for k, v in value.items())


PAGE_BYTES = 1024 * 1024


class Counting:
    """Counts the requests the DynamoDB adapters would send, for the in-memory stores:
    a Scan page per MB of items, one request per conditional write."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def pages(self, table: str, sizes: list[int]) -> None:
        pages, used = 1, 0
        for size in sizes:
            if used + size > PAGE_BYTES:
                pages, used = pages + 1, 0
            used += size
        self.calls[f"Scan {table}"] += pages


class CountingHostStore(InMemoryHostStore):
    def __init__(
        self, items: dict[str, dict[str, Any]], sizes: list[int], counting: Counting
    ) -> None:
        super().__init__()
        self.items = items
        self.sizes = sizes
        self.counting = counting

    def scan(self, fields: Any = None) -> list[Any]:
        self.counting.pages("hosts", self.sizes)
        return super().scan(fields)

    def mark_down(self, host: str, last_seen_at: datetime) -> bool:
        self.counting.calls["UpdateItem hosts"] += 1
        return super().mark_down(host, last_seen_at)

    def prune(self, host: str, services: dict[str, int]) -> bool:
        self.counting.calls["UpdateItem hosts"] += 1
        return super().prune(host, services)

    def forget(self, host: str, last_seen_at: datetime) -> bool:
        self.counting.calls["DeleteItem hosts"] += 1
        return super().forget(host, last_seen_at)


class CountingAlertStore(InMemoryAlertStore):
    def __init__(self, counting: Counting) -> None:
        super().__init__()
        self.counting = counting

    def scan(self) -> list[Any]:
        records = super().scan()
        self.counting.pages(
            "alerts", [item_size(to_item(low_level(alert_to_item(r)))) for r in records]
        )
        return records

    def put(self, record: Any, expected_version: int | None) -> bool:
        self.counting.calls["PutItem alerts"] += 1
        return super().put(record, expected_version)

    def delete(self, alert_id: str, expected_version: int) -> bool:
        self.counting.calls["DeleteItem alerts"] += 1
        return super().delete(alert_id, expected_version)


class CountingSilenceStore(InMemorySilenceStore):
    def __init__(self, counting: Counting) -> None:
        super().__init__()
        self.counting = counting

    def list(self) -> list[Any]:
        self.counting.calls["Scan silences"] += 1
        return super().list()


class CountingPublisher(InMemoryAlertPublisher):
    def __init__(self, counting: Counting) -> None:
        super().__init__()
        self.counting = counting

    def publish(self, message: Any) -> None:
        self.counting.calls["Publish topic"] += 1
        super().publish(message)


def policy() -> AlertingPolicy:
    return AlertingPolicy(parse_rules({"rules": RULES}))


def compute(items: list[dict[str, Any]], runs: int) -> tuple[float, float, int]:
    """(median evaluate seconds, decode seconds, alerts open) over a fleet with its alerts."""
    pol = policy()
    # The adapter decodes a 1 MB page at a time and drops it; here every item is
    # alive at once, so the collector would keep walking them: freeze them first.
    gc.collect()
    gc.freeze()
    started = time.perf_counter()
    hosts = [snapshot_from_item(item, pol.fields_used) for item in items]
    decode = time.perf_counter() - started
    silences = [
        parse_silence(
            {"matchers": {"role": "batch", "rule": "zombies"}, "duration": "2h"},
            silence_id="s",
            now=NOW,
        )
    ]
    # A first evaluation opens the breaching hosts' alerts; time the next ones,
    # which see those alerts: the steady state of a fleet with a few problems.
    first = evaluate(hosts, {}, silences, pol, NOW)
    # Each alert as its first write left it (the notification not yet confirmed).
    written = [next(c.writes()).after for c in first.alerts]
    alerts = {r.alert_id: replace(r, outbox=None) for r in written if r is not None}
    times = []
    for r in range(runs):
        gc.collect()
        t0 = time.perf_counter()
        evaluate(hosts, alerts, silences, pol, NOW + timedelta(milliseconds=r))
        times.append(time.perf_counter() - t0)
    gc.unfreeze()
    return statistics.median(times), decode, len(alerts)


def counted_runs(
    store: InMemoryHostStore, items: list[dict[str, Any]]
) -> tuple[Counter[str], Counter[str]]:
    """Requests of a first evaluation and of a quiet one just after (counting fake)."""
    counting = Counting()
    hosts = CountingHostStore(dict(store.items), [item_size(i) for i in items], counting)
    service = AlertingService(
        hosts=hosts,
        alerts=CountingAlertStore(counting),
        silences=CountingSilenceStore(counting),
        publisher=lambda: CountingPublisher(counting),
        metrics=InMemoryMetricStore(),
        policy=policy,
    )
    service.evaluate(NOW)
    first = Counter(counting.calls)
    counting.calls.clear()
    service.evaluate(NOW + QUIET_AFTER)
    return first, Counter(counting.calls)


def moto_runs(items: list[dict[str, Any]]) -> tuple[Counter[str], Counter[str]]:
    """The same two evaluations through the DynamoDB and SNS adapters against moto, each
    request counted by a botocore hook on the clients."""
    from moto import mock_aws

    from chalicelib.adapters.aws import AwsClients
    from chalicelib.settings import Settings
    from chalicelib.wiring import Services
    from fleetpulse.resources import create_all

    with mock_aws():
        settings = Settings.from_env(
            {
                "FLEETPULSE_ALERTS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:fleetpulse-dev-alerts"
            }
        )
        services = Services(settings, AwsClients(region="us-east-1"))
        create_all(settings, services.clients)
        ddb = services.clients.get("dynamodb")
        for start in range(0, len(items), 25):
            batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
            ddb.batch_write_item(RequestItems={settings.hosts_table: batch})
        services.__dict__["metric_store"] = InMemoryMetricStore()
        services.__dict__["alerting_policy"] = policy()
        calls: Counter[str] = Counter()

        def count(model: Any, params: dict[str, Any], **_: Any) -> None:
            calls[f"{model.name} {params.get('TableName', 'x-topic').rsplit('-', 1)[-1]}"] += 1

        for service in ("dynamodb", "sns"):
            services.clients.get(service).meta.events.register(
                f"provide-client-params.{service}.*", count
            )
        services.alerting.evaluate(NOW)
        first = Counter(calls)
        calls.clear()
        services.alerting.evaluate(NOW + QUIET_AFTER)
    return first, Counter(calls)


def show(counts: Counter[str]) -> str:
    return (
        ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        + f"  (total {sum(counts.values())})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--moto-hosts",
        type=int,
        default=1000,
        help="cross-check the counts against moto at this size (0: skip)",
    )
    args = parser.parse_args()
    print(
        f"{len(RULES)} rules; ~20 series and ~200 fields per host; {BREACHING:.0%} breaching, {SILENT:.1%} silent"
    )
    results = {}
    for n in args.hosts:
        store = fleet(n)
        items = [to_item(low_level(item)) for item in store.items.values()]
        median, decode, open_alerts = compute(items, args.runs)
        results[n] = median
        mean_kb = sum(item_size(i) for i in items) / len(items) / 1024
        print(f"{n:>6} hosts ({mean_kb:.1f} KB an item), {open_alerts} alerts open:")
        print(
            f"        evaluate (pure compute)  {median * 1000:7.1f} ms  ({median / n * 1e6:.1f} us a host)"
        )
        print(f"        decode the Scan's items  {decode * 1000:7.1f} ms  (adapter, not core)")
        first, quiet = counted_runs(store, items)
        print(f"        requests, first run: {show(first)}")
        print(f"        requests, quiet run: {show(quiet)}")
        if n == args.moto_hosts:
            first, quiet = moto_runs(items)
            print(f"        moto cross-check, first run: {show(first)}")
            print(f"        moto cross-check, quiet run: {show(quiet)}")
    if len(results) > 1:
        (n1, t1), (n2, t2) = sorted(results.items())[0], sorted(results.items())[-1]
        print(f"compute grows x{t2 / t1:.1f} for x{n2 / n1:.0f} hosts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
