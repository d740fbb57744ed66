"""The agent's own problems reach the collector as `service=fleetpulse-agent` events."""

from __future__ import annotations

from fake_collector import closed_port
from fleetpulse_agent.agent import Agent
from fleetpulse_agent.collect import Collector


def own_events(collector) -> list[tuple[str, str]]:
    return [(e["status"], e["description"]) for e in collector.events]


def test_a_failing_reader_is_a_warning_with_the_last_error_then_ok(
    collector, make_cfg, tmp_path
) -> None:
    agent = Agent(make_cfg(collector.url), collector=Collector(proc=str(tmp_path / "no-proc")))
    agent.sample()  # every /proc reader fails
    agent.cut()
    agent.sender.send_pending()
    [(status, text)] = own_events(collector)
    assert status == "warning"
    assert "problem(s); last: cannot collect " in text
    assert "No such file" in text
    assert {e["service"] for e in collector.events} == {"fleetpulse-agent"}
    agent.sample()  # failing again, but a reader warns once until it recovers
    agent.cut()
    agent.sample()
    agent.cut()  # a quiet interval sends nothing more
    agent.sender.send_pending()
    assert [s for s, _ in own_events(collector)] == ["warning", "ok"]


def test_failed_sends_are_reported_once_the_collector_is_reachable(collector, make_cfg) -> None:
    url = collector.url
    agent = Agent(make_cfg(f"http://127.0.0.1:{closed_port()}"))
    agent.cut()
    agent.sender.send_pending()  # refused: logged as a warning
    agent.sender.url = url + "/v1/ingest"
    agent.sender.not_before = 0.0
    agent.cut()
    agent.sender.send_pending(urgent=True)
    warnings = [t for s, t in own_events(collector) if s == "warning"]
    assert warnings
    assert "send failed" in warnings[0]
