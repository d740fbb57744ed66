"""Exec checks with the real Nagios plugins of Debian's monitoring-plugins-basic.

`[check:NAME]` sections, the plugins' exit statuses and output, timeouts that
kill the whole process group, a hung plugin that holds up neither the other
checks nor the sampling, the `check` command, and the agent posting a check's
event and point to a real local collector.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PYTHON, agent_env, python38
from fake_collector import FakeCollector
from fleetpulse_agent import config
from fleetpulse_agent.agent import Agent
from fleetpulse_agent.checks import Check, CheckRunner, load_checks
from fleetpulse_agent.config import ConfigError

from fleetpulse.agentbuild import bundle, bundle_pyz
from fleetpulse.commands.userdata import LEAVE_OUT
from tests.support.programs import require_program

PLUGINS = Path("/usr/lib/nagios/plugins")
Result = tuple[dict[str, Any], dict[str, Any], list[str]]


def require_plugin(name: str) -> str:
    """The plugin's path; a skip when it is missing, a failure when CI=true."""
    return require_program(name, "monitoring-plugins-basic", path=str(PLUGINS))


def run_once(*checks: Check) -> dict[str, Result]:
    """Every check run once, concurrently, by name."""
    runner = CheckRunner(list(checks), lambda _: pytest.fail("once() delivers nothing"))
    runner.once()
    runner.stop()
    return {event["service"]: (event, point, reasons) for event, point, reasons in runner.take()}


def check(name: str, *argv: str, interval: float = 60, timeout: float = 10) -> Check:
    return Check(name, list(argv), interval, timeout)


def ended(pid: int) -> bool:
    """True when the process is gone or a zombie (its parent may be slow to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def wait_until(predicate: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts and closes connections."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                conn.close()
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    server.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ configuration


def cfg_with(tmp_path: Path, text: str, files: dict[str, str] | None = None) -> Any:
    checks_dir = tmp_path / "checks.d"
    checks_dir.mkdir(exist_ok=True)
    for name, body in (files or {}).items():
        (checks_dir / name).write_text(body)
    path = tmp_path / "agent.conf"
    path.write_text(text)
    return config.load(str(path), env={"FLEETPULSE_CHECKS_DIR": str(checks_dir)}, require_url=False)


def test_checks_come_from_the_config_file_and_the_checks_directory(tmp_path) -> None:
    cfg = cfg_with(
        tmp_path,
        "[agent]\nurl = https://c.example\n\n[check:load]\ncommand = check_load -w 5,4,3 -c 10,8,6\n",
        {
            "20-disk.conf": "[check:disk]\ncommand = check_disk -w 10% -c 5% -p '/var/lib/my data'\n"
            "interval = 300\ntimeout = 20\n",
            "10-web.conf": "# the web tier\n[check:web/health]\ncommand: check_http -H localhost\n",
            "notes.txt": "[check:ignored]\ncommand = nothing\n",
        },
    )
    checks = {c.name: c for c in load_checks(cfg)}
    assert list(checks) == ["load", "web/health", "disk"]  # the file first, then by file name
    assert (checks["load"].argv, checks["load"].interval, checks["load"].timeout) == (
        ["check_load", "-w", "5,4,3", "-c", "10,8,6"],
        60,
        10,
    )
    assert checks["disk"].argv[-1] == "/var/lib/my data"  # quoted as in a shell, never run by one
    assert (checks["disk"].interval, checks["disk"].timeout) == (300, 20)
    assert checks["web/health"].argv == ["check_http", "-H", "localhost"]


def test_no_checks_directory_means_no_checks_from_it(tmp_path) -> None:
    path = tmp_path / "agent.conf"
    path.write_text("[agent]\n")
    cfg = config.load(
        str(path), env={"FLEETPULSE_CHECKS_DIR": str(tmp_path / "absent")}, require_url=False
    )
    assert load_checks(cfg) == []


@pytest.mark.parametrize(
    ("text", "files", "message"),
    [
        (
            "[check:load]\ncommand = check_load\nintervall = 5\n",
            {},
            "agent.conf [check:load]: unknown key 'intervall' (known: command, interval, timeout)",
        ),
        (
            "[check:load]\ncommand = check_load\ninterval = soon\n",
            {},
            "[check:load]: interval='soon' is not valid; expected seconds, 1 to 86400",
        ),
        ("[check:load]\ncommand = x\ninterval = 0\n", {}, "[check:load]: interval='0'"),
        ("[check:load]\ncommand = x\ninterval = nan\n", {}, "[check:load]: interval='nan'"),
        ("[check:load]\ncommand = x\ntimeout = -1\n", {}, "[check:load]: timeout='-1'"),
        ("[check:load]\ninterval = 5\n", {}, "[check:load]: command is not set"),
        ("[check:load]\ncommand =\n", {}, "[check:load]: command is not set"),
        (
            "[check:load]\ncommand = check_load -w '5,4,3\n",
            {},
            '[check:load]: command="check_load -w \'5,4,3" is not valid (No closing quotation)',
        ),
        ("[check:bad name]\ncommand = x\n", {}, "'bad name' is not a valid check name"),
        ("[check:]\ncommand = x\n", {}, "'' is not a valid check name"),
        (
            "[check:load]\ncommand = x\n",
            {"a.conf": "[check:load]\ncommand = y\n"},
            "a.conf: check 'load' is already defined in",
        ),
        ("", {"a.conf": "[agent]\nurl = https://x\n"}, "a.conf: [agent] belongs in"),
        ("", {"a.conf": "[checks:x]\n"}, "a.conf: unknown section [checks:x]"),
        ("", {"b.conf": "command = x\n"}, "b.conf line 1: expected `key = value` under [agent]"),
        ("[check:x]\njust words\n", {}, "line 2: expected `key = value` under [check:x]"),
    ],
)
def test_a_bad_check_section_names_the_file_the_section_and_the_key(
    tmp_path, text: str, files: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_checks(cfg_with(tmp_path, text, files))
    assert message in str(err.value)


# ------------------------------------------------------------------ the real plugins


def test_check_dummy_gives_each_exit_status_its_state_and_output() -> None:
    dummy = require_plugin("check_dummy")
    results = run_once(
        check("ok", dummy, "0", "all good"),
        check("warn", dummy, "1", "getting full"),
        check("crit", dummy, "2", "full"),
        check("unknown", dummy, "3", "cannot tell"),
        check("bad-state", dummy, "4"),
        check("silent", dummy, "0"),
    )
    seen = {name: (r[0]["status"], r[0]["description"]) for name, r in results.items()}
    assert seen == {
        "ok": ("ok", "OK: all good"),
        "warn": ("warning", "WARNING: getting full"),
        "crit": ("critical", "CRITICAL: full"),
        "unknown": ("unknown", "UNKNOWN: cannot tell"),
        "bad-state": ("unknown", "UNKNOWN: Status 4 is not a supported error state"),
        "silent": ("ok", "OK"),
    }
    for name, (event, point, _) in results.items():
        assert event["ttl"] == 180_000
        assert point["tags"] == {"check": name, "type": "exec"}
        assert point["fields"]["status"] == ["ok", "warning", "critical", "unknown"].index(
            event["status"]
        )


def test_check_load_perfdata_arrives_as_fields_with_thresholds() -> None:
    plugin = require_plugin("check_load")
    event, point, reasons = run_once(
        check("load", plugin, "-w", "1000,1000,1000", "-c", "2000,2000,2000")
    )["load"]
    assert event["status"] == "ok"
    assert event["description"].startswith("LOAD OK - total load average:")
    assert reasons == []
    fields = point["fields"]
    for name in ("load1", "load5", "load15"):
        assert 0 <= fields[name] < 1000
        assert (fields[f"{name}.warn"], fields[f"{name}.crit"]) == (1000, 2000)


def test_check_disk_reports_the_mount_in_bytes() -> None:
    plugin = require_plugin("check_disk")
    event, point, reasons = run_once(check("disk", plugin, "-w", "0%", "-c", "0%", "-p", "/"))[
        "disk"
    ]
    assert event["status"] == "ok", event
    assert reasons == []
    st = os.statvfs("/")
    total = st.f_blocks * st.f_frsize
    fields = point["fields"]
    assert 0 < fields["_/.max"] <= total
    assert 0 < fields["_/"] <= fields["_/.max"]


def test_check_tcp_against_a_listening_and_a_closed_port(listener) -> None:
    plugin = require_plugin("check_tcp")
    results = run_once(
        check("open", plugin, "-H", "127.0.0.1", "-p", str(listener)),
        check("closed", plugin, "-H", "127.0.0.1", "-p", str(free_port())),
    )
    event, point, _ = results["open"]
    assert event["status"] == "ok"
    assert f"port {listener}" in event["description"]
    assert 0 <= point["fields"]["_time"] < 10  # seconds, under its 10 s maximum
    assert point["fields"]["_time.max"] == 10
    event, point, _ = results["closed"]
    assert event["status"] == "critical"
    assert "Connection refused" in event["description"]


def test_a_plugin_that_cannot_run_or_misbehaves_is_unknown_with_the_reason(tmp_path) -> None:
    not_executable = tmp_path / "plugin"
    not_executable.write_text("#!/bin/sh\necho hi\n")
    results = run_once(
        check("missing", "/nonexistent/check_thing"),
        check("not-executable", str(not_executable)),
        check("odd-exit", "sh", "-c", "echo broken; exit 7"),
        check("signal", "sh", "-c", "echo half done; kill -TERM $$"),
        check("stderr-only", "sh", "-c", "echo no such device >&2; exit 2"),
    )
    seen = {name: (r[0]["status"], r[0]["description"]) for name, r in results.items()}
    assert seen == {
        "missing": ("unknown", "cannot run /nonexistent/check_thing: No such file or directory"),
        "not-executable": ("unknown", f"cannot run {not_executable}: Permission denied"),
        "odd-exit": ("unknown", "exit status 7: broken"),
        "signal": ("unknown", "killed by SIGTERM: half done"),
        "stderr-only": ("critical", "no such device"),
    }


def test_a_bare_plugin_name_is_found_in_the_plugin_directory() -> None:
    require_plugin("check_dummy")
    event, _, _ = run_once(check("bare", "check_dummy", "0", "found"))["bare"]
    assert (event["status"], event["description"]) == ("ok", "OK: found")


def test_a_flood_of_output_is_capped_and_never_blocks_the_plugin() -> None:
    event, _, _ = run_once(
        check("noisy", "sh", "-c", "head -c 5000000 /dev/zero | tr '\\0' a; echo; exit 1")
    )["noisy"]
    assert event["status"] == "warning"  # it ran to its end: the pipe was drained
    assert len(event["description"].encode()) <= 1024
    assert set(event["description"].rstrip(".")) == {"a"}


def test_a_timeout_kills_the_plugins_whole_process_group(tmp_path) -> None:
    pid_file = tmp_path / "child.pid"
    script = f"sleep 600 & echo $! > {pid_file}; echo started; wait"
    event, point, _ = run_once(check("hangs", "sh", "-c", script, timeout=0.5))["hangs"]
    assert event["status"] == "unknown"
    assert event["description"] == "timed out after 0.5s; its process group was killed"
    assert point["fields"]["status"] == 3
    child = int(pid_file.read_text())
    assert wait_until(lambda: ended(child)), "the plugin's child outlived the timeout"


def test_a_hung_check_delays_neither_another_check_nor_its_own_kill(tmp_path) -> None:
    dummy = require_plugin("check_dummy")
    pid_file = tmp_path / "hung.pid"
    results: list[Result] = []
    arrived = threading.Condition()

    def deliver(batch: list[Result]) -> None:
        with arrived:
            results.extend(batch)
            arrived.notify_all()

    hung = check("hung", "sh", "-c", f"echo $$ > {pid_file}; exec sleep 3600", timeout=3600)
    quick = check("quick", dummy, "0", "fine", interval=1)
    runner = CheckRunner([hung, quick], deliver).start()
    try:
        with arrived:
            assert arrived.wait_for(lambda: len(results) >= 3, 60), results
        # three results of the quick check while the hung one still runs
        assert [r[0]["service"] for r in results] == ["quick"] * len(results)
        assert "hung" in runner.running
        pid = int(pid_file.read_text())
        assert not ended(pid)
    finally:
        runner.stop()
    assert wait_until(lambda: ended(pid)), "stopping the runner left the hung plugin running"
    assert "hung" not in [r[0]["service"] for r in results]  # cut short by the stop: no result


def test_a_hung_check_does_not_delay_sampling_or_sending(tmp_path, collector, make_cfg) -> None:
    pid_file = tmp_path / "hung.pid"
    cfg = make_cfg(collector.url, sample_interval=0.05, send_interval=0.2)
    hung = check("hung", "sh", "-c", f"echo $$ > {pid_file}; exec sleep 3600", timeout=3600)
    agent = Agent(cfg, checks=[hung])
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        assert wait_until(pid_file.exists)
        assert collector.wait_for(lambda: len(collector.heartbeats) >= 3, 60)
        cpu = [k for k in collector.stored if k[1] == "cpu"]
        assert cpu, "samples must keep arriving while the check hangs"
        assert agent.checks is not None
        assert "hung" in agent.checks.running
    finally:
        agent.stop()
        thread.join(30)
    assert not thread.is_alive()
    assert wait_until(lambda: ended(int(pid_file.read_text())))


def test_only_a_change_of_status_is_delivered_at_once_steady_results_wait(tmp_path) -> None:
    dummy = require_plugin("check_dummy")
    counter = tmp_path / "n"
    flips = f"n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}; exit $((n % 2))"
    delivered: list[list[Result]] = []
    arrived = threading.Condition()

    def deliver(batch: list[Result]) -> None:
        with arrived:
            delivered.append(batch)
            arrived.notify_all()

    steady = check("steady", dummy, "0", "fine", interval=1)
    flipping = check("flipping", "sh", "-c", flips, interval=1)
    runner = CheckRunner([steady], deliver, batch_interval=1).start()
    try:
        with arrived:
            assert arrived.wait_for(lambda: len(delivered) >= 1, 60)
        assert wait_until(lambda: len(runner.waiting) >= 3)
    finally:
        runner.stop()
    # the first result is news; the same status again waits for the agent's batch
    assert [[r[0]["service"] for r in batch] for batch in delivered] == [["steady"]]
    assert {r[0]["status"] for r in runner.take()} == {"ok"}
    delivered.clear()
    runner = CheckRunner([flipping], deliver, batch_interval=1).start()
    try:
        with arrived:
            assert arrived.wait_for(lambda: len(delivered) >= 4, 60)
    finally:
        runner.stop()
    assert [batch[0][0]["status"] for batch in delivered[:4]] == ["ok", "warning"] * 2
    # a check run more often than the agent sends cannot wait: its ttl would run out
    delivered.clear()
    runner = CheckRunner([steady], deliver, batch_interval=2).start()
    try:
        with arrived:
            assert arrived.wait_for(lambda: len(delivered) >= 3, 60)
    finally:
        runner.stop()
    assert runner.take() == []


def test_steady_check_results_ride_with_the_agents_regular_batch(tmp_path, collector, make_cfg):
    dummy = require_plugin("check_dummy")
    batches: list[dict[str, Any]] = []
    cfg = make_cfg(collector.url, sample_interval=0.05, send_interval=1)
    agent = Agent(cfg, on_batch=batches.append, checks=[check("steady", dummy, "0", interval=1)])
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        assert collector.wait_for(
            lambda: sum(e["service"] == "steady" for e in collector.events) >= 3, 60
        )
    finally:
        agent.stop()
        thread.join(30)
    with_checks = [b for b in batches if b.get("events")]
    assert "heartbeat" not in with_checks[0]  # the first result is news: sent at once
    assert all("heartbeat" in b for b in with_checks[1:])  # then with the interval's samples
    for b in with_checks[1:]:
        assert {p["measurement"] for p in b["points"]} >= {"check", "cpu"}
    assert collector.conflicts == []


# ------------------------------------------------------------------ the command and the agent


def write_conf(tmp_path: Path, body: str) -> dict[str, str]:
    path = tmp_path / "checks.conf"
    path.write_text("[agent]\n" + body)
    return {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "agent"),
        "FLEETPULSE_CONFIG": str(path),
        "FLEETPULSE_CHECKS_DIR": str(tmp_path / "checks.d"),
    }


def test_the_check_command_prints_the_event_and_the_point_it_would_send(tmp_path) -> None:
    require_plugin("check_dummy")
    env = write_conf(tmp_path, "[check:space]\ncommand = check_dummy 1 'disk 91% full'\n")
    done = subprocess.run(
        [PYTHON, "-S", "-m", "fleetpulse_agent", "check", "space"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["event"]["service"] == "space"
    assert shown["event"]["status"] == "warning"
    assert shown["event"]["description"] == "WARNING: disk 91% full"
    assert shown["event"]["ttl"] == 180_000
    assert shown["point"]["measurement"] == "check"
    assert shown["point"]["tags"] == {"check": "space", "type": "exec"}
    assert shown["skipped"] == []
    for args, code, message in [
        (["check", "nope"], 2, "no check 'nope' (known: space)"),
        (["check"], 2, "--name is required"),
        (["check", "--name", "space", "extra"], 2, "unknown argument 'extra'"),
    ]:
        done = subprocess.run(
            [PYTHON, "-S", "-m", "fleetpulse_agent", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (done.returncode, message in done.stderr) == (code, True), done.stderr


def test_the_check_command_runs_on_python_3_8(tmp_path, listener) -> None:
    require_plugin("check_tcp")
    env = write_conf(tmp_path, f"[check:port]\ncommand = check_tcp -H 127.0.0.1 -p {listener}\n")
    done = subprocess.run(
        [python38(), "-S", "-m", "fleetpulse_agent", "check", "port"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["event"]["status"] == "ok"
    assert "_time" in shown["point"]["fields"]


def test_a_bad_check_section_stops_the_agent_before_it_starts(tmp_path) -> None:
    env = write_conf(tmp_path, "url = http://127.0.0.1:9\ntoken = t\n[check:x]\ncommand = 'a\n")
    done = subprocess.run(
        [PYTHON, "-S", "-m", "fleetpulse_agent", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert '[check:x]: command="\'a" is not valid' in done.stderr


def test_the_agent_posts_each_checks_event_and_point_to_the_collector(
    tmp_path, collector: FakeCollector, listener
) -> None:
    require_plugin("check_dummy")
    require_plugin("check_tcp")
    env = agent_env(tmp_path, collector.url, sample_interval="0.5", send_interval="1")
    conf = tmp_path / "agent.conf"
    conf.write_text(
        "[agent]\n[check:disk-space]\ncommand = check_dummy 1 'disk getting full'\ninterval = 1\n"
    )
    checks_dir = tmp_path / "checks.d"
    checks_dir.mkdir()
    (checks_dir / "port.conf").write_text(
        f"[check:port]\ncommand = check_tcp -H 127.0.0.1 -p {listener}\ninterval = 2\n"
    )
    env["FLEETPULSE_CONFIG"] = str(conf)
    env["FLEETPULSE_CHECKS_DIR"] = str(checks_dir)
    proc = subprocess.Popen(
        [PYTHON, "-S", "-m", "fleetpulse_agent", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert collector.wait_for(
            lambda: {"disk-space", "port"} <= {e["service"] for e in collector.events}, 60
        ), proc.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    events = {e["service"]: e for e in collector.events}
    assert (events["disk-space"]["status"], events["disk-space"]["ttl_ms"]) == ("warning", 3000)
    assert events["disk-space"]["description"] == "WARNING: disk getting full"
    assert (events["port"]["status"], events["port"]["ttl_ms"]) == ("ok", 6000)
    points = {
        dict(tags)["check"]: fields
        for (host, measurement, tags, _), fields in collector.stored.items()
        if measurement == "check"
    }
    assert points["disk-space"]["status"] == 1
    assert points["port"]["status"] == 0
    assert 0 <= points["port"]["_time"] < 10
    assert {k for k in collector.stored if k[1] == "check"} == {
        k for k in collector.stored if k[1] == "check" and k[0] == "test-host.example"
    }
    assert collector.conflicts == []


def test_the_minified_bundles_run_a_check_or_say_they_cannot(tmp_path) -> None:
    require_plugin("check_dummy")
    env = write_conf(tmp_path, "[check:space]\ncommand = check_dummy 2 'disk full'\n")
    full = tmp_path / "full.pyz"
    full.write_bytes(bundle_pyz(bundle()))
    done = subprocess.run(
        [PYTHON, "-S", str(full), "check", "space"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["event"]["description"] == "CRITICAL: disk full"
    # the user-data build leaves exec checks out, and says so rather than ignoring them
    small = tmp_path / "user-data.pyz"
    small.write_bytes(bundle_pyz(bundle(leave_out=LEAVE_OUT, keep_help=False)))
    done = subprocess.run(
        [PYTHON, "-S", str(small), "check", "space"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "runs no exec checks" in done.stderr
    assert "no check command" in done.stdout
