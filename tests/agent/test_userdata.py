"""EC2 user-data: rendered by `fleetpulse user-data`, run against a scratch root, agent started.

Also the agent's own `install` command and the build of the zipapp and the bundle.
"""

from __future__ import annotations

import gzip
import os
import signal
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest
from conftest import AGENT_SRC, PYTHON, TOKEN, python38
from fake_collector import FakeCollector

from fleetpulse import cli
from fleetpulse.agentbuild import build_pyz, bundle, bundle_pyz
from fleetpulse.commands.userdata import LEAVE_OUT, USER_DATA_LIMIT, render

# As long as they come: an API Gateway URL with a stage, a 43-character token.
LONG_URL = "https://a1b2c3d4e5.execute-api.eu-central-1.amazonaws.com/production"
LONG_TOKEN = "fpt_" + "x" * 39
TAGS = "role=web,env=production,team=payments"


def fake_systemctl(tmp_path: Path) -> tuple[Path, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "systemctl.calls"
    tool = bin_dir / "systemctl"
    tool.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    tool.chmod(0o755)
    return bin_dir, calls


def run_user_data(
    script: bytes, root: Path, tmp_path: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    if script[:2] == b"\x1f\x8b":
        script = gzip.decompress(script)  # what cloud-init does with gzip user-data
    path = tmp_path / "user-data.sh"
    path.write_bytes(script)
    bin_dir, _ = fake_systemctl(tmp_path)
    environment = {"PATH": f"{bin_dir}:/usr/bin:/bin", "FLEETPULSE_ROOT": str(root), **env}
    return subprocess.run(
        ["sh", str(path)], env=environment, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_user_data_fits_ec2s_16_kb_with_long_settings() -> None:
    data = render(LONG_URL, LONG_TOKEN, TAGS, ["statsd=off", "spool_max_mb=512"], compressed=True)
    assert data[:2] == b"\x1f\x8b"
    assert len(data) <= USER_DATA_LIMIT, f"{len(data)} bytes; EC2 takes {USER_DATA_LIMIT}"
    # the plain script is what does not fit; that is why the command gzips by default
    assert len(render(LONG_URL, LONG_TOKEN, TAGS, compressed=False)) > USER_DATA_LIMIT


def test_the_command_writes_gzip_when_the_plain_script_is_too_big(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("fleetpulse.commands.userdata",))
    out = tmp_path / "user-data.gz"
    assert (
        cli.main(
            ["user-data", "--url", LONG_URL, "--token", LONG_TOKEN, "--tags", TAGS, "-o", str(out)]
        )
        == 0
    )
    data = out.read_bytes()
    assert data[:2] == b"\x1f\x8b"
    assert len(data) <= USER_DATA_LIMIT
    assert gzip.decompress(data).startswith(b"#!/bin/sh\n")
    # asking for the plain form names the limit instead of writing something EC2 refuses
    assert (
        cli.main(
            ["user-data", "--url", LONG_URL, "--token", LONG_TOKEN, "--no-gzip", "-o", str(out)]
        )
        == 1
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "collector.example.com", "--token", "t"], "--url"),
        (["--url", LONG_URL, "--token", "two words"], "--token"),
        (["--url", LONG_URL, "--token", "t", "--tags", "role"], "--tags"),
    ],
)
def test_bad_options_are_refused_before_rendering(monkeypatch, capsys, args, message) -> None:
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("fleetpulse.commands.userdata",))
    assert cli.main(["user-data", *args]) == 1
    assert message in capsys.readouterr().err


def test_user_data_installs_config_unit_and_agent_then_starts_it(tmp_path) -> None:
    root = tmp_path / "root"
    with FakeCollector(TOKEN) as collector:
        data = render(collector.url, TOKEN, "role=web,env=test", ["statsd=off"], compressed=True)
        done = run_user_data(data, root, tmp_path)
        assert done.returncode == 0, done.stderr

        conf = root / "etc/fleetpulse/agent.conf"
        assert stat.S_IMODE(conf.stat().st_mode) == 0o600  # it holds the token
        text = conf.read_text()
        hostname = subprocess.run(
            ["hostname", "-f"], capture_output=True, text=True, check=False
        ).stdout.strip()
        for line in (
            f"url = {collector.url}",
            f"token = {TOKEN}",
            "tags = role=web,env=test",
            "statsd = off",
            f"host = {hostname}",
        ):
            assert line in text.splitlines()
        unit = (root / "etc/systemd/system/fleetpulse-agent.service").read_text()
        assert "Restart=always" in unit.splitlines()
        assert (
            " -S /usr/local/lib/fleetpulse/fleetpulse-agent.pyz run --config /etc/fleetpulse/agent.conf"
            in unit
        )
        assert "$PY" not in unit  # the interpreter found on the host is written in
        pyz = root / "usr/local/lib/fleetpulse/fleetpulse-agent.pyz"
        assert zipfile.is_zipfile(pyz)
        assert not (root / "usr/local/lib/fleetpulse/a").exists()
        assert stat.S_IMODE((root / "var/lib/fleetpulse/spool").stat().st_mode) == 0o700
        wrapper = root / "usr/local/bin/fleetpulse-agent"
        assert os.access(wrapper, os.X_OK)
        calls = (tmp_path / "systemctl.calls").read_text().splitlines()
        assert calls == [
            "daemon-reload",
            "enable fleetpulse-agent.service",
            "--no-block restart fleetpulse-agent.service",
        ]

        # the installed agent runs: one cron-style cycle against the collector
        env = {
            "PATH": "/usr/bin:/bin",
            "FLEETPULSE_SPOOL_DIR": str(root / "var/lib/fleetpulse/spool"),
        }
        once = subprocess.run(
            [PYTHON, "-S", str(pyz), "--config", str(conf), "once"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert once.returncode == 0, once.stderr
        assert {"cpu", "memory", "disk", "fleetpulse_agent"} <= {k[1] for k in collector.stored}
        assert {k[0] for k in collector.stored} == {hostname}

        # as a daemon, stopped the way systemd stops it
        proc = subprocess.Popen(
            [PYTHON, "-S", str(pyz), "--config", str(conf), "run"],
            env={**env, "FLEETPULSE_SAMPLE_INTERVAL": "0.05", "FLEETPULSE_SEND_INTERVAL": "0.2"},
            stderr=subprocess.PIPE,
            text=True,
        )
        assert collector.wait_for(lambda: len(collector.heartbeats) >= 3, 15)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert collector.heartbeats[-1]["state"] == "shutdown"

        # and a cron job's heartbeat through the installed wrapper's agent
        event = subprocess.run(
            [
                PYTHON,
                "-S",
                str(pyz),
                "--config",
                str(conf),
                "event",
                "--service",
                "backup",
                "--ttl",
                "26h",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert event.returncode == 0, event.stderr
        assert collector.events[-1]["ttl_ms"] == 26 * 3_600_000
        assert collector.conflicts == []


def test_the_installed_agent_runs_on_python_3_8(tmp_path) -> None:
    python = python38()
    root = tmp_path / "root"
    with FakeCollector(TOKEN) as collector:
        done = run_user_data(
            render(collector.url, TOKEN, compressed=True), root, tmp_path, FLEETPULSE_NO_START="1"
        )
        assert done.returncode == 0, done.stderr
        assert not (tmp_path / "systemctl.calls").exists()  # FLEETPULSE_NO_START=1
        env = {
            "PATH": "/usr/bin:/bin",
            "FLEETPULSE_SPOOL_DIR": str(root / "var/lib/fleetpulse/spool"),
            "FLEETPULSE_STATSD": "off",
        }
        pyz = root / "usr/local/lib/fleetpulse/fleetpulse-agent.pyz"
        once = subprocess.run(
            [python, "-S", str(pyz), "--config", str(root / "etc/fleetpulse/agent.conf"), "once"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert once.returncode == 0, once.stderr
        assert "cpu" in {k[1] for k in collector.stored}


def test_the_user_data_build_says_what_it_leaves_out(tmp_path) -> None:
    pyz = tmp_path / "lean.pyz"
    pyz.write_bytes(bundle_pyz(bundle(leave_out=("install", "status"), keep_help=False)))
    env = {
        "PATH": "/usr/bin:/bin",
        "FLEETPULSE_URL": "http://127.0.0.1:9",
        "FLEETPULSE_TOKEN": "t",
        "FLEETPULSE_CONFIG": str(tmp_path / "none"),
    }
    (tmp_path / "none").write_text("[agent]\n")
    done = subprocess.run(
        [PYTHON, str(pyz), "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "no status command" in done.stdout + done.stderr
    done = subprocess.run(
        [PYTHON, str(pyz), "install", "--no-start"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2


def test_the_full_bundle_keeps_every_command(tmp_path, collector) -> None:
    pyz = tmp_path / "full.pyz"
    pyz.write_bytes(bundle_pyz(bundle()))
    env = {
        "PATH": "/usr/bin:/bin",
        "FLEETPULSE_URL": collector.url,
        "FLEETPULSE_TOKEN": TOKEN,
        "FLEETPULSE_SPOOL_DIR": str(tmp_path / "spool"),
        "FLEETPULSE_CONFIG": str(tmp_path / "none"),
        "FLEETPULSE_HOST": "bundle-host",
    }
    (tmp_path / "none").write_text("[agent]\n")
    done = subprocess.run(
        [PYTHON, str(pyz), "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "POST /v1/ingest -> 202" in done.stdout
    help_text = subprocess.run(
        [PYTHON, str(pyz), "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout
    assert "send a service event" in help_text


def test_install_command_puts_everything_in_place(tmp_path) -> None:
    root = tmp_path / "root"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(AGENT_SRC)}
    done = subprocess.run(
        [
            PYTHON,
            "-m",
            "fleetpulse_agent",
            "install",
            "--root",
            str(root),
            "--url",
            "https://collector.example.com",
            "--token",
            "abc",
            "--tags",
            "role=db",
            "--set",
            "statsd=off",
            "--no-start",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    conf = (root / "etc/fleetpulse/agent.conf").read_text()
    assert "url = https://collector.example.com" in conf
    assert "statsd = off" in conf
    unit = (root / "etc/systemd/system/fleetpulse-agent.service").read_text()
    assert "Restart=always" in unit
    pyz = root / "usr/local/lib/fleetpulse/fleetpulse-agent.pyz"
    version = subprocess.run(
        [PYTHON, str(pyz), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    assert version.stdout.startswith("fleetpulse-agent ")
    # a bad setting is caught at install time, not in a restart loop
    bad = subprocess.run(
        [
            PYTHON,
            "-m",
            "fleetpulse_agent",
            "install",
            "--root",
            str(root),
            "--url",
            "https://c.example",
            "--token",
            "abc",
            "--set",
            "sample_interval=often",
            "--no-start",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "sample_interval='often' is not valid" in bad.stderr


def test_make_agent_builds_a_zipapp_of_the_package_alone(tmp_path) -> None:
    data = build_pyz()
    with zipfile.ZipFile(__import__("io").BytesIO(data)) as z:
        names = z.namelist()
    assert "__main__.py" in names
    assert all(
        n in ("__main__.py", "fleetpulse_agent/")
        or (n.startswith("fleetpulse_agent/") and n.endswith(".py"))
        for n in names
    )
    pyz = tmp_path / "a.pyz"
    pyz.write_bytes(data)
    done = subprocess.run(
        [PYTHON, str(pyz), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0
    assert done.stdout.startswith("fleetpulse-agent ")


def test_the_user_data_build_runs_without_statsd_and_says_so(tmp_path, collector) -> None:
    pyz = tmp_path / "lean.pyz"
    pyz.write_bytes(bundle_pyz(bundle(leave_out=LEAVE_OUT, keep_help=False)))
    env = {
        "PATH": "/usr/bin:/bin",
        "FLEETPULSE_URL": collector.url,
        "FLEETPULSE_TOKEN": TOKEN,
        "FLEETPULSE_SPOOL_DIR": str(tmp_path / "spool"),
        "FLEETPULSE_CONFIG": str(tmp_path / "none"),
        "FLEETPULSE_HOST": "lean-host",
        "FLEETPULSE_SAMPLE_INTERVAL": "0.05",
        "FLEETPULSE_SEND_INTERVAL": "0.2",
    }
    (tmp_path / "none").write_text("[agent]\n")
    proc = subprocess.Popen(
        [PYTHON, "-S", str(pyz), "run"], env=env, stderr=subprocess.PIPE, text=True
    )
    assert collector.wait_for(lambda: len(collector.heartbeats) >= 2, 15)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "no statsd listener: set statsd = off" in err
