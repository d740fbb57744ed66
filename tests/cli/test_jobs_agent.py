"""`fleetpulse-agent exec --job SLUG -- COMMAND`, the real agent program against the app
served on a real local socket: start and finish pings, the command's own exit status, and
pings that wait in the spool while the collector is unreachable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fleetpulse.stack import free_port
from tests.cli.test_alerting_commands import run, served
from tests.support.http import add_token

__all__ = ["served"]

AGENT = Path(__file__).resolve().parents[2] / "agent"


def agent_env(tmp_path: Path, url: str, ping_key: str, token: str) -> dict[str, str]:
    (tmp_path / "none.conf").write_text("[agent]\n")
    return {
        **os.environ,
        "PYTHONPATH": str(AGENT),
        "FLEETPULSE_CONFIG": str(tmp_path / "none.conf"),
        "FLEETPULSE_URL": url,
        "FLEETPULSE_TOKEN": token,
        "FLEETPULSE_PING_KEY": ping_key,
        "FLEETPULSE_HOST": "cron-1",
        "FLEETPULSE_SPOOL_DIR": str(tmp_path / "spool"),
        "FLEETPULSE_STATSD": "off",
        "FLEETPULSE_DNS_FALLBACK": "",
        "FLEETPULSE_EC2_TAGS": "false",
        "FLEETPULSE_CONNECT_TIMEOUT": "1",
        "FLEETPULSE_RETRY_BASE": "0.01",
        "FLEETPULSE_MAX_BACKOFF": "0.05",
    }


def agent(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleetpulse_agent", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def show(capsys, slug: str) -> dict:
    return json.loads(run(capsys, "jobs", "show", slug, "--json")[1])


def test_exec_reports_the_run_and_exits_with_the_commands_status(served, capsys, tmp_path):
    stack = served
    # The app's clock a little ahead of this machine's: the agent's pings carry real times.
    stack.clock.at = datetime.now(UTC) + timedelta(seconds=30)
    key = add_token(stack.services, "ping")
    run(capsys, "jobs", "add", "backup", "--period", "1d")
    script = (
        "import sys, time; print('dumping db'); time.sleep(0.3); print('disk full'); sys.exit(3)"
    )
    env = agent_env(tmp_path, os.environ["FLEETPULSE_URL"], key, stack.fleet_token)
    done = agent(
        env,
        "exec",
        "--job",
        "backup",
        "--",
        sys.executable,
        "-c",
        script,
    )
    assert done.returncode == 3, done.stderr
    assert "dumping db" in done.stdout  # the output passes through
    job = show(capsys, "backup")
    assert job["status"] == "failed"
    assert job["last_run"]["exit_status"] == 3
    assert 0.3 <= job["last_run"]["duration_s"] < 60
    assert "disk full" in job["log"]
    assert "exit status 3" in job["log"]
    assert job["running"] == 0  # the start was paired by its rid
    ok = agent(
        env,
        "exec",
        "--job",
        "backup",
        "--",
        sys.executable,
        "-c",
        "pass",
    )
    assert ok.returncode == 0, ok.stderr
    assert show(capsys, "backup")["status"] == "up"
    missing = agent(
        env,
        "exec",
        "--job",
        "backup",
        "--",
        str(tmp_path / "no-such-program"),
    )
    assert missing.returncode == 127
    assert show(capsys, "backup")["last_run"]["exit_status"] == 127


def test_a_run_while_the_collector_is_unreachable_is_reported_later(served, capsys, tmp_path):
    stack = served
    stack.clock.at = datetime.now(UTC) + timedelta(seconds=30)
    key = add_token(stack.services, "ping")
    run(capsys, "jobs", "add", "nightly", "--period", "1d", "--min-duration", "1s")
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    script = "import time; time.sleep(1.2); print('ok')"
    done = agent(
        agent_env(tmp_path, down, key, stack.fleet_token),
        "exec",
        "--job",
        "nightly",
        "--timeout",
        "1",
        "--",
        sys.executable,
        "-c",
        script,
    )
    assert done.returncode == 0, done.stderr
    assert "not delivered yet" in done.stderr
    assert len(list((tmp_path / "spool").glob("*.json.gz"))) == 2
    assert show(capsys, "nightly")["status"] == "new"
    # The next run of the agent (here `once`, as from cron) delivers them, in order.
    env = agent_env(tmp_path, os.environ["FLEETPULSE_URL"], key, stack.fleet_token)
    later = agent(env, "once", "--budget", "20")
    assert later.returncode == 0, later.stderr
    job = show(capsys, "nightly")
    # Measured from when it happened, not from when it arrived: not "too short".
    assert job["status"] == "up", job
    assert 1.2 <= job["last_run"]["duration_s"] < 60
    assert list((tmp_path / "spool").glob("*.json.gz")) == []


def test_the_zipapp_exits_with_the_commands_status(served, capsys, tmp_path):
    from fleetpulse.agentbuild import build_pyz

    stack = served
    stack.clock.at = datetime.now(UTC) + timedelta(seconds=30)
    key = add_token(stack.services, "ping")
    run(capsys, "jobs", "add", "report", "--period", "1h")
    pyz = tmp_path / "fleetpulse-agent.pyz"
    pyz.write_bytes(build_pyz())
    env = agent_env(tmp_path, os.environ["FLEETPULSE_URL"], key, stack.fleet_token)
    done = subprocess.run(
        [
            sys.executable,
            str(pyz),
            "exec",
            "--job",
            "report",
            "--",
            sys.executable,
            "-c",
            "raise SystemExit(5)",
        ],
        env={k: v for k, v in env.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 5, done.stderr
    assert show(capsys, "report")["last_run"]["exit_status"] == 5
