"""The whole agent in-process, on real /proc, posting to a real local collector through outages."""

from __future__ import annotations

import threading
import time
from typing import Any

from fake_collector import Answer, FakeCollector
from fleetpulse_agent.agent import Agent
from fleetpulse_agent.collect import Collector


def spooled_keys(
    batches: list[dict[str, Any]],
) -> list[tuple[str, str, tuple[tuple[str, str], ...], int]]:
    return [
        (b["host"], p["measurement"], tuple(sorted((p.get("tags") or {}).items())), p["time"])
        for b in batches
        for p in b["points"]
    ]


def run_in_thread(agent: Agent) -> threading.Thread:
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    return thread


def assert_complete_and_ordered(collector: FakeCollector, batches: list[dict[str, Any]]) -> None:
    expected = spooled_keys(batches)
    assert len(expected) == len(set(expected)), "the agent made two points with one key"
    assert set(collector.stored) == set(expected), "a spooled sample never arrived"
    assert collector.conflicts == [], "a resent point changed (re-aggregated or re-timestamped)"
    for series, times in collector.series().items():
        assert times == sorted(times), f"{series} arrived out of time order"


def test_every_sample_arrives_in_order_after_each_kind_of_outage(collector, make_cfg) -> None:
    cfg = make_cfg(collector.url, sample_interval=0.02, send_interval=0.1, read_timeout=0.3)
    batches: list[dict[str, Any]] = []
    agent = Agent(cfg, on_batch=batches.append)
    thread = run_in_thread(agent)

    def outage(start: Any, end: Any, seconds: float = 0.5) -> None:
        before = len(batches)
        start()
        time.sleep(seconds)
        assert len(batches) > before, "the agent stopped cutting batches during the outage"
        end()
        assert collector.wait_for(
            lambda: set(collector.stored) >= set(spooled_keys(batches[: before + 1]))
        )

    time.sleep(0.3)
    outage(collector.down, collector.up)  # connection refused

    def stall() -> None:
        collector.default = Answer("stall")

    def unstall() -> None:
        collector.default = Answer(202)
        collector.release.set()

    outage(stall, unstall)  # accepts, never answers
    collector.release.clear()
    outage(
        lambda: setattr(collector, "default", Answer(500)),
        lambda: setattr(collector, "default", Answer(202)),
    )
    collector.answer(Answer(503, headers={"Retry-After": "1"}))
    first = len(collector.posts)

    def recovered_after_503() -> bool:
        later = collector.posts[first:]
        statuses = [p.status for p in later]
        return 503 in statuses and 202 in statuses[statuses.index(503) :]

    assert collector.wait_for(recovered_after_503, 5)
    later = collector.posts[first:]
    refused = next(p for p in later if p.status == 503)
    retried = later[later.index(refused) + 1]
    assert retried.at - refused.at >= 1.0  # the collector's Retry-After held the sender back
    agent.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert agent.spool.pending() == []
    assert_complete_and_ordered(collector, batches)
    assert collector.heartbeats[-1]["state"] == "shutdown"
    assert all(h["state"] == "alive" for h in collector.heartbeats[:-1])
    assert {202, 500, 503} <= {p.status for p in collector.posts}


def test_points_carry_average_and_swing_and_fit_the_store(collector, make_cfg) -> None:
    cfg = make_cfg(collector.url, sample_interval=0.02, send_interval=0.2)
    agent = Agent(cfg)
    thread = run_in_thread(agent)
    assert collector.wait_for(lambda: len(collector.posts) >= 2)
    agent.stop()
    thread.join(10)
    measurements = {k[1] for k in collector.stored}
    assert {"cpu", "memory", "system", "processes", "tcp", "fleetpulse_agent"} <= measurements
    cpus = [v for k, v in collector.stored.items() if k[1] == "cpu" and "user_min" in v]
    assert cpus
    cpu = cpus[0]
    for field in ("user", "system", "iowait", "steal", "idle"):
        assert cpu[f"{field}_min"] <= cpu[field] <= cpu[f"{field}_max"]
        for stat in ("count", "stddev", "last"):  # opt-in (stats) or never sent
            assert f"{field}_{stat}" not in cpu
    own = [v for k, v in collector.stored.items() if k[1] == "fleetpulse_agent"]
    assert own[0]["rss_bytes"] > 1_000_000
    assert "rss_bytes_max" not in own[0]  # the agent's own footprint: its average
    for name in ("spool_bytes", "spool_batches", "memory_batches"):
        assert name in own[0]  # levels, zero or not
    for name in ("dropped_batches", "send_errors", "dead_letters", "rejected"):
        assert all(name not in v for v in own)  # totals since start: none so far, so absent
    assert any(v.get("sent_batches", 0) >= 1 for v in own)
    assert all(len(fields) <= 40 for fields in collector.stored.values())


def test_a_failing_reader_costs_its_measurement_only(
    collector, make_cfg, tmp_path, agent_log
) -> None:
    class Broken(Collector):
        def tcp(self, now: float, out: list[Any]) -> None:
            raise PermissionError("no /proc/net/tcp here")

    cfg = make_cfg(collector.url, sample_interval=0.02, send_interval=0.1)
    agent = Agent(cfg, collector=Broken())
    thread = run_in_thread(agent)
    assert collector.wait_for(lambda: len(collector.posts) >= 2)
    agent.stop()
    thread.join(10)
    measurements = {k[1] for k in collector.stored}
    assert "tcp" not in measurements
    assert "cpu" in measurements
    warnings = [m for level, m in agent_log if "cannot collect tcp" in m]
    assert len(warnings) == 1  # said once, not every sample
    own = [v for k, v in collector.stored.items() if k[1] == "fleetpulse_agent"]
    assert own[-1]["collect_errors"] > 1


def test_an_exception_in_the_loop_is_counted_and_the_loop_goes_on(
    collector, make_cfg, agent_log
) -> None:
    cfg = make_cfg(collector.url, sample_interval=0.02, send_interval=0.1)
    agent = Agent(cfg)
    calls = {"n": 0}
    real = agent.sample

    def flaky() -> None:
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            raise RuntimeError("simulated bug")
        real()

    agent.sample = flaky  # type: ignore[method-assign]
    thread = run_in_thread(agent)
    assert collector.wait_for(lambda: len(collector.posts) >= 3)
    agent.stop()
    thread.join(10)
    assert agent.loop_errors >= 1
    assert any("simulated bug" in m for _, m in agent_log)


def test_shutdown_with_the_collector_down_keeps_the_last_batch_for_next_start(make_cfg) -> None:
    with FakeCollector() as collector:
        cfg = make_cfg(collector.url, sample_interval=0.02, send_interval=10, shutdown_timeout=0.5)
        collector.down()
        batches: list[dict[str, Any]] = []
        agent = Agent(cfg, on_batch=batches.append)
        thread = run_in_thread(agent)
        time.sleep(0.1)
        agent.stop()
        thread.join(10)
        assert not thread.is_alive()
        assert len(agent.spool.pending()) == 1
        assert batches[-1]["heartbeat"]["state"] == "shutdown"
        collector.up()
        again = Agent(cfg)
        assert again.sender.send_pending() == 0
        assert_complete_and_ordered(collector, batches)


def test_shutdown_with_a_stuck_backlog_still_says_goodbye(collector, make_cfg) -> None:
    cfg = make_cfg(
        collector.url, sample_interval=0.02, send_interval=10, shutdown_timeout=1, read_timeout=5
    )
    agent = Agent(cfg)
    collector.answer("stall")  # the backlog's request hangs; the bare goodbye gets through
    thread = run_in_thread(agent)
    time.sleep(0.1)
    agent.stop()
    thread.join(15)
    assert collector.wait_for(
        lambda: any(h["state"] == "shutdown" for h in collector.heartbeats), 5
    )


def test_the_stats_setting_chooses_what_each_gauge_sends_beside_its_average(
    collector, make_cfg
) -> None:
    cfg = make_cfg(collector.url, stats="count,stddev", processes="false")
    batches: list[dict] = []
    agent = Agent(cfg, on_batch=batches.append)
    for _ in range(3):
        agent.sample()
        time.sleep(0.05)
    agent.cut()
    [cpu] = [p["fields"] for b in batches for p in b["points"] if p["measurement"] == "cpu"]
    assert cpu["user_count"] == 2  # the first reading only primed the counters
    assert cpu["user_stddev"] >= 0
    assert "user_min" not in cpu
    assert "user_max" not in cpu
