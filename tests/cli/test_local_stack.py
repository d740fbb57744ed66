"""`fleetpulse local up`: the embedded AWS, the API, the schedule, SNS → SQS → notifier → inbox,
and a real agent, started and stopped in-process and as a command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from fleetpulse.stack import LocalStack, free_port
from tests.support.webhooks import SERVER_ERROR, Reply, ScriptedServer

ROOT = Path(__file__).resolve().parents[2]
RULES = """\
rules:
  - name: cpu-busy
    measurement: cpu
    field: idle
    op: "<"
    warning: 10
    critical: 3
    match: {cpu: total}
    summary: "CPU {value:.0f}% idle on {host}"
"""


@pytest.fixture
def rules(tmp_path, monkeypatch):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    monkeypatch.setenv("FLEETPULSE_RULES", str(path))
    for name in ("FLEETPULSE_SLACK_WEBHOOK_URL", "FLEETPULSE_PAGERDUTY_URL", "FLEETPULSE_STORE"):
        monkeypatch.delenv(name, raising=False)
    return path


def until(predicate, timeout=10.0, every=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not within {timeout} s")


def post_cpu(stack, host, idle, interval=30):
    now = int(time.time() * 1000)
    response = requests.post(
        f"{stack.url}/v1/ingest",
        headers={"Authorization": f"Bearer {stack.fleet_token}"},
        json={
            "host": host,
            "heartbeat": {"interval": interval},
            "points": [
                {
                    "measurement": "cpu",
                    "time": now,
                    "tags": {"cpu": "total"},
                    "fields": {"idle": idle},
                }
            ],
        },
        timeout=10,
    )
    assert response.status_code == 202, response.text


def hosts(stack):
    response = requests.get(
        f"{stack.url}/v1/hosts",
        headers={"Authorization": f"Bearer {stack.admin_token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return {h["host"]: h for h in response.json()["hosts"]}


def stray_threads(before):
    return [t.name for t in threading.enumerate() if t not in before and t.is_alive()]


def test_local_up_runs_the_agent_evaluates_and_notifies_through_sns_and_stops_clean(
    rules, tmp_path
):
    before = set(threading.enumerate())
    lines = []
    stack = LocalStack(
        port=free_port(),
        state_dir=tmp_path / "state",
        tick=0.3,
        agent_sample_interval=0.5,
        agent_send_interval=1,
        out=lines.append,
    )
    try:
        stack.start()
        env = dict(line.split("=", 1) for line in stack.env_file.read_text().splitlines() if line)
        assert env["FLEETPULSE_URL"] == stack.url
        assert env["FLEETPULSE_TOKEN"] == stack.fleet_token
        assert env["FLEETPULSE_ADMIN_TOKEN"] == stack.admin_token
        assert env["FLEETPULSE_ALERTS_TOPIC_ARN"] == (
            "arn:aws:sns:us-east-1:123456789012:fleetpulse-local-alerts"
        )
        assert stack.env_file.stat().st_mode & 0o777 == 0o600

        # The agent, a real process, reports this machine.
        agent_pid = stack.agent_pid
        agent = until(lambda: hosts(stack).get(stack.agent_host), timeout=15)
        assert agent["agent_name"] == "fleetpulse-agent"
        assert agent["state"] in ("new", "up")

        # Alerts go topic → queue (with the channel's filter policy) → handler → inbox.
        # Only the hosts this test drives are compared: the agent reports this machine,
        # whose own CPU may be busy enough to page for real.
        def driven():
            return [n for n in stack.inbox.notices if n.host in ("warm-1", "hot-1")]

        post_cpu(stack, "warm-1", idle=5.0)  # warning: Slack only
        post_cpu(stack, "hot-1", idle=1.0)  # critical: Slack and PagerDuty
        until(lambda: len(driven()) >= 3)
        time.sleep(1.0)  # time for anything that should not come
        got = sorted((n.channel, n.host, n.status, n.severity) for n in driven())
        assert got == [
            ("pagerduty", "hot-1", "firing", "critical"),
            ("slack", "hot-1", "firing", "critical"),
            ("slack", "warm-1", "firing", "warning"),
        ]
        pd = next(n for n in driven() if n.channel == "pagerduty")
        assert pd.body["routing_key"] == "local0routing0key0000000000000000"  # from the SSM
        assert pd.summary == "CPU 1% idle on hot-1"
        inbox = [json.loads(line) for line in stack.inbox_file.read_text().splitlines()]
        driven_texts = {json.dumps(n.body, sort_keys=True) for n in driven()}
        inbox = [r for r in inbox if json.dumps(r["body"], sort_keys=True) in driven_texts]
        assert sorted(r["channel"] for r in inbox) == ["pagerduty", "slack", "slack"]
        assert all(r["received_at"] and r["body"] for r in inbox)
        assert any(
            line.startswith("inbox  pagerduty trigger  critical CPU 1% idle on hot-1")
            for line in lines
        )

        # Back to normal: resolved, to the same channels.
        post_cpu(stack, "hot-1", idle=90.0)

        def resolved():
            return [n for n in driven() if n.status == "resolved"]

        until(lambda: len(resolved()) == 2)
        assert {(n.channel, n.host) for n in resolved()} == {
            ("slack", "hot-1"),
            ("pagerduty", "hot-1"),
        }
    finally:
        stack.stop()
    # The agent was stopped first: its shutdown heartbeat retired its host.
    assert stack.agent_retired is True
    assert "agent stopped; 0 batches left" in stack.agent_log.read_text()
    until(lambda: not stray_threads(before), timeout=5)
    assert not Path(f"/proc/{agent_pid}").exists()  # stopped and reaped
    assert "FLEETPULSE_STAGE" not in os.environ or os.environ["FLEETPULSE_STAGE"] != "local"


def test_a_failing_notifier_is_retried_from_its_queue(rules, tmp_path, monkeypatch):
    slack = ScriptedServer(Reply(200, "ok"))
    slack.script(SERVER_ERROR)
    monkeypatch.setenv("FLEETPULSE_SLACK_WEBHOOK_URL", slack.url + "/services/T/B/x")
    monkeypatch.setenv("FLEETPULSE_NOTIFY_MAX_ATTEMPTS", "1")
    lines = []
    stack = LocalStack(
        port=free_port(), state_dir=tmp_path, tick=0.3, agent=False, retry_after=1, out=lines.append
    )
    try:
        stack.start()
        post_cpu(stack, "warm-1", idle=5.0)
        until(lambda: len(slack.received) == 2, timeout=10)
        time.sleep(0.8)
        assert len(slack.received) == 2  # delivered on the retry, then deleted: no third post
        failed = [line for line in lines if "notify_slack failed (attempt 1 of 3)" in line]
        assert failed
        assert "retried in 1 s" in failed[0]
        assert stack.inbox.notices == []  # the user's webhook, not the inbox
    finally:
        stack.stop()
        slack.stop()


def test_local_up_refuses_a_bad_rules_file_before_starting_anything(tmp_path, monkeypatch, capsys):
    from fleetpulse.cli import main

    bad = tmp_path / "rules.yaml"
    bad.write_text(
        "rules:\n  - name: x\n    measurement: cpu\n    field: idle\n    warning: high\n"
    )
    monkeypatch.setenv("FLEETPULSE_RULES", str(bad))
    port = free_port()
    state = tmp_path / "state"
    assert main(["local", "up", "--port", str(port), "--state-dir", str(state)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"fleetpulse: {bad}: rules[0] (x).warning: must be a number")
    assert not state.exists()


def test_local_up_says_which_port_is_taken(tmp_path, monkeypatch, capsys, rules):
    import socket

    from fleetpulse.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["local", "up", "--port", str(port), "--state-dir", str(tmp_path)]) == 1
    assert f"127.0.0.1:{port} is in use" in capsys.readouterr().err


def test_the_command_stops_cleanly_on_sigterm(tmp_path, rules):
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fleetpulse",
            "local",
            "up",
            "--port",
            str(port),
            "--tick",
            "1",
            "--state-dir",
            str(tmp_path / "state"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out = []
        for line in process.stdout:
            out.append(line)
            if line.startswith("Ctrl-C stops everything."):
                break
        banner = "".join(out)
        assert f"collector API   http://127.0.0.1:{port}" in banner, banner
        assert f"status page     http://127.0.0.1:{port}/status?token=fp_" in banner
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, rest
    assert "retired" in rest, rest
    assert rest.rstrip().endswith("stopped."), rest


def children(pid):
    tasks = Path(f"/proc/{pid}/task")
    found = []
    for task in tasks.iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def command_line(pid):
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")


def gone(pid):
    return (
        not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    )


def test_the_agent_and_influxd_stop_when_the_stack_is_killed(tmp_path, rules):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fleetpulse",
            "local",
            "up",
            "--port",
            str(free_port()),
            "--state-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for line in process.stdout:
            if line.startswith("Ctrl-C stops everything."):
                break
        started = children(process.pid)
        [influxd] = [c for c in started if command_line(c)[0].endswith(b"influxd")]
        [agent] = [c for c in started if c != influxd]
        process.kill()
        process.wait()
        until(lambda: gone(agent) and gone(influxd), timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def put_ec2_event(detail_type: str, detail: dict) -> None:
    """What EC2 puts on the default bus, sent the way any AWS client reaches the local stack:
    PutEvents against the endpoint in .fleetpulse/local.env."""
    import boto3

    env = dict(
        line.split("=", 1)
        for line in (Path(".fleetpulse") / "local.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    events = boto3.client(
        "events",
        endpoint_url=env["FLEETPULSE_AWS_ENDPOINT_URL"].strip("'\""),
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    answer = events.put_events(
        Entries=[{"Source": "aws.ec2", "DetailType": detail_type, "Detail": json.dumps(detail)}]
    )
    assert answer["FailedEntryCount"] == 0


def post_as_instance(stack, host, instance_id):
    response = requests.post(
        f"{stack.url}/v1/ingest",
        headers={"Authorization": f"Bearer {stack.fleet_token}"},
        json={"host": host, "heartbeat": {"interval": 1}, "tags": {"instance_id": instance_id}},
        timeout=10,
    )
    assert response.status_code == 202, response.text


def test_ec2_events_on_the_local_bus_retire_and_pause_hosts_without_a_page(
    rules, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLEETPULSE_HEARTBEAT_GRACE", "1s")
    lines: list[str] = []
    stack = LocalStack(port=free_port(), state_dir=Path(".fleetpulse"), tick=0.3, agent=False)
    stack.out = lines.append
    try:
        stack.start()
        post_as_instance(stack, "spot-1", "i-0spot")
        post_as_instance(stack, "web-1", "i-0web")
        post_as_instance(stack, "crash-1", "i-0crash")  # dies without an event: a real outage
        put_ec2_event(
            "EC2 Spot Instance Interruption Warning",
            {"instance-id": "i-0spot", "instance-action": "terminate"},
        )
        put_ec2_event(
            "EC2 Instance State-change Notification", {"instance-id": "i-0web", "state": "stopped"}
        )
        until(lambda: hosts(stack)["spot-1"]["state"] == "retired")
        until(lambda: hosts(stack)["web-1"]["state"] == "paused")
        # All three fall silent; only the one EC2 said nothing about pages.
        down = stack.inbox.wait_for(lambda n: n.status == "firing", timeout=20)
        assert down is not None
        assert down.host == "crash-1"
        assert {n.host for n in stack.inbox.notices} == {"crash-1"}
        assert {h: v["state"] for h, v in hosts(stack).items()} == {
            "spot-1": "retired",
            "web-1": "paused",
            "crash-1": "down",
        }
        post_as_instance(stack, "web-1", "i-0web")  # started again: up
        assert hosts(stack)["web-1"]["state"] in ("new", "up")
        assert sum("ec2_lifecycle: event delivered" in line for line in lines) == 2
    finally:
        stack.stop()
