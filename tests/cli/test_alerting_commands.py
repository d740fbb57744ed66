"""`fleetpulse hosts|alerts|silences|rules` against the app served on a real local socket."""

from __future__ import annotations

import json
import os
import threading
from datetime import timedelta

import pytest

from fleetpulse.cli import main
from fleetpulse.stack import free_port

MIN = timedelta(minutes=1)


@pytest.fixture
def served(alerting_stack, monkeypatch):
    """The app (over moto) behind a real HTTP server on 127.0.0.1, with the CLI pointed at it."""
    from chalice import local
    from chalice.config import Config

    import app as app_module

    # The server's access log goes to stderr, where the CLI's errors are checked.
    monkeypatch.setattr(local.ChaliceRequestHandler, "log_message", lambda *_: None)
    # create_local_server swaps the app's class for a local subclass; put it
    # back afterwards, or the next test's server (and client) would stack on it.
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
        monkeypatch.setenv("FLEETPULSE_URL", f"http://127.0.0.1:{port}")
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


def firing_disk(stack):
    for _ in range(3):
        stack.post("web-1", disk=97.0, tags={"role": "web"})
        stack.evaluate()
        stack.clock.advance(MIN)


def test_hosts_as_a_table_and_as_json(served, capsys):
    served.post(
        "web-1", tags={"role": "web"}, agent={"name": "fleetpulse-agent", "version": "0.2.0"}
    )
    served.post("db-1", heartbeat={"state": "shutdown"})
    status, out, _ = run(capsys, "hosts")
    assert status == 0
    header, *rows = out.splitlines()
    assert header.split() == ["HOST", "STATE", "LAST", "SEEN", "INTERVAL", "AGENT", "TAGS"]
    assert rows[0].split()[:2] == ["db-1", "retired"]
    assert rows[1].split()[:2] == ["web-1", "new"]
    assert "0.2.0" in rows[1]
    assert "role=web" in rows[1]
    _, out, _ = run(capsys, "hosts", "--json", "--state", "retired")
    assert [json.loads(line)["host"] for line in out.splitlines()] == ["db-1"]


def test_pause_and_resume_whichever_side_the_options_are_on(served, capsys):
    served.post("web-1")
    status, out, _ = run(capsys, "hosts", "pause", "web-1")
    assert (status, out.strip()) == (0, "web-1 paused: no heartbeat alert until it posts again")
    _, out, _ = run(capsys, "hosts", "--json")
    assert json.loads(out)["state"] == "paused"
    url = f"--url={os.environ['FLEETPULSE_URL']}"
    status, out, _ = run(capsys, "hosts", url, "resume", "web-1")
    assert (status, out.strip()) == (0, "web-1 resumed")
    status, _, err = run(capsys, "hosts", "pause", "nobody")
    assert (status, err.strip()) == (1, "fleetpulse: no host named 'nobody' (HTTP 404)")


def test_alerts_open_by_default(served, capsys):
    firing_disk(served)
    status, out, _ = run(capsys, "alerts")
    assert status == 0
    header, row = out.splitlines()
    assert header.split()[:4] == ["STATE", "SEVERITY", "HOST", "RULE"]
    assert row.split()[:4] == ["firing", "critical", "web-1", "disk-full"]
    assert row.endswith("Disk / at 97% on web-1")
    _, out, _ = run(capsys, "alerts", "--state", "resolved")
    assert out.strip() == "no alerts"
    _, out, _ = run(capsys, "alerts", "--json", "--severity", "critical")
    assert json.loads(out)["alert_id"] == "web-1/disk-full/mount=/"


def test_silences_add_list_delete(served, capsys):
    status, out, _ = run(
        capsys,
        "silences",
        "add",
        "--match",
        "host=web-*",
        "--match",
        "rule=disk-full",
        "--duration",
        "2h",
        "--comment",
        "resizing",
    )
    assert status == 0
    assert out.startswith("silence ")
    assert "(active)" in out
    served.clock.advance(timedelta(seconds=1))
    _, out, _ = run(
        capsys,
        "silences",
        "add",
        "--match",
        "role=db",
        "--every",
        "sat,sun",
        "--from",
        "02:00",
        "--to",
        "04:00",
        "--json",
    )
    weekly = json.loads(out)
    assert weekly["schedule"] == {
        "days": ["sat", "sun"],
        "start": "02:00",
        "end": "04:00",
        "timezone": "UTC",
    }
    status, out, _ = run(capsys, "silences", "list")
    header, first, second = out.splitlines()
    assert header.split() == ["ID", "STATE", "MATCHERS", "WHEN", "CREATED", "BY", "COMMENT"]
    assert "host=web-*,rule=disk-full" in first
    assert first.rstrip().endswith("resizing")
    assert "sat,sun 02:00-04:00 UTC" in second
    firing_disk(served)
    _, out, _ = run(capsys, "alerts")
    assert "firing (silenced)" in out
    status, out, _ = run(capsys, "silences", "delete", weekly["silence_id"])
    assert status == 0
    assert "deleted" in out
    status, _, err = run(capsys, "silences", "delete", weekly["silence_id"])
    assert status == 1
    assert err.strip() == f"fleetpulse: no silence with id '{weekly['silence_id']}' (HTTP 404)"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["silences", "add", "--duration", "2h"],
            "say what to silence: --match host=web-* (repeatable)",
        ),
        (["silences", "add", "--match", "host"], "--match wants LABEL=GLOB, got 'host'"),
        (
            ["silences", "add", "--match", "host=a"],
            "say until when: --duration 2h, --end ISO-8601, or --every DAY",
        ),
        (
            ["silences", "add", "--match", "host=a", "--every", "sun"],
            "--every needs --from HH:MM and --to HH:MM",
        ),
        (
            ["silences", "add", "--match", "host=a", "--duration", "soon"],
            "invalid silence (HTTP 400): duration: must be a duration like 30s, 5m, 4h or 1d, got 'soon'",
        ),
        (
            ["silences", "add", "--match", "host=a", "--end", "2020-01-01T00:00:00Z"],
            "invalid silence (HTTP 400): ends_at: must be after starts_at",
        ),
        (
            ["alerts", "--state", "gone"],
            "unknown state (HTTP 400): state: must be among firing, pending, resolved; got gone",
        ),
    ],
)
def test_mistakes_are_one_line_errors(served, capsys, argv, message):
    status, out, err = run(capsys, *argv)
    assert (status, out) == (1, "")
    assert err == f"fleetpulse: {message}\n"


def test_a_wrong_token_or_no_server_is_one_line(served, capsys, monkeypatch):
    status, _, err = run(capsys, "alerts", "--token", "fp_nope")
    assert (status, err) == (1, "fleetpulse: unknown or revoked token (HTTP 401)\n")
    status, _, err = run(capsys, "hosts", "--url", f"http://127.0.0.1:{free_port()}")
    assert status == 1
    assert err.startswith("fleetpulse: cannot reach http://127.0.0.1:")
    monkeypatch.delenv("FLEETPULSE_URL")
    status, _, err = run(capsys, "silences", "list")
    assert (status, err) == (1, "fleetpulse: no API URL: pass --url or set FLEETPULSE_URL\n")


def test_rules_check(capsys, tmp_path):
    status, out, _ = run(capsys, "rules", "check")
    assert status == 0
    assert "ok, 7 threshold rules (cpu-busy" in out
    bad = tmp_path / "rules.yaml"
    bad.write_text(
        "rules:\n  - name: disk-full\n    measurement: disk\n    field: x\n    critical: high\n"
    )
    status, _, err = run(capsys, "rules", "check", str(bad))
    assert status == 1
    assert (
        err == f"fleetpulse: {bad}: rules[0] (disk-full).critical: must be a number, got 'high'\n"
    )
