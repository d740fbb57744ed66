"""`fleetpulse checks ...` against the app on a real local socket, and a probe in another
location that reads its checks from that app and posts its results to it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.adapters.aws import AwsClients
from chalicelib.settings import Settings
from chalicelib.wiring import Services
from fleetpulse.cli import main
from fleetpulse.stack import free_port


@pytest.fixture
def served(alerting_stack, monkeypatch) -> Iterator[Any]:
    """The app (over moto) behind a real HTTP server on 127.0.0.1, the CLI pointed at it."""
    from chalice import local
    from chalice.config import Config

    import app as app_module

    monkeypatch.setattr(local.ChaliceRequestHandler, "log_message", lambda *_: None)
    original = type(app_module.app)
    port = free_port()
    try:
        server = local.create_local_server(
            app_module.app,
            Config.create(chalice_stage="dev", app_name="fleetpulse"),
            "127.0.0.1",
            port,
        )
        thread = threading.Thread(
            target=server.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        thread.start()
        alerting_stack.url = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("FLEETPULSE_URL", alerting_stack.url)
        monkeypatch.setenv("FLEETPULSE_ADMIN_TOKEN", alerting_stack.admin_token)
        try:
            yield alerting_stack
        finally:
            server.shutdown()
            server.server.server_close()
    finally:
        app_module.app.__class__ = original


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


def test_apply_list_run_and_delete(served, capsys, tmp_path, web, tcp_ports):
    path = tmp_path / "checks.yaml"
    path.write_text(
        "checks:\n"
        f"  - {{name: site, type: http, url: '{web.url()}', body_contains: ok,"
        " locations: [us-east-1, eu-west-1]}\n"
        f"  - {{name: db, type: tcp, host: 127.0.0.1, port: {tcp_ports.refused_port}}}\n"
    )
    status, out, err = run(capsys, "checks", "apply", str(path))
    assert (status, err) == (0, "")
    assert out.splitlines() == ["applied site", "applied db"]
    status, out, _ = run(capsys, "checks", "list")
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "TYPE", "TARGET", "EVERY", "LOCATIONS", "QUORUM", "SOURCE"]
    assert [r.split()[0] for r in rows] == ["db", "site"]
    assert rows[1].split()[3:] == ["1m", "us-east-1,eu-west-1", "2", "api"]

    status, out, _ = run(capsys, "checks", "run", "site")
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "site (http) 127.0.0.1"
    assert [line.split()[0] for line in lines[1:]] == [
        "dns",
        "connect",
        "request",
        "body",
        "status_code",
        "verdict",
    ]
    assert lines[-1].endswith("ms  up")
    status, out, _ = run(capsys, "checks", "run", "db")
    assert status == 2
    assert out.splitlines()[-1].endswith(
        f"DOWN (critical): connect: connection refused (127.0.0.1:{tcp_ports.refused_port})"
    )

    status, out, _ = run(capsys, "checks", "delete", "db")
    assert (status, out) == (0, "deleted db\n")
    status, _, err = run(capsys, "checks", "delete", "db")
    assert status == 1
    assert "no check named 'db'" in err


def test_apply_refuses_a_bad_file_naming_the_check_and_field(served, capsys, tmp_path):
    path = tmp_path / "checks.yaml"
    path.write_text("checks:\n  - {name: db, type: tcp, host: db, port: 70000}\n")
    status, out, err = run(capsys, "checks", "apply", str(path))
    assert (status, out) == (1, "")
    assert "checks[0] (db).port: must be a port 1..65535, got 70000" in err


def test_run_from_a_file_prints_a_dns_query_and_its_answers(capsys, tmp_path, dns_server):
    path = tmp_path / "checks.yaml"
    path.write_text(
        f"checks:\n  - {{name: ns, type: dns, query: ok.test, server: '{dns_server.server}'}}\n"
    )
    status, out, _ = run(capsys, "checks", "run", "ns", "--file", str(path))
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "ns (dns) ok.test"
    assert lines[1].split()[0] == "query"
    assert lines[2].split() == ["answers", "192.0.2.10,192.0.2.11"]


def test_a_probe_elsewhere_reads_its_checks_and_posts_results_home(served, web, tcp_ports):
    stack = served
    body = {
        "type": "http",
        "url": web.url(),
        "locations": ["us-east-1", "eu-west-1"],
        "quorum": 1,
    }
    assert stack.request("PUT", "/v1/checks/site", body).status_code == 201
    home_only = {"type": "tcp", "host": "127.0.0.1", "port": tcp_ports.open_port}
    assert stack.request("PUT", "/v1/checks/home-only", home_only).status_code == 201
    web.status = 502
    away = Settings.from_env(
        {
            "AWS_REGION": "eu-west-1",
            "FLEETPULSE_CHECKS_HOME_URL": stack.url,
            "FLEETPULSE_CHECKS_HOME_TOKEN": stack.fleet_token,
        }
    )
    probe = Services(away, AwsClients(region="eu-west-1"), clock=stack.clock)
    report = probe.checks.schedule(stack.clock())
    assert (report.checks, report.runs, report.batches, report.failures) == (1, 1, 1, [])
    state = stack.services.checks.store.state("site", "eu-west-1")
    assert state is not None
    assert (state["up"], state["reason"]) == (False, "unexpected status 502 (expected 200-399)")
    [alert] = [
        a for a in stack.request("GET", "/v1/alerts").json_body["alerts"] if a["kind"] == "check"
    ]
    assert (alert["rule"], alert["state"]) == ("site", "firing")
    assert stack.services.checks.store.state("home-only", "eu-west-1") is None
