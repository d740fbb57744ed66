from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fake_collector import FakeCollector
from fleetpulse_agent import config

from tests.support.programs import require_program

AGENT_SRC = Path(__file__).resolve().parents[2] / "agent"
TOKEN = "secret-token"


@pytest.fixture
def collector() -> Iterator[FakeCollector]:
    with FakeCollector(TOKEN) as c:
        yield c


def settings(tmp_path: Path, url: str, **overrides: Any) -> dict[str, str]:
    """Agent settings for a test: fast timings, no statsd, no outside resolvers."""
    values = {
        "url": url,
        "token": TOKEN,
        "host": "test-host.example",
        "tags": "role=test",
        "spool_dir": str(tmp_path / "spool"),
        "statsd": "off",
        "dns_fallback": "",
        "ec2_tags": "false",
        "processes": "false",
        "connect_timeout": "1",
        "tls_timeout": "1",
        "read_timeout": "1",
        "retry_base": "0.01",
        "max_backoff": "0.05",
        "auth_backoff": "0.2",
        "sample_interval": "0.05",
        "send_interval": "0.2",
        "shutdown_timeout": "2",
    }
    values.update({k: str(v) for k, v in overrides.items()})
    return values


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., SimpleNamespace]:
    def make(url: str, **overrides: Any) -> SimpleNamespace:
        path = tmp_path / "agent.conf"
        lines = ["[agent]"] + [
            f"{k} = {v}" for k, v in settings(tmp_path, url, **overrides).items()
        ]
        path.write_text("\n".join(lines) + "\n")
        return config.load(str(path), env={})

    return make


@pytest.fixture(autouse=True)
def agent_log() -> Iterator[list[tuple[str, str]]]:
    """What the agent logged during the test, as (level, message)."""
    from fleetpulse_agent.log import log

    log.records = []
    yield log.records
    log.records = None


def python38() -> str:
    """A Python 3.8 for the tests that run the agent on the oldest Python it supports."""
    return require_program(
        "python3.8",
        path=os.pathsep.join(["/root/.pyenv/versions/3.8.18/bin", os.environ.get("PATH", "")]),
        hint="pyenv install 3.8; without it 3.8 is checked by vermin only",
    )


def agent_env(tmp_path: Path, url: str, **overrides: Any) -> dict[str, str]:
    """Environment for an agent subprocess: every setting as a FLEETPULSE_* variable."""
    env = {f"FLEETPULSE_{k.upper()}": v for k, v in settings(tmp_path, url, **overrides).items()}
    env["FLEETPULSE_CONFIG"] = str(tmp_path / "none.conf")
    (tmp_path / "none.conf").write_text("[agent]\n")
    env["PYTHONPATH"] = str(AGENT_SRC)
    env["PATH"] = "/usr/bin:/bin"
    return env


PYTHON = sys.executable
