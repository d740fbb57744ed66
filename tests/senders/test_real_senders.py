"""The real senders against the collector served over HTTP on 127.0.0.1.

Debian's `prometheus` scrapes `prometheus-node-exporter` and remote-writes to
POST /api/v1/write; Debian's `collectd` posts with write_http (Format "JSON")
to POST /v1/collectd. Each is started by the test on free loopback ports, with
its data under a temporary directory. The hosts must appear in /v1/hosts
with the sender as agent, their load and memory must be stored, a threshold
rule must fire on their fields, and once the sender is killed the evaluator,
given a clock past interval + grace, must page the host as down.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from chalicelib.adapters.rules_file import load_rules
from chalicelib.core.evaluation import AlertingPolicy
from chalicelib.core.matchers import matches_all
from chalicelib.core.rules import parse_rules
from chalicelib.settings import Settings
from chalicelib.wiring import Services, use
from fleetpulse.stack import LocalApi, free_port
from tests.support.http import add_token
from tests.support.memory import (
    InMemoryAlertPublisher,
    InMemoryAlertStore,
    InMemoryHostStore,
    InMemoryMetricStore,
    InMemorySilenceStore,
    InMemoryTokenStore,
)
from tests.support.programs import require_program

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "chalicelib" / "rules"
GRACE = timedelta(minutes=2)
T = TypeVar("T")


def until(
    what: str, probe: Callable[[], T | None], timeout: float = 60.0, sender: Program | None = None
) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` (and showing the
    sender's output) otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            output = f"\n{sender.output()}" if sender is not None else ""
            pytest.fail(f"not seen within {timeout:g} s: {what}{output}")
        time.sleep(0.2)


@dataclass
class Collector:
    url: str
    services: Services
    fleet_token: str
    admin_token: str

    def hosts(self) -> dict[str, dict[str, Any]]:
        response = requests.get(
            f"{self.url}/v1/hosts",
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=10,
        )
        response.raise_for_status()
        return {h["host"]: h for h in response.json()["hosts"]}

    def series(self, host: str) -> list[Any]:
        """The host's series catalog: measurement, tags and numeric field names."""
        return self.services.host_store.catalog(host)

    def stored(self, host: str, measurement: str) -> list[dict[str, str]]:
        out = []
        for (measure, _, dims), record in self.services.metric_store.records.items():  # type: ignore[attr-defined]
            if measure == measurement and ("host", host) in dims:
                out.append({m["Name"]: m["Value"] for m in record["MeasureValues"]})
        return out

    def use_rules(self, *files: Path, extra: list[dict[str, Any]]) -> None:
        rules: list[dict[str, Any]] = []
        for path in files:
            import yaml

            rules.extend(yaml.safe_load(path.read_text())["rules"])
            load_rules(path)  # the shipped file itself loads
        ruleset = parse_rules({"rules": rules + extra})
        self.services.__dict__["alerting_policy"] = AlertingPolicy(ruleset, default_grace=GRACE)

    def evaluate(self, at: datetime) -> list[dict[str, Any]]:
        self.services.alerting.evaluate(at)
        return [dict(m) for m in self.services.alert_publisher.messages]  # type: ignore[attr-defined]

    def last_seen(self, host: str) -> datetime:
        for snapshot in self.services.host_store.scan():
            if snapshot.host == host:
                return snapshot.last_seen_at
        raise AssertionError(f"{host} unknown")


@pytest.fixture
def collector() -> Iterator[Collector]:
    services = Services(Settings.from_env({"FLEETPULSE_TOKEN_CACHE_SECONDS": "0"}))
    for name, store in {
        "metric_store": InMemoryMetricStore(),
        "token_store": InMemoryTokenStore(),
        "host_store": InMemoryHostStore(),
        "alert_store": InMemoryAlertStore(),
        "silence_store": InMemorySilenceStore(),
        "alert_publisher": InMemoryAlertPublisher(),
    }.items():
        services.__dict__[name] = store
    use(services)
    import app

    port = free_port()
    api = LocalApi(app.app, "127.0.0.1", port)
    api.start()
    try:
        yield Collector(
            f"http://127.0.0.1:{port}",
            services,
            add_token(services, "fleet"),
            add_token(services, "admin"),
        )
    finally:
        api.close()


class Program:
    """A program started by a test, stopped (or killed) at its end; its output in a log."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.process = subprocess.Popen(argv, stdout=self._out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._out.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@pytest.fixture
def programs() -> Iterator[list[Program]]:
    started: list[Program] = []
    yield started
    for program in reversed(started):
        program.stop()


def prometheus_config(collector: Collector, exporter_port: int) -> str:
    rules = ROOT / "infra" / "prometheus" / "fleetpulse.rules.yml"
    return f"""\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - {rules}
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ["127.0.0.1:{exporter_port}"]
remote_write:
  - url: {collector.url}/api/v1/write
    authorization:
      credentials: {collector.fleet_token}
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
"""


def test_prometheus_with_node_exporter_is_an_ordinary_host(collector, programs, tmp_path):
    exporter = require_program("prometheus-node-exporter", "prometheus-node-exporter")
    prometheus = require_program("prometheus", "prometheus")
    exporter_port, prometheus_port = free_port(), free_port()
    programs.append(
        Program(
            [exporter, f"--web.listen-address=127.0.0.1:{exporter_port}"],
            tmp_path / "node-exporter.log",
        )
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(prometheus_config(collector, exporter_port))
    sender = Program(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ],
        tmp_path / "prometheus.log",
    )
    programs.append(sender)
    host = "127.0.0.1"  # instance 127.0.0.1:<port>, port stripped

    listed = until(
        "the host in /v1/hosts with prometheus as agent, interval learned",
        lambda: (h := collector.hosts().get(host)) and h["interval_s"] == 1 and h,
        timeout=90,
        sender=sender,
    )
    assert listed["agent_name"] == "prometheus", listed
    assert listed["agent_version"].startswith("2.")
    assert listed["state"] in ("new", "up")

    until("load and memory stored", lambda: collector.stored(host, "node_load1"), timeout=30)
    assert float(collector.stored(host, "node_memory_MemTotal_bytes")[0]["value"]) > 0
    # counters stay counters
    assert collector.stored(host, "node_cpu_seconds_total")
    # the recording rules' results arrive like any series
    until(
        "the shipped rules' measurements",
        lambda: rules_find_their_series(collector, host, RULES / "node_exporter.yaml"),
        timeout=60,
        sender=sender,
    )
    collector.use_rules(
        RULES / "node_exporter.yaml",
        extra=[
            {
                "name": "memory-seen",
                "measurement": "fleetpulse.memory_used.percent",
                "field": "value",
                "op": ">=",
                "critical": 0,
                "summary": "{value:.0f}% used on {host}",
            }
        ],
    )
    messages = until(
        "memory-seen firing", lambda: fires(collector, "memory-seen", host), 30, sender
    )
    assert not any(m["kind"] == "heartbeat" for m in messages)

    sender.kill()
    seen = settle(collector, host)
    interval = timedelta(seconds=1)
    collector.evaluate(seen + interval + GRACE - timedelta(seconds=1))
    assert not any(m["kind"] == "heartbeat" for m in collector.evaluate(seen + interval))
    messages = collector.evaluate(seen + interval + GRACE + timedelta(seconds=1))
    down = [m for m in messages if m["kind"] == "heartbeat"]
    assert [(m["host"], m["status"]) for m in down] == [(host, "firing")], sender.output()


def rules_find_their_series(collector: Collector, host: str, path: Path) -> bool:
    """Every rule of the shipped file (but swap's: a host may have none) reads a field the
    host has, in a series its matchers select."""
    series = collector.series(host)
    for rule in load_rules(path).rules:
        if rule.name == "swap-high":
            continue
        if not any(
            s.measurement == rule.measurement
            and rule.field in s.fields
            and matches_all(rule.matchers, s.tags)
            for s in series
        ):
            return False
    return True


def fires(collector: Collector, rule: str, host: str) -> list[dict[str, Any]] | None:
    """The messages so far once `rule` fires on `host`. The collector reads the rules the
    evaluator reads: a rule put in place acts from the next post on."""
    messages = collector.evaluate(datetime.now(UTC))
    fired = [(m["rule"], m["host"], m["status"]) for m in messages]
    return messages if (rule, host, "firing") in fired else None


def settle(collector: Collector, host: str) -> datetime:
    """The host's last-seen once no more posts arrive (requests in flight land first)."""
    previous = collector.last_seen(host)
    while True:
        time.sleep(1.5)
        current = collector.last_seen(host)
        if current == previous:
            return current
        previous = current


COLLECTD_CONFIG = """\
Hostname "{host}"
FQDNLookup false
Interval 1
BaseDir "{root}"
PIDFile "{root}/collectd.pid"
TypesDB "/usr/share/collectd/types.db"

LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File STDOUT
</Plugin>

LoadPlugin cpu
<Plugin cpu>
  ReportByCpu false
  ValuesPercentage true
</Plugin>
LoadPlugin load
<Plugin load>
  ReportRelative true
</Plugin>
LoadPlugin memory
<Plugin memory>
  ValuesAbsolute true
  ValuesPercentage true
</Plugin>
LoadPlugin df
<Plugin df>
  MountPoint "/"
  ValuesPercentage true
  ReportInodes true
</Plugin>
LoadPlugin interface
<Plugin interface>
  Interface "lo"
</Plugin>

<LoadPlugin write_http>
  FlushInterval 1
</LoadPlugin>
<Plugin write_http>
  <Node "fleetpulse">
    URL "{url}/v1/collectd"
    Format "JSON"
    User "collectd"
    Password "{token}"
    StoreRates false
    Timeout 5000
  </Node>
</Plugin>
"""


def test_collectd_write_http_is_an_ordinary_host(collector, programs, tmp_path):
    collectd = require_program("collectd", "collectd-core", path="/usr/sbin:/usr/bin")
    host = "collectd-test-1"
    config = tmp_path / "collectd.conf"
    config.write_text(
        COLLECTD_CONFIG.format(
            host=host, root=tmp_path, url=collector.url, token=collector.fleet_token
        )
    )
    sender = Program([collectd, "-f", "-C", str(config)], tmp_path / "collectd.log")
    programs.append(sender)

    listed = until(
        "the host in /v1/hosts with collectd as agent",
        lambda: collector.hosts().get(host),
        timeout=60,
        sender=sender,
    )
    assert listed["agent_name"] == "collectd", listed
    assert listed["agent_version"].startswith("5."), listed
    assert listed["interval_s"] == 1

    # collectd's plugins post in separate requests: wait for both, not the first to arrive.
    until(
        "load and memory stored",
        lambda: collector.stored(host, "memory") and collector.stored(host, "load"),
        timeout=30,
    )
    load = collector.stored(host, "load")
    # ReportRelative: load per core (collectd's type_instance "relative")
    assert any({"shortterm", "midterm", "longterm"} <= set(f) for f in load), load
    memory = collector.stored(host, "memory")
    assert all(set(f) == {"value"} for f in memory), memory
    # the loopback's octet counters arrive as per-second rates (never negative)
    rates = until("interface rates", lambda: collector.stored(host, "interface"), timeout=30)
    assert all(float(f[name]) >= 0 for f in rates for name in ("rx", "tx") if name in f)
    until(
        "the shipped rules' series",
        lambda: rules_find_their_series(collector, host, RULES / "collectd.yaml"),
        timeout=30,
        sender=sender,
    )
    collector.use_rules(
        RULES / "collectd.yaml",
        extra=[
            {
                "name": "memory-seen",
                "measurement": "memory",
                "field": "value",
                "op": ">=",
                "critical": 0,
                "match": {"type": "percent", "type_instance": "used"},
            }
        ],
    )
    until("memory-seen firing", lambda: fires(collector, "memory-seen", host), 30, sender)

    sender.kill()
    seen = settle(collector, host)
    interval = timedelta(seconds=1)
    assert not any(m["kind"] == "heartbeat" for m in collector.evaluate(seen + interval))
    messages = collector.evaluate(seen + interval + GRACE + timedelta(seconds=1))
    down = [m for m in messages if m["kind"] == "heartbeat"]
    assert [(m["host"], m["status"]) for m in down] == [(host, "firing")], sender.output()
