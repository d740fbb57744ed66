"""The local stack's metric store: Debian's `influxd`, on loopback, with a private data folder.

moto's Timestream stores points but runs no query, so `fleetpulse local up`
starts a real InfluxDB 1.x for the metrics (history charts, window, baseline
and forecast rules then work locally). It listens on a free 127.0.0.1 port
only, keeps its data under the stack's state folder (kept between runs), and
runs without authentication: nothing but this machine can reach it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

LOCAL_DATABASE = "fleetpulse"

_CONFIG = """\
reporting-disabled = true
bind-address = "{host}:{rpc_port}"

[meta]
  dir = "{root}/meta"
  logging-enabled = false

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "{host}:{http_port}"
  auth-enabled = {auth}
  log-enabled = false
  pprof-enabled = false

[logging]
  level = "error"
  suppress-logo = true

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false

[shard-precreation]
  enabled = false

[retention]
  enabled = false
"""


def influxd_config(root: Path, host: str, http_port: int, rpc_port: int, *, auth: bool) -> str:
    """influxd's configuration for a private server on loopback: data under `root`, the
    services a single local user needs and nothing else (no reporting, no monitor store,
    no subscriptions, no continuous queries)."""
    return _CONFIG.format(
        root=root,
        host=host,
        http_port=http_port,
        rpc_port=rpc_port,
        auth="true" if auth else "false",
    )


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the stack dies, even by SIGKILL (Linux).

    A killed stack cannot stop what it started; the agent watches the stack's pid
    itself, and influxd gets the kernel to do it (PR_SET_PDEATHSIG)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


class InfluxdError(Exception):
    """influxd is missing or did not start: one readable line."""


@dataclass
class LocalInfluxd:
    """One influxd process for the local stack."""

    root: Path
    host: str = "127.0.0.1"
    http_port: int = 0
    startup_timeout: float = 30.0
    _process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def environment(self) -> dict[str, str]:
        """The FLEETPULSE_* variables that point the collector at this server."""
        return {
            "FLEETPULSE_STORE": "influxdb",
            "FLEETPULSE_INFLUX_URL": self.url,
            "FLEETPULSE_INFLUX_API": "v1",
            "FLEETPULSE_INFLUX_DB": LOCAL_DATABASE,
        }

    def start(self) -> None:
        from fleetpulse.stack import free_port

        binary = shutil.which("influxd")
        if binary is None:
            raise InfluxdError(
                "influxd is not installed (Debian: apt-get install influxdb, or `make "
                "system-deps`); or run with --store timestream"
            )
        import requests

        self.root.mkdir(parents=True, exist_ok=True)
        self.http_port = self.http_port or free_port(self.host)
        config = self.root / "influxdb.conf"
        config.write_text(
            influxd_config(
                self.root.resolve(), self.host, self.http_port, free_port(self.host), auth=False
            )
        )
        # influxd reads INFLUXDB_* variables as config overrides: none may leak in.
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFLUXDB_")}
        self._log = (self.root / "influxd.log").open("ab")
        self._process = subprocess.Popen(  # noqa: S603 (the installed influxd, our config)
            [binary, "-config", str(config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # Ctrl-C reaches the stack, which stops influxd in order
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509 (async-signal-safe: one prctl call)
        )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            try:
                if requests.get(f"{self.url}/ping", timeout=1).status_code == 204:
                    return
            except requests.RequestException:
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self.root / "influxd.log").read_text(errors="replace")[-500:]
                raise InfluxdError(f"influxd did not start; its log ends: {tail.strip()}")
            time.sleep(0.05)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
