"""The agent as the host runs it: a real process, signals, the zipapp, Python 3.8, the CLI."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import PYTHON, agent_env, python38
from fake_collector import Answer, FakeCollector
from fleetpulse_agent.deliver import decode

from fleetpulse.agentbuild import build_pyz


def start(env: dict[str, str], *args: str, python: str = PYTHON) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [python, "-S", "-m", "fleetpulse_agent", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def spooled_points(spool: Path) -> set[tuple[str, str, tuple[tuple[str, str], ...], int]]:
    keys = set()
    for f in spool.glob("*.json.gz"):
        doc = decode(f.read_bytes())
        for p in doc["points"]:
            keys.add(
                (
                    doc["host"],
                    p["measurement"],
                    tuple(sorted((p.get("tags") or {}).items())),
                    p["time"],
                )
            )
    return keys


@pytest.mark.parametrize(
    "stored_before_kill", [False, True], ids=["lost-in-flight", "stored-unanswered"]
)
def test_kill_9_mid_send_then_restart_resends_and_stores_once(
    tmp_path, collector, stored_before_kill
) -> None:
    env = agent_env(
        tmp_path, collector.url, sample_interval="0.05", send_interval="0.3", read_timeout="30"
    )
    collector.default = Answer("store-stall" if stored_before_kill else "stall")
    in_flight = []
    collector.on_request = lambda: in_flight.append(time.monotonic())
    proc = start(env, "run")
    try:
        assert collector.wait_for(lambda: len(in_flight) >= 1, 10), "the agent never posted"
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
    finally:
        if proc.poll() is None:
            proc.kill()
    spool = tmp_path / "spool"
    pending = spooled_points(spool)
    assert pending, "the batch being sent must still be in the spool after kill -9"
    collector.default = Answer(202)
    collector.release.set()
    done = subprocess.run(  # noqa: PLW1510 (the status is asserted)
        [PYTHON, "-S", "-m", "fleetpulse_agent", "once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert pending <= set(collector.stored)
    assert collector.conflicts == []
    if stored_before_kill:
        assert collector.duplicates > 0  # it did arrive twice, and was stored once
    assert list(spool.glob("*.json.gz")) == []


def test_sigterm_flushes_and_says_shutdown(tmp_path, collector) -> None:
    env = agent_env(tmp_path, collector.url, sample_interval="0.05", send_interval="0.2")
    proc = start(env, "run")
    assert collector.wait_for(lambda: len(collector.heartbeats) >= 2, 10)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert collector.heartbeats[-1]["state"] == "shutdown"
    assert collector.heartbeats[-1]["interval"] == 1  # 0.2 s rounds up to the 1 s minimum
    assert list((tmp_path / "spool").glob("*.json.gz")) == []


def test_once_sends_the_backlog_and_the_new_sample(tmp_path, collector) -> None:
    env = agent_env(tmp_path, collector.url)
    collector.down()
    first = subprocess.run(  # noqa: PLW1510 (the status is asserted)
        [PYTHON, "-S", "-m", "fleetpulse_agent", "once", "--budget", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert first.returncode == 1  # the batch waits in the spool
    backlog = spooled_points(tmp_path / "spool")
    assert backlog
    collector.up()
    second = subprocess.run(  # noqa: PLW1510 (the status is asserted)
        [PYTHON, "-S", "-m", "fleetpulse_agent", "once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 0, second.stderr
    assert backlog < set(collector.stored)  # the backlog and a newer sample
    cpu = [k for k in collector.stored if k[1] == "cpu"]
    assert len(cpu) == 2  # one sample per run, each with its rates


def test_runs_on_python_3_8(tmp_path, collector) -> None:
    python = python38()
    env = agent_env(tmp_path, collector.url)
    done = subprocess.run(  # noqa: PLW1510 (the status is asserted)
        [python, "-S", "-m", "fleetpulse_agent", "once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert {"cpu", "memory", "fleetpulse_agent"} <= {k[1] for k in collector.stored}
    done = subprocess.run(  # noqa: PLW1510 (the status is asserted)
        [python, "-S", "-m", "fleetpulse_agent", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_zipapp_runs_alone(tmp_path, collector) -> None:
    pyz = tmp_path / "fleetpulse-agent.pyz"
    pyz.write_bytes(build_pyz())
    env = agent_env(tmp_path, collector.url)
    del env["PYTHONPATH"]
    done = subprocess.run(  # noqa: PLW1510 (the status is asserted)
        [PYTHON, "-S", str(pyz), "once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "cpu" in {k[1] for k in collector.stored}


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "FLEETPULSE_SAMPLE_INTERVAL",
            "often",
            "sample_interval='often' is not valid; expected seconds",
        ),
        (
            "FLEETPULSE_TAGS",
            "role",
            "tags='role' is not valid; expected comma-separated name=value",
        ),
        ("FLEETPULSE_URL", "collector", "url='collector' is not valid"),
    ],
)
def test_a_bad_setting_is_one_clear_line_and_exit_2(tmp_path, variable, value, expected) -> None:
    env = agent_env(tmp_path, "http://127.0.0.1:9")
    env[variable] = value
    done = subprocess.run(  # noqa: PLW1510 (the status is asserted)
        [PYTHON, "-S", "-m", "fleetpulse_agent", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert variable in lines[0]
    assert expected in lines[0]


def test_event_command_sends_a_heartbeat_event(tmp_path, collector) -> None:
    env = agent_env(tmp_path, collector.url)
    done = subprocess.run(  # noqa: PLW1510 (the status is asserted)
        [
            PYTHON,
            "-S",
            "-m",
            "fleetpulse_agent",
            "event",
            "--service",
            "backup",
            "--status",
            "ok",
            "--ttl",
            "90000",
            "--description",
            "nightly backup done",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    [event] = collector.events
    assert event["service"] == "backup"
    assert event["status"] == "ok"
    assert event["ttl_ms"] == 90_000  # milliseconds, on the command line as on the wire
    assert event["description"] == "nightly backup done"
    assert collector.posts[-1].heartbeat is None  # an event is not the agent's own heartbeat


def test_event_command_spools_when_the_collector_is_down(tmp_path) -> None:
    with FakeCollector() as collector:
        collector.down()
        env = agent_env(tmp_path, collector.url)
        done = subprocess.run(  # noqa: PLW1510 (the status is asserted)
            [
                PYTHON,
                "-S",
                "-m",
                "fleetpulse_agent",
                "event",
                "--service",
                "backup",
                "--status",
                "critical",
                "--timeout",
                "1",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 3
        assert "spooled" in done.stderr
        collector.up()
        subprocess.run(  # noqa: PLW1510 (the status is asserted)
            [PYTHON, "-S", "-m", "fleetpulse_agent", "once"],
            env=env,
            capture_output=True,
            timeout=60,
        )
        assert [e["status"] for e in collector.events] == ["critical"]


def test_status_walks_dns_tcp_http_and_token(tmp_path, collector) -> None:
    env = agent_env(tmp_path, collector.url)
    done = subprocess.run(  # noqa: PLW1510 (the status is asserted)
        [PYTHON, "-S", "-m", "fleetpulse_agent", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout
    out = done.stdout
    for label in ("config", "spool", "last send", "dns", "tcp", "http", "token"):
        assert any(line.startswith(label) for line in out.splitlines()), f"no {label} line:\n{out}"
    assert "token        POST /v1/ingest -> 202" in out
    assert collector.stored == {}  # the token check posts no points

    env["FLEETPULSE_TOKEN"] = "wrong-token"
    done = subprocess.run(  # noqa: PLW1510 (the status is asserted)
        [PYTHON, "-S", "-m", "fleetpulse_agent", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "REFUSED: 401 missing, unknown or revoked token" in done.stdout


def test_status_names_the_failing_step(tmp_path) -> None:
    env = agent_env(tmp_path, "http://collector.invalid")
    done = subprocess.run(  # noqa: PLW1510 (the status is asserted)
        [PYTHON, "-S", "-m", "fleetpulse_agent", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "dns          FAILED: cannot resolve collector.invalid" in done.stdout


def test_a_spool_another_process_is_sending_from_is_left_alone(
    tmp_path, collector, make_cfg
) -> None:
    from fleetpulse_agent.deliver import Sender, encode, envelope
    from fleetpulse_agent.spool import Spool

    cfg = make_cfg(collector.url)
    spool = Spool(cfg.spool_dir, 2**20, 2**20)
    doc = envelope(cfg.host, cfg.tags, 60, "alive")
    doc["points"] = [
        {"measurement": "cpu", "time": int(time.time() * 1000), "fields": {"user": 1.0}}
    ]
    spool.put(encode(doc))
    holder = subprocess.Popen(
        [
            PYTHON,
            "-c",
            "import fcntl,sys,time; f=open(sys.argv[1],'a'); fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(30)",
            str(Path(cfg.spool_dir) / ".lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        assert Sender(cfg, spool).send_pending() > 0
        assert collector.posts == []
    finally:
        holder.kill()
        holder.wait()
    assert Sender(cfg, spool).send_pending() == 0
    assert len(collector.posts) == 1
