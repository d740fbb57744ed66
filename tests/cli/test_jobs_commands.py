"""`fleetpulse jobs ...` and a real third-party healthchecks client against the app served
on a real local socket (the `served` fixture of test_alerting_commands)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from healthchecks_decorator import healthcheck

from tests.cli.test_alerting_commands import run, served
from tests.support.http import add_token

__all__ = ["served"]


def test_jobs_add_list_show_delete(served, capsys):
    status, out, err = run(
        capsys,
        "jobs",
        "add",
        "backup",
        "--schedule",
        "30 2 * * *",
        "--tz",
        "Europe/Paris",
        "--grace",
        "30m",
        "--max-duration",
        "2h",
        "--label",
        "team=storage",
    )
    assert status == 0, err
    assert "backup (30 2 * * * (Europe/Paris), grace 30m)" in out
    url = out.strip().rsplit(" ", 1)[1]
    assert url.startswith("http://127.0.0.1:")
    assert "/ping/" in url
    status, out, _ = run(capsys, "jobs", "list", "--json")
    [job] = [json.loads(line) for line in out.splitlines()]
    assert (job["slug"], job["ping_url"], job["labels"]) == ("backup", url, {"team": "storage"})
    status, out, _ = run(capsys, "jobs", "list")
    assert "backup" in out
    assert "new" in out
    status, out, _ = run(capsys, "jobs", "show", "backup")
    assert "max_duration" not in out
    assert url in out
    status, _, err = run(capsys, "jobs", "add", "backup", "--period", "soon")
    assert status == 1
    assert "period" in err
    assert run(capsys, "jobs", "delete", "backup")[0] == 0
    status, _, err = run(capsys, "jobs", "show", "backup")
    assert status == 1
    assert "no job named" in err


def test_healthchecks_decorator_pings_a_local_job_unchanged(served, capsys):
    stack = served
    run(capsys, "jobs", "add", "report", "--period", "1h", "--min-duration", "1s")
    url = json.loads(run(capsys, "jobs", "show", "report", "--json")[1])["ping_url"]

    @healthcheck(url=url, send_start=True, send_diagnostics=True)
    def report() -> dict[str, str]:
        stack.clock.advance(timedelta(seconds=30))  # the run takes 30 s on the app's clock
        return {"rows": "1200"}

    @healthcheck(url=url)
    def broken() -> None:
        raise RuntimeError("database is gone")

    assert report() == {"rows": "1200"}
    shown = json.loads(run(capsys, "jobs", "show", "report", "--json")[1])
    assert shown["status"] == "up"
    assert shown["last_run"]["duration_s"] == 30.0  # /start paired with the success
    assert shown["log"] == "rows=1200"  # its diagnostics, posted as the body
    with pytest.raises(RuntimeError):
        broken()
    stack.evaluate()
    shown = json.loads(run(capsys, "jobs", "show", "report", "--json")[1])
    assert shown["status"] == "failed"
    assert [m["status"] for m in stack.messages() if m["kind"] == "job"] == ["firing"]


def test_curl_style_ping_by_key_and_slug_creates_the_job(served, capsys):
    import os

    import requests

    key = add_token(served.services, "ping")
    base = os.environ["FLEETPULSE_URL"]
    answer = requests.get(f"{base}/ping/{key}/nightly-db?create=1", timeout=10)
    assert (answer.status_code, answer.text) == (201, "Created")
    answer = requests.post(f"{base}/ping/{key}/nightly-db/4", data=b"pg_dump: error", timeout=10)
    assert (answer.status_code, answer.text) == (200, "OK")
    shown = json.loads(run(capsys, "jobs", "show", "nightly-db", "--json")[1])
    assert (shown["status"], shown["last_run"]["exit_status"]) == ("failed", 4)
    assert shown["log"] == "pg_dump: error"
