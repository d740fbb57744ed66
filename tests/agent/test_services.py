"""Process groups, service discovery and probes on real nginx, redis-server and memcached.

The watcher reads the real /proc, limited to the processes this test started (other
programs on the machine, other tests' servers among them, are not this test's to judge).
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fleetpulse_agent import probes
from fleetpulse_agent.agent import Agent
from fleetpulse_agent.procs import Processes
from servers import (
    FakeSystemd,
    descendants,
    kill,
    start_memcached,
    start_nginx,
    start_redis,
)


class Watch:
    """A process watcher over this test's children, collecting one interval per call."""

    def __init__(self, systemd: FakeSystemd, **kwargs: Any) -> None:
        me = os.getpid()
        self.procs = Processes(
            ttl=180, systemctl=str(systemd.systemctl), pids=lambda: descendants(me), **kwargs
        )
        self.t = 0.0

    def interval(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], Any]:
        self.t += 60.0
        points, events, running = self.procs.collect(time.monotonic(), int(time.time() * 1000))
        by_name = {p["tags"]["name"]: p["fields"] for p in points}
        return by_name, {e["service"]: e for e in events}, running


@pytest.fixture
def systemd(tmp_path: Path) -> FakeSystemd:
    return FakeSystemd(tmp_path / "systemd")


@pytest.fixture
def redis(tmp_path: Path, systemd: FakeSystemd) -> Iterator[tuple[Any, int]]:
    process, port = start_redis(tmp_path / "redis")
    systemd.add("redis-server.service", process.pid)
    yield process, port
    process.kill()
    process.wait()


@pytest.fixture
def memcached(tmp_path: Path, systemd: FakeSystemd) -> Iterator[tuple[Any, int]]:
    process, port = start_memcached(tmp_path / "memcached")
    systemd.add("memcached.service", process.pid)
    yield process, port
    process.kill()
    process.wait()


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[tuple[Any, int]]:
    process, port = start_nginx(tmp_path / "nginx")
    yield process, port
    process.terminate()
    process.wait()


def test_each_service_is_discovered_with_its_ports_and_gets_a_heartbeat(
    systemd, redis, memcached, nginx
) -> None:
    watch = Watch(systemd)
    groups, events, running = watch.interval()
    assert set(events) == {"redis-server", "memcached", "nginx"}
    for name, (_, port) in (("redis-server", redis), ("memcached", memcached), ("nginx", nginx)):
        assert events[name]["status"] == "ok"
        assert events[name]["ttl"] == 180_000
        assert running[name].ports == [port]
        assert f"listening on {port}" in events[name]["description"]
    assert groups["nginx"]["count"] == 2  # master and one worker
    assert groups["redis-server"]["count"] == 1
    assert groups["redis-server"]["rss_bytes"] > 1 << 20
    assert groups["redis-server"]["threads"] >= 1
    assert groups["redis-server"]["open_fds"] >= 3
    assert "cpu_percent" not in groups["redis-server"]  # one reading gives no rate yet


def test_cpu_is_a_share_of_a_core_over_the_interval(systemd, redis) -> None:
    _, port = redis
    watch = Watch(systemd)
    watch.interval()
    with socket.create_connection(("127.0.0.1", port)) as s:  # give redis some work
        for _ in range(2000):
            s.sendall(b"PING\r\n")
            s.recv(16)
    groups, _, _ = watch.interval()
    assert 0 <= groups["redis-server"]["cpu_percent"] <= 100 * (os.cpu_count() or 1)


def test_the_probes_read_redis_memcached_and_nginx(systemd, redis, memcached, nginx) -> None:
    watch = Watch(systemd)
    _, _, running = watch.interval()
    measurement, fields, failure = probes.probe(
        "redis-server", running["redis-server"].ports, running["redis-server"].pids, ""
    )
    assert (measurement, failure) == ("redis", None)
    assert fields["clients"] >= 1
    assert fields["used_memory_bytes"] > 0
    assert {"hits", "misses", "ops_per_s", "commands"} <= set(fields)

    _, port = memcached
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"set k 0 0 1\r\nv\r\nget k\r\nget nothing\r\n")
        time.sleep(0.2)
    measurement, fields, failure = probes.probe(
        "memcached", running["memcached"].ports, running["memcached"].pids, ""
    )
    assert (measurement, failure) == ("memcached", None)
    assert fields["hits"] >= 1
    assert fields["misses"] >= 1
    assert fields["sets"] >= 1

    # nginx: the stub_status location is found in the configuration nginx was started with
    measurement, fields, failure = probes.probe(
        "nginx", running["nginx"].ports, running["nginx"].pids, ""
    )
    assert (measurement, failure) == ("nginx", None)
    assert fields["active"] >= 1
    assert fields["requests"] >= 1


def test_a_probe_failure_is_a_reason_not_a_crash(systemd, redis, tmp_path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]
    measurement, fields, failure = probes.probe("redis-server", [dead], [], "")
    assert (measurement, fields) == (None, {})
    assert failure is not None
    assert failure.startswith("redis-server probe failed: ")
    # memcached's protocol spoken to redis: an error line, not a hang
    _, port = redis
    failure = probes.probe("memcached", [port], [], "")[2]
    assert failure is not None
    assert "memcached probe failed" in failure
    failure = probes.probe("nginx", [], [], f"http://127.0.0.1:{dead}/nginx_status")[2]
    assert failure is not None
    assert "nginx probe failed" in failure


def test_a_service_killed_is_gone_and_alerts(systemd, redis, memcached) -> None:
    watch = Watch(systemd)
    watch.interval()
    kill(redis[0])
    _, events, running = watch.interval()
    gone = events["redis-server"]
    assert (gone["status"], gone["description"]) == ("critical", "redis-server is gone")
    assert "ttl" not in gone
    assert "redis-server" not in running
    assert events["memcached"]["status"] == "ok"
    _, events, _ = watch.interval()  # still gone: still critical
    assert events["redis-server"]["status"] == "critical"


def test_a_service_stopped_through_systemd_is_retired_quietly(systemd, memcached) -> None:
    watch = Watch(systemd)
    watch.interval()
    systemd.stop("memcached.service")
    _, events, _ = watch.interval()
    last = events["memcached"]
    assert last["status"] == "ok"
    assert "ttl" not in last
    assert "stopped on purpose" in last["description"]
    _, events, _ = watch.interval()
    assert "memcached" not in events  # forgotten


def test_a_service_started_later_is_discovered_on_the_next_interval(
    systemd, tmp_path, redis
) -> None:
    watch = Watch(systemd)
    _, events, _ = watch.interval()
    assert set(events) == {"redis-server"}
    process, _ = start_memcached(tmp_path / "later")
    try:
        _, events, _ = watch.interval()
        assert events["memcached"]["status"] == "ok"
    finally:
        process.kill()
        process.wait()


def test_only_the_top_groups_and_the_services_are_sent(systemd, redis, memcached, nginx) -> None:
    watch = Watch(systemd, top=1)
    groups, _, _ = watch.interval()
    assert set(groups) == {"redis-server", "memcached", "nginx"}  # services always
    whole = Processes(top=3)
    points, _, _ = whole.collect(time.monotonic(), 0)
    assert 1 <= len(points) <= 6 + len(whole.services)


def test_stub_status_is_found_in_included_files(tmp_path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "nginx.conf").write_text("http {\n    include conf.d/*.conf;\n}\n")
    (tmp_path / "conf.d" / "a.conf").write_text(
        "server { listen 80; location / { root /srv; } }\n"
        "server {\n  listen [::]:8081 ipv6only=on;\n  # location /old { stub_status; }\n"
        "  location /basic_status {\n    stub_status;\n  }\n}\n"
    )
    text = probes.nginx_config(["nginx:", "master", "process", "-c", str(tmp_path / "nginx.conf")])
    assert probes.stub_status_url(text) == "http://[::1]:8081/basic_status"


def test_the_agent_sends_groups_services_and_probes_to_the_collector(
    collector, make_cfg, redis, nginx
) -> None:
    cfg = make_cfg(collector.url, processes="true", process_top=2)
    agent = Agent(cfg)
    me = os.getpid()
    agent.procs.list_pids = lambda: descendants(me)  # this test's servers, not the machine's
    for _ in range(2):
        agent.sample()
        agent.cut()
    agent.sender.send_pending()
    events = {(e["service"], e["status"]) for e in collector.events}
    assert {("redis-server", "ok"), ("nginx", "ok")} <= events
    ttls = {e["ttl_ms"] for e in collector.events if e["service"] in ("redis-server", "nginx")}
    assert ttls == {int(3 * cfg.send_interval * 1000)}
    measured = {(m, dict(tags).get("name")) for _, m, tags, _ in collector.stored}
    assert {("process", "redis-server"), ("process", "nginx"), ("redis", None)} <= measured
    assert ("nginx", None) in measured  # stub_status found in the config nginx runs with


def test_the_daemon_watches_in_a_thread_of_its_own_and_cuts_take_what_it_found(
    collector, make_cfg, redis
) -> None:
    cfg = make_cfg(collector.url, processes="true", send_interval=0.5, sample_interval=0.1)
    agent = Agent(cfg)
    me = os.getpid()
    agent.procs.list_pids = lambda: descendants(me)
    redis[0].send_signal(signal.SIGSTOP)  # its probe now waits for an answer that never comes
    try:
        agent.start()
        assert agent.procs.thread is not None
        assert agent.procs.thread.name == "processes"
        agent.sample()
        agent.cut()  # does not wait for the watcher
        for _ in range(200):
            if agent.procs.ready:
                break
            time.sleep(0.05)
        agent.cut()
        agent.sender.send_pending()
    finally:
        redis[0].send_signal(signal.SIGCONT)
        agent.stop()
    [event] = [e for e in collector.events if e["service"] == "redis-server"]
    assert event["status"] == "ok"
    assert "redis-server probe failed: timed out" in event["description"]
