"""The local stack: an embedded AWS (moto's server) plus the collector API on 127.0.0.1."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chalicelib.core.tokens import ID_BYTES, SECRET_BYTES, Scope, TokenRecord, mint, token_hash
from chalicelib.settings import Settings
from chalicelib.wiring import Services, use
from fleetpulse.resources import create_all

LOCAL_REGION = "us-east-1"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class LocalStack:
    """Starts, and stops, everything `fleetpulse local up` runs in one process."""

    port: int = 8000
    host: str = "127.0.0.1"
    aws_port: int = 0
    state_dir: Path = Path(".fleetpulse")
    env: dict[str, str] = field(default_factory=dict)
    fleet_token: str = ""
    admin_token: str = ""
    store: str = ""  # which metric store the collector writes to, for the banner
    notes: list[str] = field(default_factory=list)  # warnings worth printing
    _moto: Any = None
    _api: Any = None
    _api_thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        # The embedded AWS logs every request it serves; nobody wants to read that.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.aws_port = self.aws_port or free_port(self.host)
        self._moto = ThreadedMotoServer(ip_address=self.host, port=self.aws_port, verbose=False)
        self._moto.start()
        endpoint = f"http://{self.host}:{self.aws_port}"
        # Fake credentials: the embedded AWS accepts any, and nothing here may
        # ever reach the real one.
        self.env = {
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": LOCAL_REGION,
            "AWS_REGION": LOCAL_REGION,
            "FLEETPULSE_STAGE": "local",
            "FLEETPULSE_AWS_ENDPOINT_URL": endpoint,
            # CloudWatch EMF lines are for Lambda; on a laptop they are noise.
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
        os.environ.update(self.env)
        # FLEETPULSE_STORE and FLEETPULSE_INFLUX_* come from the caller's environment:
        # with FLEETPULSE_STORE=influxdb points go to that InfluxDB, everything else
        # (tokens, hosts, alerts) stays on the embedded AWS.
        settings = Settings.from_env()
        services = Services(settings)
        create_all(settings, services.clients)
        self.store = self._prepare_store(settings, services)
        use(services)
        self.fleet_token = self._mint(services, "fleet", "local agents")
        self.admin_token = self._mint(services, "admin", "local operator")
        self._write_env_file()
        self._serve_api()

    def _prepare_store(self, settings: Settings, services: Services) -> str:
        if settings.store != "influxdb":
            return (
                f"Timestream (embedded) {settings.timestream_database}/{settings.timestream_table}"
            )
        from chalicelib.adapters.influxdb import InfluxDBMetricStore
        from chalicelib.core.ports import BackendUnavailable

        store = services.metric_store
        target = settings.influx_target
        if isinstance(store, InfluxDBMetricStore):
            try:
                store.ensure_database()  # v1 only; a v2 bucket must exist already
            except BackendUnavailable as exc:
                self.notes.append(
                    f"InfluxDB is not ready yet ({exc}); writes answer 503 until it is"
                )
        return f"InfluxDB ({target.api.value}) {target.describe()}"

    def _mint(self, services: Services, scope: str, name: str) -> str:
        token_id, token = mint(secrets.token_bytes(ID_BYTES + SECRET_BYTES))
        services.token_store.put(
            TokenRecord(token_id, token_hash(token), Scope.parse(scope), name, datetime.now(UTC))
        )
        return token

    def _write_env_file(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / "local.env"
        lines = {
            "FLEETPULSE_URL": self.url,
            "FLEETPULSE_TOKEN": self.fleet_token,
            "FLEETPULSE_ADMIN_TOKEN": self.admin_token,
            **self.env,
        }
        path.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
        path.chmod(0o600)

    def _serve_api(self) -> None:
        from chalice.config import Config
        from chalice.local import CustomLocalChalice, LocalDevServer, create_local_server

        import app as app_module

        config = Config.create(chalice_stage="dev", app_name="fleetpulse")
        if isinstance(app_module.app, CustomLocalChalice):  # a second stack in one process
            self._api = LocalDevServer(app_module.app, config, self.host, self.port)
        else:
            self._api = create_local_server(app_module.app, config, self.host, self.port)
        self._api_thread = threading.Thread(target=self._api.server.serve_forever, daemon=True)
        self._api_thread.start()

    def stop(self) -> None:
        if self._api is not None:
            self._api.shutdown()
            self._api.server.server_close()
        if self._moto is not None:
            self._moto.stop()
