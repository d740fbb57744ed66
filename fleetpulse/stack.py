"""The local stack: an embedded AWS (moto's server), the collector API, the scheduled
evaluation and the notifiers, a local Slack/PagerDuty inbox and an agent, in one process.

Resources are created from the definitions the AWS deploy uses
(`fleetpulse.resources.create_all`); the handlers are app.py's own, invoked the way
Lambda would (fleetpulse.lambdas). docs/LOCAL.md describes what runs and where to look.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import HTTPServer
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import IO, Any

from chalicelib.core.tokens import ID_BYTES, SECRET_BYTES, Scope, TokenRecord, mint, token_hash
from chalicelib.routing import MAX_RETRY_ATTEMPTS
from chalicelib.settings import MetricBackend, Settings
from chalicelib.wiring import Services, use
from fleetpulse.inbox import LocalInbox
from fleetpulse.influxd import LocalInfluxd
from fleetpulse.lambdas import (
    EVALUATE,
    LOCAL_ACCOUNT,
    EventRuleQueue,
    LocalLambdas,
    NotifierQueue,
    deliver,
    deliver_events,
    route_event_rules,
    scheduled_event,
    subscribe_notifier_queues,
)
from fleetpulse.resources import create_all

LOCAL_REGION = "us-east-1"
LOCAL_STAGE = "local"
ALERTS_TOPIC = f"fleetpulse-{LOCAL_STAGE}-alerts"
ALERTS_TOPIC_ARN = f"arn:aws:sns:{LOCAL_REGION}:{LOCAL_ACCOUNT}:{ALERTS_TOPIC}"
EVALUATE_RULE_ARN = f"arn:aws:events:{LOCAL_REGION}:{LOCAL_ACCOUNT}:rule/fleetpulse-local-evaluate"
CHECKS = "checks"  # the remote-checks schedule (docs/CHECKS.md)
CHECKS_RULE_ARN = f"arn:aws:events:{LOCAL_REGION}:{LOCAL_ACCOUNT}:rule/fleetpulse-local-checks"
# The PagerDuty routing key the embedded SSM holds unless FLEETPULSE_PAGERDUTY_ROUTING_KEY says.
LOCAL_ROUTING_KEY = "local0routing0key0000000000000000"
AGENT_DIR = Path(__file__).resolve().parents[1] / "agent"
# `python -m fleetpulse_agent run`, plus a watch on the parent: the agent runs in its own
# session (so Ctrl-C reaches only the stack, which stops it first), and if the stack dies
# without stopping it (SIGKILL), the agent stops itself instead of posting to nothing forever.
# The stack passes its own pid: read in the agent, getppid() could already name init if the
# stack died while the agent's interpreter was still starting, and the watch would never fire.
AGENT_LAUNCHER = """\
import os, runpy, signal, sys, threading, time
parent = int(os.environ["FLEETPULSE_STACK_PID"])
def watch():
    while os.getppid() == parent:
        time.sleep(1)
    os.kill(os.getpid(), signal.SIGTERM)
threading.Thread(target=watch, name="parent-watch", daemon=True).start()
sys.argv = ["fleetpulse_agent", "run"]
runpy.run_module("fleetpulse_agent", run_name="__main__", alter_sys=True)
"""


class StackError(Exception):
    """The stack cannot start as asked (a port in use): one readable line."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def check_port(host: str, port: int, what: str, flag: str) -> None:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            raise StackError(
                f"{host}:{port} is in use: stop what uses it, or pick another {what} port with {flag}"
            ) from None


def local_environment(
    *,
    endpoint_url: str,
    api_url: str,
    inbox: LocalInbox | None,
    caller: Mapping[str, str],
) -> dict[str, str]:
    """Every variable the app needs for the `local` stage, in one place.

    The caller's FLEETPULSE_SLACK_WEBHOOK_URL, FLEETPULSE_PAGERDUTY_URL, FLEETPULSE_RULES,
    FLEETPULSE_STORE and the rest of their FLEETPULSE_* settings stay as they are; where
    they are unset, Slack and PagerDuty are the local inbox.
    """
    env = {
        # Fake credentials: the embedded AWS accepts any, and nothing here may
        # ever reach the real one.
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": LOCAL_REGION,
        "AWS_REGION": LOCAL_REGION,
        "FLEETPULSE_STAGE": LOCAL_STAGE,
        "FLEETPULSE_AWS_ENDPOINT_URL": endpoint_url,
        "FLEETPULSE_ALERTS_TOPIC": ALERTS_TOPIC,
        "FLEETPULSE_ALERTS_TOPIC_ARN": ALERTS_TOPIC_ARN,
        "FLEETPULSE_STATUS_URL": caller.get("FLEETPULSE_STATUS_URL") or f"{api_url}/status",
        # CloudWatch EMF lines are for Lambda; on a laptop they are noise. So are the
        # handlers' info logs: what happens is printed readably instead.
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": caller.get("POWERTOOLS_LOG_LEVEL") or "WARNING",
        # Remote checks run in-process on the tick, every location simulated by name.
        "FLEETPULSE_CHECKS_SIMULATE_LOCATIONS": "true",
        "FLEETPULSE_CHECKS_WINDOW": caller.get("FLEETPULSE_CHECKS_WINDOW") or "10s",
    }
    if inbox is not None and not caller.get("FLEETPULSE_PAGERDUTY_URL"):
        env["FLEETPULSE_PAGERDUTY_URL"] = inbox.pagerduty_url
    # The Slack webhook URL is a secret: as in AWS it is read from SSM (put there by
    # the stack), unless the caller names a webhook of their own.
    return env


class ApiServer(ThreadingMixIn, HTTPServer):
    """`chalice local`'s threaded server, with a clean stop: on close, idle keep-alive
    connections are cut and every request thread is joined."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], handler: Any) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class LocalApi:
    """The app served over HTTP the way `chalice local` serves it, minus the access log
    (an agent posting every few seconds would drown everything else), with a clean close."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        from chalice.config import Config
        from chalice.local import (
            ChaliceRequestHandler,
            CustomLocalChalice,
            LocalChalice,
            LocalDevServer,
        )

        class QuietHandler(ChaliceRequestHandler):
            timeout = 60  # an idle keep-alive connection is closed after a minute

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.app = app
        self._original_class: type | None = None
        if not isinstance(app, CustomLocalChalice):
            # What chalice's create_local_server does, undone by close(): the current
            # request becomes per thread.
            self._original_class = type(app)
            CustomLocalChalice.__bases__ = (LocalChalice, type(app))
            app.__class__ = CustomLocalChalice
        config = Config.create(chalice_stage=LOCAL_STAGE, app_name="fleetpulse")
        try:
            self._dev = LocalDevServer(
                app, config, host, port, handler_cls=QuietHandler, server_cls=ApiServer
            )
        except BaseException:
            self._restore()
            raise
        self.server: ApiServer = self._dev.server
        self._thread = threading.Thread(
            target=self.server.serve_forever, args=(0.1,), name="fleetpulse-api", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop serving, cut idle connections, join every request thread."""
        if self._thread.is_alive():
            self.server.shutdown()
            self._thread.join()
        self.server.close_connections()
        self.server.server_close()
        self._restore()

    def _restore(self) -> None:
        if self._original_class is not None:
            self.app.__class__ = self._original_class
            self._original_class = None


def print_line(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {text}", flush=True)


@dataclass
class LocalStack:
    """Starts, and stops, everything `fleetpulse local up` runs in one process."""

    port: int = 8000
    host: str = "127.0.0.1"
    aws_port: int = 0
    state_dir: Path = Path(".fleetpulse")
    tick: float = 10.0  # seconds between scheduled evaluations
    agent: bool = True
    agent_sample_interval: float = 5.0
    agent_send_interval: float = 10.0
    retry_after: int = 30  # seconds before a failed notifier invocation runs again
    out: Callable[[str], None] = print_line
    announce_evaluations: bool = True  # print a line for each evaluation that changed something
    env: dict[str, str] = field(default_factory=dict)
    fleet_token: str = ""
    admin_token: str = ""
    store: str = ""  # which metric store the collector writes to, for the banner
    # "influxdb": start influxd as the metric store (`local up`'s default), unless the
    # caller's FLEETPULSE_STORE=influxdb names one; "timestream": the embedded AWS's.
    metric_store: str = "timestream"
    influxd: LocalInfluxd | None = None
    notes: list[str] = field(default_factory=list)  # warnings worth printing
    agent_host: str = ""
    agent_retired: bool | None = None  # after stop(): did the agent's goodbye retire its host
    services: Services | None = None
    inbox: LocalInbox | None = None
    queues: list[NotifierQueue] = field(default_factory=list)
    event_rules: list[EventRuleQueue] = field(default_factory=list)
    _moto: Any = None
    _api: LocalApi | None = None
    _ticker: threading.Thread | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)
    _tick_lock: threading.Lock = field(default_factory=threading.Lock)
    _agent: subprocess.Popen[bytes] | None = None
    _agent_log: IO[bytes] | None = None
    _saved_env: dict[str, str | None] = field(default_factory=dict)
    _lambdas: LocalLambdas | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def agent_pid(self) -> int | None:
        return self._agent.pid if self._agent is not None else None

    @property
    def status_url(self) -> str:
        return f"{self.url}/status"

    @property
    def env_file(self) -> Path:
        return self.state_dir / "local.env"

    @property
    def inbox_file(self) -> Path:
        return self.state_dir / "inbox.jsonl"

    @property
    def agent_log(self) -> Path:
        return self.state_dir / "agent.log"

    def check(self) -> Settings:
        """The settings, rules and checks the stack would run with; raises SettingsError
        or RulesError (ChecksError is one) before anything has started."""
        from chalicelib.adapters.rules_file import load_policy

        placeholder = f"http://{self.host}:1"
        env = {
            **os.environ,
            **local_environment(
                endpoint_url=placeholder, api_url=self.url, inbox=None, caller=os.environ
            ),
        }
        settings = Settings.from_env(env)
        load_policy(settings)
        from chalicelib.adapters.checks_file import checks_path, load_checks

        load_checks(checks_path(settings.checks_path), settings.checks_location)
        return settings

    def start(self) -> None:
        """Start everything, or nothing: a failure stops what had started and raises."""
        self.check()
        check_port(self.host, self.port, "API", "--port")
        if self.aws_port:
            check_port(self.host, self.aws_port, "embedded AWS", "--aws-port")
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.inbox = LocalInbox(self.inbox_file, self.out, self.host)
        self.inbox.start()
        endpoint = self._start_moto()
        env = local_environment(
            endpoint_url=endpoint, api_url=self.url, inbox=self.inbox, caller=os.environ
        )
        self._saved_env = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        self.env = env
        if self.metric_store == "influxdb" and os.environ.get("FLEETPULSE_STORE") != "influxdb":
            self._start_influxd()
        # FLEETPULSE_STORE and FLEETPULSE_INFLUX_* come from the caller's environment:
        # with FLEETPULSE_STORE=influxdb points go to that InfluxDB, everything else
        # (tokens, hosts, alerts) stays on the embedded AWS.
        settings = Settings.from_env()
        services = Services(settings)
        self.services = services
        create_all(settings, services.clients)
        self._put_parameters(settings, services)
        self.queues = subscribe_notifier_queues(settings, services.clients, self.retry_after)
        self.store = self._prepare_store(settings, services)
        use(services)
        self.fleet_token = self._mint(services, "fleet", "local agents")
        self.admin_token = self._mint(services, "admin", "local operator")
        self._write_env_file()
        self._serve_api()
        assert self._lambdas is not None
        self.event_rules = route_event_rules(
            self._lambdas.app, LOCAL_STAGE, services.clients, self.retry_after
        )
        if self.agent:
            self._start_agent()
        self._ticker = threading.Thread(target=self._tick_loop, name="fleetpulse-tick", daemon=True)
        self._ticker.start()

    def _start_influxd(self) -> None:
        from fleetpulse.influxd import InfluxdError, LocalInfluxd

        self.influxd = LocalInfluxd(self.state_dir / "influxdb", host=self.host)
        try:
            self.influxd.start()
        except InfluxdError as exc:
            raise StackError(str(exc)) from None
        store_env = self.influxd.environment()
        # A caller's v2 settings or token would contradict this v1 server without auth.
        stale = [f"FLEETPULSE_INFLUX_{n}" for n in ("ORG", "BUCKET", "TOKEN", "TOKEN_PARAM")]
        for name in [*store_env, *stale, "FLEETPULSE_INFLUX_USERNAME"]:
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ.pop(name, None)
        os.environ.update(store_env)
        self.env.update(store_env)

    def _start_moto(self) -> str:
        import requests
        from moto.server import ThreadedMotoServer

        # The embedded AWS logs every request it serves; nobody wants to read that.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.aws_port = self.aws_port or free_port(self.host)
        self._moto = ThreadedMotoServer(ip_address=self.host, port=self.aws_port, verbose=False)
        self._moto.start()
        endpoint = f"http://{self.host}:{self.aws_port}"
        # moto keeps its state per process, not per server: a second stack in one
        # process (the tests, the demo after a run) starts from an empty AWS too.
        requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
        return endpoint

    def _put_parameters(self, settings: Settings, services: Services) -> None:
        """The notifiers' secrets, in the embedded SSM as they are in AWS."""
        ssm = services.clients.get("ssm")
        assert self.inbox is not None
        ssm.put_parameter(
            Name=settings.notify.pagerduty_routing_key_param,
            Value=os.environ.get("FLEETPULSE_PAGERDUTY_ROUTING_KEY") or LOCAL_ROUTING_KEY,
            Type="SecureString",
            Overwrite=True,
        )
        ssm.put_parameter(
            Name=settings.notify.slack_webhook_param,
            Value=self.inbox.slack_url,
            Type="SecureString",
            Overwrite=True,
        )

    def _prepare_store(self, settings: Settings, services: Services) -> str:
        if settings.store is not MetricBackend.INFLUXDB:
            return (
                f"Timestream (embedded) {settings.timestream_database}/{settings.timestream_table}"
            )
        from chalicelib.adapters.influxdb import InfluxDBMetricStore
        from chalicelib.core.ports import BackendUnavailable

        store = services.metric_store
        target = settings.influx_target
        if isinstance(store, InfluxDBMetricStore):
            try:
                store.ensure_database()  # v1 only; a v2 bucket must exist already
            except BackendUnavailable as exc:
                self.notes.append(
                    f"InfluxDB is not ready yet ({exc}); writes answer 503 until it is"
                )
        where = f"InfluxDB ({target.api.value}) {target.describe()}"
        if self.influxd is not None:
            return f"{where}: influxd started here, data in {self.influxd.root}"
        return where

    def _mint(self, services: Services, scope: str, name: str) -> str:
        token_id, token = mint(secrets.token_bytes(ID_BYTES + SECRET_BYTES))
        services.token_store.put(
            TokenRecord(token_id, token_hash(token), Scope.parse(scope), name, datetime.now(UTC))
        )
        return token

    def _write_env_file(self) -> None:
        lines = {
            "FLEETPULSE_URL": self.url,
            "FLEETPULSE_TOKEN": self.fleet_token,
            "FLEETPULSE_ADMIN_TOKEN": self.admin_token,
            **self.env,
        }
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
        self.env_file.chmod(0o600)

    def _serve_api(self) -> None:
        import app as app_module

        self._api = LocalApi(app_module.app, self.host, self.port)
        self._api.start()
        self._lambdas = LocalLambdas(app_module.app, LOCAL_STAGE)

    # -- the agent

    def _start_agent(self) -> None:
        """This machine's agent, as a child process posting to the local API."""
        # Host names hold letters, digits and . _ - (the collector refuses others).
        name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()).lstrip("._-")
        self.agent_host = os.environ.get("FLEETPULSE_HOST") or name or "localhost"
        agent_dir = self.state_dir / "agent"
        agent_dir.mkdir(parents=True, exist_ok=True)
        config = agent_dir / "agent.conf"
        # Named explicitly, so an agent installed on this machine lends it nothing.
        config.write_text("[agent]\n# fleetpulse local up sets everything in the environment\n")
        env = {
            name: os.environ[name]
            for name in ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
            if name in os.environ
        }
        env.update(
            {
                "PYTHONPATH": str(AGENT_DIR),
                "FLEETPULSE_CONFIG": str(config),
                "FLEETPULSE_URL": self.url,
                "FLEETPULSE_TOKEN": self.fleet_token,
                "FLEETPULSE_HOST": self.agent_host,
                "FLEETPULSE_SPOOL_DIR": str(agent_dir / "spool"),
                "FLEETPULSE_SAMPLE_INTERVAL": f"{self.agent_sample_interval:g}",
                "FLEETPULSE_SEND_INTERVAL": f"{self.agent_send_interval:g}",
                "FLEETPULSE_SHUTDOWN_TIMEOUT": "5",
                "FLEETPULSE_EC2_TAGS": "false",
                "FLEETPULSE_DNS_FALLBACK": "",
                # A workstation starts and stops its services all day: "redis-server is
                # gone" pages would drown everything else. FLEETPULSE_PROCESSES=true asks.
                "FLEETPULSE_PROCESSES": os.environ.get("FLEETPULSE_PROCESSES", "false"),
                "FLEETPULSE_STACK_PID": str(os.getpid()),
            }
        )
        self._agent_log = self.agent_log.open("ab")
        self._agent = subprocess.Popen(  # noqa: S603 (a constant program, our own interpreter)
            [sys.executable, "-c", AGENT_LAUNCHER],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._agent_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _stop_agent(self) -> None:
        agent, self._agent = self._agent, None
        if agent is not None:
            if agent.poll() is None:
                agent.send_signal(signal.SIGTERM)
                try:
                    agent.wait(timeout=10)  # its shutdown_timeout is 5 s
                except subprocess.TimeoutExpired:
                    agent.kill()
                    agent.wait()
            self.agent_retired = self._host_state(self.agent_host) == "retired"
        if self._agent_log is not None:
            self._agent_log.close()
            self._agent_log = None

    def _host_state(self, host: str) -> str | None:
        if self.services is None or self._api is None:
            return None
        try:
            for snapshot in self.services.host_store.scan(fields={}):
                if snapshot.host == host:
                    return snapshot.state.value
        except Exception:
            return None
        return None

    # -- the schedule and the notifiers

    def _tick_loop(self) -> None:
        while True:
            self.run_tick()
            if self._stopping.wait(self.tick):
                return

    def run_tick(self) -> dict[str, Any] | None:
        """One scheduled evaluation, then every notification waiting for a notifier.
        Returns the evaluation's report (None when the invocation failed)."""
        with self._tick_lock:
            self._run_checks()
            self.deliver_events()
            report = self._evaluate()
            self.deliver_notifications()
            return report

    def _run_checks(self) -> dict[str, Any] | None:
        """The checks schedule: due runs from every location, their batches in-process."""
        assert self._lambdas is not None
        event = scheduled_event(CHECKS_RULE_ARN, LOCAL_REGION, datetime.now(UTC))
        try:
            report: dict[str, Any] = self._lambdas.invoke(CHECKS, event, timeout_s=55)
        except Exception as exc:
            self.out(f"checks failed: {type(exc).__name__}: {exc}")
            return None
        return report

    def deliver_events(self) -> int:
        """Run the EventBridge handlers (`ec2_lifecycle`) for every event put on the embedded
        AWS's default bus that their rules matched; the number handled."""
        if self.services is None or self._lambdas is None:
            return 0
        sqs = self.services.clients.get("sqs")
        delivered = 0
        for route in self.event_rules:
            try:
                report = deliver_events(sqs, route, self._lambdas, self._event_failed)
            except Exception as exc:
                self.out(f"{route.handler}: queue unreadable: {exc}")
                continue
            for _ in range(report.delivered):
                self.out(f"{route.handler}: event delivered")
            delivered += report.delivered
        return delivered

    def _event_failed(self, handler: str, exc: Exception) -> None:
        self.out(f"{handler} failed: {type(exc).__name__}: {exc}; retried in {self.retry_after} s")

    def _evaluate(self) -> dict[str, Any] | None:
        assert self._lambdas is not None
        event = scheduled_event(EVALUATE_RULE_ARN, LOCAL_REGION, datetime.now(UTC))
        try:
            report: dict[str, Any] = self._lambdas.invoke(EVALUATE, event, timeout_s=55)
        except Exception as exc:
            self.out(f"evaluate failed: {type(exc).__name__}: {exc}")
            return None
        if self.announce_evaluations and (
            report.get("transitions") or report.get("publish_failures")
        ):
            said = (
                f"{report['transitions']} alert transition(s), {report['notifications']} published"
            )
            if report.get("publish_failures"):
                said += f", {report['publish_failures']} publish failure(s)"
            self.out(f"evaluate: {said}")
        return report

    def deliver_notifications(self) -> int:
        """Run the notifier handlers for every message their queues hold; the number handled."""
        if self.services is None or self._lambdas is None:
            return 0
        sqs = self.services.clients.get("sqs")
        delivered = 0
        for queue in self.queues:
            try:
                report = deliver(sqs, queue, self._lambdas, self._delivery_failed)
            except Exception as exc:
                self.out(f"{queue.handler}: queue unreadable: {exc}")
                continue
            delivered += report.delivered
        return delivered

    def _delivery_failed(self, queue: NotifierQueue, attempt: int, exc: Exception) -> None:
        attempts = MAX_RETRY_ATTEMPTS + 1
        if attempt < attempts:
            then = f"retried in {self.retry_after} s"
        else:
            then = "moved to the failure queue"
        self.out(
            f"{queue.handler} failed (attempt {attempt} of {attempts}): "
            f"{type(exc).__name__}: {exc}; {then}"
        )

    # -- stopping

    def stop(self) -> None:
        """Stop everything started, in the order that loses nothing: the agent first (its
        shutdown heartbeat must land), then the schedule, the API, the inbox, the AWS."""
        self._stop_agent()
        self._stopping.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        if self._api is not None:
            self._api.close()
            self._api = None
        if self.inbox is not None:
            self.inbox.stop()
        if self.services is not None:
            self.services.clients.close()
            http = self.services.__dict__.get("http")
            if http is not None:
                http.close()
            use(None)
        if self.influxd is not None:
            self.influxd.stop()
            self.influxd = None
        if self._moto is not None:
            self._moto.stop()
            # ThreadedMotoServer.stop leaves the listening socket open.
            with contextlib.suppress(Exception):
                self._moto._server.server_close()
            self._moto = None
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env = {}
