"""`fleetpulse local up` runs the remote checks on its tick, each location simulated by name."""

from __future__ import annotations

import time

import pytest
import requests

from fleetpulse.stack import LocalStack, free_port


def until(predicate, timeout=20.0, every=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not within {timeout} s")


@pytest.fixture
def env(tmp_path, monkeypatch, tcp_ports):
    checks = tmp_path / "checks.yaml"
    checks.write_text(
        "checks:\n"
        "  - name: db-port\n"
        "    type: tcp\n"
        "    host: 127.0.0.1\n"
        f"    port: {tcp_ports.refused_port}\n"
        "    locations: [us-east-1, eu-west-1]\n"
        "    quorum: 2\n"
        "  - name: web-port\n"
        "    type: tcp\n"
        "    host: 127.0.0.1\n"
        f"    port: {tcp_ports.open_port}\n"
    )
    monkeypatch.setenv("FLEETPULSE_CHECKS", str(checks))
    for name in ("FLEETPULSE_SLACK_WEBHOOK_URL", "FLEETPULSE_PAGERDUTY_URL", "FLEETPULSE_RULES"):
        monkeypatch.delenv(name, raising=False)
    return checks


def test_the_local_stack_runs_checks_from_every_location_and_pages(env, tmp_path):
    stack = LocalStack(port=free_port(), state_dir=tmp_path / "state", tick=0.3, agent=False)
    try:
        stack.start()
        headers = {"Authorization": f"Bearer {stack.admin_token}"}

        def check_alerts():
            reply = requests.get(f"{stack.url}/v1/alerts", headers=headers, timeout=10)
            return [a for a in reply.json()["alerts"] if a["kind"] == "check"]

        [alert] = until(check_alerts)
        assert (alert["rule"], alert["state"], alert["host"]) == ("db-port", "firing", "127.0.0.1")
        # Quorum 2 of 2: both simulated locations ran and failed.
        assert alert["summary"].startswith(
            "db-port failing from 2 of 2: connect: connection refused"
        )
        notice = until(lambda: [n for n in stack.inbox.notices if n.channel == "pagerduty"])
        assert "db-port" in notice[0].line()
        listed = requests.get(f"{stack.url}/v1/checks", headers=headers, timeout=10).json()
        assert [c["name"] for c in listed["checks"]] == ["db-port", "web-port"]
    finally:
        stack.stop()


def test_a_bad_checks_file_stops_local_up_before_anything_starts(env, capsys):
    from fleetpulse.cli import main

    env.write_text("checks:\n  - {name: db, type: tcp, host: db, port: 0}\n")
    assert main(["local", "up", "--no-agent", "--port", str(free_port())]) == 1
    err = capsys.readouterr().err
    assert "checks[0] (db).port: must be a port 1..65535, got 0" in err
