"""A real InfluxDB 1.x server for the tests: Debian's `influxd`, on loopback, in a temp dir.

Each test session starts its own instance (never the system service) on free
127.0.0.1 ports with its data under a temporary directory, with
authentication on, and stops it at the end. Where `influxd` is not
installed the tests that need it skip (fail under CI=true: tests/support/programs.py).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from fleetpulse.influxd import influxd_config
from fleetpulse.stack import free_port
from tests.support.programs import require_program

ADMIN_USER = "fleetpulse"
ADMIN_PASSWORD = "test-password"  # a throwaway server on loopback


@dataclass
class InfluxServer:
    """A running influxd: its URL, admin credentials, and InfluxQL helpers."""

    url: str
    username: str = ADMIN_USER
    password: str = ADMIN_PASSWORD
    _names: Any = None

    def __post_init__(self) -> None:
        self._names = itertools.count(1)

    def query(self, q: str, db: str | None = None, method: str = "GET") -> list[dict[str, Any]]:
        """Run InfluxQL; returns the results, raising on any error. Times are epoch ms."""
        # InfluxDB 1.x reads credentials from the URL's query string, even for a POST.
        params = {"epoch": "ms", "u": self.username, "p": self.password}
        if db:
            params["db"] = db
        if method == "GET":
            response = requests.get(f"{self.url}/query", params={**params, "q": q}, timeout=10)
        else:
            response = requests.post(f"{self.url}/query", params=params, data={"q": q}, timeout=10)
        response.raise_for_status()
        results = response.json()["results"]
        for result in results:
            if "error" in result:
                raise AssertionError(f"InfluxQL {q!r} failed: {result['error']}")
        return results

    def rows(self, q: str, db: str) -> list[dict[str, Any]]:
        """The rows of a SELECT as dicts (column name: value), over every series."""
        out: list[dict[str, Any]] = []
        for result in self.query(q, db):
            for series in result.get("series", []):
                tags = series.get("tags", {})
                for values in series["values"]:
                    out.append({**tags, **dict(zip(series["columns"], values, strict=True))})
        return out

    def new_database(self, retention: str | None = None) -> str:
        name = f"t{next(self._names)}"
        suffix = f" WITH DURATION {retention}" if retention else ""
        self.query(f'CREATE DATABASE "{name}"{suffix}', method="POST")
        return name


def _start(root: Path) -> tuple[subprocess.Popen[bytes], InfluxServer]:
    binary = require_program("influxd", "influxdb")
    http_port, rpc_port = free_port(), free_port()
    config = root / "influxdb.conf"
    config.write_text(influxd_config(root, "127.0.0.1", http_port, rpc_port, auth=True))
    # The server reads INFLUXDB_* variables as config overrides: none may leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFLUXDB_")}
    log = (root / "influxd.log").open("wb")
    process = subprocess.Popen(
        [binary, "-config", str(config)], stdout=log, stderr=subprocess.STDOUT, env=env
    )
    url = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if requests.get(f"{url}/ping", timeout=1).status_code == 204:
                break
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            log.close()
            raise RuntimeError(
                f"influxd did not start: {(root / 'influxd.log').read_text(errors='replace')[-2000:]}"
            )
        time.sleep(0.05)
    log.close()
    # With authentication on and no user yet, InfluxDB lets exactly this one query in.
    requests.post(
        f"{url}/query",
        data={
            "q": f"CREATE USER {ADMIN_USER} WITH PASSWORD '{ADMIN_PASSWORD}' WITH ALL PRIVILEGES"
        },
        timeout=10,
    ).raise_for_status()
    return process, InfluxServer(url)


@pytest.fixture(scope="session")
def influxd() -> Iterator[InfluxServer]:
    """One influxd for the session; tests take their own database with `new_database()`."""
    with tempfile.TemporaryDirectory(prefix="fleetpulse-influxd-") as tmp:
        process, server = _start(Path(tmp))
        try:
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
