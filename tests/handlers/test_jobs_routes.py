"""Jobs end to end through the app over moto: the admin API, healthchecks' ping protocol,
the evaluation paging and resolving through SNS, with a clock the tests move."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.alerting_aws import AlertingStack
from tests.support.http import add_token

MINUTE = timedelta(minutes=1)


def define(stack: AlertingStack, slug: str, **definition: Any) -> dict[str, Any]:
    response = stack.request("PUT", f"/v1/jobs/{slug}", definition)
    assert response.status_code == 200, response.body
    return response.json_body


def ping_path(job: dict[str, Any], suffix: str = "") -> str:
    path = "/ping/" + job["ping_url"].rsplit("/ping/", 1)[1]
    return path + (f"/{suffix}" if suffix else "")


def ping(stack: AlertingStack, path: str, body: bytes = b"", method: str = "POST") -> Any:
    if method == "GET":
        return stack.client.http.get(path)
    return stack.client.http.post(path, body=body, headers={"Content-Type": "text/plain"})


def job_messages(stack: AlertingStack) -> list[dict[str, Any]]:
    return [m for m in stack.messages() if m["kind"] == "job"]


def status(stack: AlertingStack, slug: str) -> str:
    return str(stack.request("GET", f"/v1/jobs/{slug}").json_body["status"])


def test_put_answers_the_definition_with_an_unguessable_ping_url(alerting_stack):
    stack = alerting_stack
    job = define(stack, "backup", period="1d", grace="1h", labels={"team": "ops"})
    assert job["slug"] == "backup"
    assert job["period"] == "1d"
    assert job["status"] == "new"
    uuid = job["ping_url"].rsplit("/", 1)[1]
    assert len(uuid) == 36
    assert uuid[14] == "4"
    again = define(stack, "backup", period="2h")
    assert again["ping_url"] == job["ping_url"]  # redefining keeps the URL
    other = define(stack, "other")
    assert other["ping_url"] != job["ping_url"]
    listed = stack.request("GET", "/v1/jobs").json_body["jobs"]
    assert [j["slug"] for j in listed] == ["backup", "other"]
    assert stack.request("DELETE", "/v1/jobs/other").status_code == 200
    assert stack.request("GET", "/v1/jobs/other").status_code == 404
    assert stack.request("DELETE", "/v1/jobs/other").status_code == 404


@pytest.mark.parametrize(
    ("definition", "path"),
    [
        ({"period": "0s"}, "period"),
        ({"period": "soon"}, "period"),
        ({"schedule": "61 * * * *"}, "schedule"),
        ({"schedule": "0 3 * * *", "tz": "Mars/Olympus"}, "tz"),
        ({"schedule": "0 3 * * *", "period": "1d"}, "schedule"),
        ({"grace": -5}, "grace"),
        ({"severity": "fatal"}, "severity"),
        ({"labels": {"team": 3}}, "labels.team"),
        ({"min_duration": "1h", "max_duration": "10m"}, "min_duration"),
        ({"runbook": "file:///etc/passwd"}, "runbook"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_definition_gets_400_naming_the_field(alerting_stack, definition, path):
    response = alerting_stack.request("PUT", "/v1/jobs/backup", definition)
    assert response.status_code == 400, response.body
    assert path in [d["path"] for d in response.json_body["details"]]
    assert alerting_stack.request("GET", "/v1/jobs/backup").status_code == 404


def test_the_jobs_api_needs_an_admin_token(alerting_stack):
    stack = alerting_stack
    assert stack.request("GET", "/v1/jobs", token=stack.fleet_token).status_code == 403
    assert stack.client.http.get("/v1/jobs").status_code == 401


def test_a_job_pinged_on_time_stays_up(alerting_stack):
    stack = alerting_stack
    job = define(stack, "heartbeat", period="5m", grace="1m")
    for _ in range(12):
        response = ping(stack, ping_path(job), method="GET")
        assert (response.status_code, response.body) == (200, b"OK")
        stack.clock.advance(5 * MINUTE)
        stack.evaluate()
        assert status(stack, "heartbeat") == "up"
    assert job_messages(stack) == []


def test_a_missed_schedule_pages_once_and_resolves_on_the_next_success(alerting_stack):
    stack = alerting_stack
    job = define(stack, "nightly", period="1h", grace="10m", severity="warning")
    ping(stack, ping_path(job))
    stack.clock.advance(65 * MINUTE)
    stack.evaluate()
    assert status(stack, "nightly") == "grace"  # late, within the grace: no page
    assert job_messages(stack) == []
    for _ in range(10):  # down, and it stays down for many evaluations
        stack.clock.advance(MINUTE)
        stack.evaluate()
    firing = job_messages(stack)
    assert [(m["status"], m["severity"], m["kind"]) for m in firing] == [
        ("firing", "warning", "job")
    ]
    assert firing[0]["labels"]["job"] == "nightly"
    assert "nightly" in firing[0]["summary"]
    ping(stack, ping_path(job))
    stack.evaluate()
    messages = job_messages(stack)
    assert [m["status"] for m in messages] == ["firing", "resolved"]
    assert messages[1]["dedup_key"] == messages[0]["dedup_key"]


@pytest.mark.parametrize("suffix", ["fail", "1", "255"])
def test_a_failure_pages_at_once_with_the_log_tail(alerting_stack, suffix):
    stack = alerting_stack
    job = define(stack, "backup", period="1d")
    ping(stack, ping_path(job, "start"))
    stack.clock.advance(MINUTE)
    log = "".join(f"line {i}\n" for i in range(2000)) + "tar: /var/db: No space left on device\n"
    assert ping(stack, ping_path(job, suffix), log.encode()).status_code == 200
    stack.evaluate()
    [message] = job_messages(stack)
    assert message["status"] == "firing"
    assert "No space left on device" in message["description"]  # the tail, not the head
    shown = stack.request("GET", "/v1/jobs/backup").json_body
    assert shown["status"] == "failed"
    assert len(shown["log"]) == 10_000  # the first 10 KB are kept
    ping(stack, ping_path(job, "0"))
    stack.evaluate()
    assert [m["status"] for m in job_messages(stack)] == ["firing", "resolved"]


def test_a_start_without_a_finish_past_max_duration_pages(alerting_stack):
    stack = alerting_stack
    job = define(stack, "etl", period="1d", max_duration="30m")
    ping(stack, ping_path(job))  # a first run, on time
    stack.clock.advance(MINUTE)
    rid = "0f0e4a4e-7c2b-4a4f-9a55-2b1e8b0c5d11"
    ping(stack, ping_path(job, "start") + f"?rid={rid}")
    stack.clock.advance(29 * MINUTE)
    stack.evaluate()
    assert job_messages(stack) == []
    stack.clock.advance(2 * MINUTE)
    stack.evaluate()
    [message] = job_messages(stack)
    assert "max_duration" in message["summary"]
    ping(stack, ping_path(job) + f"?rid={rid}")
    stack.evaluate()
    assert [m["status"] for m in job_messages(stack)] == ["firing", "resolved"]


def test_a_run_shorter_than_min_duration_pages(alerting_stack):
    stack = alerting_stack
    job = define(stack, "backup", period="1d", min_duration="5m")
    ping(stack, ping_path(job, "start"))
    stack.clock.advance(timedelta(seconds=3))
    ping(stack, ping_path(job), b"nothing to back up")
    stack.evaluate()
    [message] = job_messages(stack)
    assert "min_duration" in message["summary"]
    assert "nothing to back up" in message["description"]
    ping(stack, ping_path(job, "start"))
    stack.clock.advance(10 * MINUTE)
    ping(stack, ping_path(job))
    stack.evaluate()
    assert [m["status"] for m in job_messages(stack)] == ["firing", "resolved"]


def test_rid_pairs_overlapping_runs_and_each_duration_is_measured(alerting_stack, monkeypatch):
    stack = alerting_stack
    written: list[Any] = []
    store = stack.services.metric_store
    original = store.write

    def recording(reports: Any) -> Any:
        written.extend(p for r in reports for p in r.points if p.measurement == "job")
        return original(reports)

    monkeypatch.setattr(store, "write", recording)
    job = define(stack, "sync", period="1h")
    a, b = "1b4e28ba-2fa1-41d2-883f-0016d3cca427", "6fa459ea-ee8a-4ca4-894e-db77e160355e"
    ping(stack, ping_path(job, "start") + f"?rid={a}")
    stack.clock.advance(MINUTE)
    ping(stack, ping_path(job, "start") + f"?rid={b}")
    stack.clock.advance(MINUTE)
    ping(stack, ping_path(job, "0") + f"?rid={a}")
    stack.clock.advance(MINUTE)
    ping(stack, ping_path(job, "3") + f"?rid={b}")
    assert [(p.tags, p.fields) for p in written] == [
        ({"job": "sync"}, {"exit_status": 0, "duration_s": 120.0}),
        ({"job": "sync"}, {"exit_status": 3, "duration_s": 120.0}),
    ]
    assert ping(stack, ping_path(job) + "?rid=not-a-uuid").status_code == 400


def test_answers_as_healthchecks_gives_them(alerting_stack):
    stack = alerting_stack
    job = define(stack, "backup")
    unknown = "/ping/2d5bd51c-6a5b-4b8f-9c8e-6a3e3d3b1f00"
    assert (ping(stack, unknown).status_code, ping(stack, unknown).body) == (404, b"not found")
    assert ping(stack, ping_path(job, "256")).status_code == 400
    assert ping(stack, ping_path(job, "nope")).status_code == 404
    assert ping(stack, ping_path(job, "log"), b"checkpoint").status_code == 200
    assert status(stack, "backup") == "new"  # a log changes no state
    response = ping(stack, ping_path(job))
    assert response.headers["Ping-Body-Limit"] == "10000"
    huge = b"x" * 150_000 + b"the end"  # past the cap: the ping counts, the rest is not read
    assert ping(stack, ping_path(job), huge).status_code == 200
    shown = stack.request("GET", "/v1/jobs/backup").json_body
    assert shown["log"] == "x" * 10_000


def test_a_ping_key_pings_by_slug_and_create_provisions(alerting_stack):
    stack = alerting_stack
    key = add_token(stack.services, "ping")
    assert stack.client.http.get(f"/ping/{key}/reports").status_code == 404
    created = stack.client.http.get(f"/ping/{key}/reports?create=1")
    assert (created.status_code, created.body) == (201, b"Created")
    again = stack.client.http.get(f"/ping/{key}/reports?create=1")
    assert (again.status_code, again.body) == (200, b"OK")
    shown = stack.request("GET", "/v1/jobs/reports").json_body
    assert (shown["period"], shown["grace"], shown["status"]) == ("1d", "1h", "up")
    assert stack.client.http.post(f"/ping/{key}/reports/fail").status_code == 200
    assert status(stack, "reports") == "failed"
    # Other tokens are no ping keys, and a ping key is no ingest token.
    assert stack.client.http.get(f"/ping/{stack.fleet_token}/reports").status_code == 404
    assert stack.client.http.get(f"/ping/{key}x/reports").status_code == 404
    refused = stack.client.http.post(
        "/v1/ingest",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        body=json.dumps({"host": "web-1", "points": []}),
    )
    assert refused.status_code == 403


def test_a_runaway_loop_is_rate_limited_per_job(alerting_stack):
    stack = alerting_stack
    job = define(stack, "loop")
    calm = define(stack, "calm")
    codes = [ping(stack, ping_path(job), method="GET").status_code for _ in range(125)]
    assert codes[:120] == [200] * 120
    assert set(codes[120:]) == {429}
    assert ping(stack, ping_path(calm)).status_code == 200  # other jobs are not affected
    stack.clock.advance(timedelta(seconds=10))  # the bucket refills
    assert ping(stack, ping_path(job)).status_code == 200


def test_a_cron_job_across_a_dst_change_is_judged_correctly(alerting_stack):
    stack = alerting_stack
    job = define(stack, "nightly", schedule="30 2 * * *", tz="America/New_York", grace="10m")
    # Sunday 2026-03-08, 02:00 EST jumps to 03:00 EDT: 02:30 does not exist; cron runs the
    # job at 03:00 EDT (07:00 UTC), half an hour before a naive "24 h later" would expect it.
    stack.clock.at = datetime(2026, 3, 7, 7, 30, 5, tzinfo=UTC)  # 02:30 EST
    ping(stack, ping_path(job))
    stack.clock.at = datetime(2026, 3, 8, 7, 0, 30, tzinfo=UTC)  # 03:00 EDT
    ping(stack, ping_path(job))
    shown = stack.request("GET", "/v1/jobs/nightly").json_body
    assert shown["next_expected_at"] == "2026-03-09T06:30:00+00:00"  # 02:30 EDT
    # Fall back: 2026-11-01 has 25 hours; 02:30 EST is 07:30 UTC, a day and an hour later.
    stack.clock.at = datetime(2026, 10, 31, 6, 30, 5, tzinfo=UTC)  # 02:30 EDT
    ping(stack, ping_path(job))
    stack.clock.at = datetime(2026, 11, 1, 6, 45, tzinfo=UTC)  # 24 h 15 m later
    stack.evaluate()
    assert status(stack, "nightly") == "up"
    stack.clock.at = datetime(2026, 11, 1, 7, 41, tzinfo=UTC)
    stack.evaluate()
    assert status(stack, "nightly") == "down"
    assert [m["status"] for m in job_messages(stack)] == ["firing"]


def test_a_silence_holds_a_job_alert_back(alerting_stack):
    stack = alerting_stack
    job = define(stack, "backup", labels={"team": "storage"})
    made = stack.request("POST", "/v1/silences", {"matchers": {"job": "backup"}, "duration": "1h"})
    assert made.status_code == 201, made.body
    ping(stack, ping_path(job, "fail"))
    stack.evaluate()
    assert job_messages(stack) == []
    alerts = stack.request("GET", "/v1/alerts").json_body["alerts"]
    assert [(a["kind"], a["state"], a["silenced_by"] != []) for a in alerts] == [
        ("job", "firing", True)
    ]


def test_a_deleted_jobs_alert_resolves(alerting_stack):
    stack = alerting_stack
    job = define(stack, "old")
    ping(stack, ping_path(job, "fail"))
    stack.evaluate()
    stack.request("DELETE", "/v1/jobs/old")
    stack.evaluate()
    assert [m["status"] for m in job_messages(stack)] == ["firing", "resolved"]
    assert ping(stack, ping_path(job)).status_code == 404


def test_a_ping_url_never_appears_in_a_log_line(alerting_stack, capsys, caplog, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")  # an operator turning it on
    stack = alerting_stack
    job = define(stack, "backup", period="1m", grace="0s")
    key = add_token(stack.services, "ping")
    secret = job["ping_url"].rsplit("/", 1)[1]
    ping(stack, ping_path(job, "start"))
    ping(stack, ping_path(job, "1"), b"failed")
    for _ in range(125):  # the rate limiter warns
        ping(stack, ping_path(job, "log"))
    stack.client.http.get(f"/ping/{key}/made?create=1")
    stack.evaluate()
    logged = capsys.readouterr()
    text = logged.out + logged.err + caplog.text
    assert "rate limit" in text  # the logs are there, and say which job
    assert secret not in text
    assert key not in text


def test_a_late_ping_counts_when_it_happened(alerting_stack):
    stack = alerting_stack
    job = define(stack, "backup", period="1h", min_duration="1m")
    now = stack.clock()
    started = (now - timedelta(minutes=10)).timestamp()
    finished = (now - timedelta(minutes=2)).timestamp()
    rid = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
    assert ping(stack, ping_path(job, "start") + f"?rid={rid}&t={started}").status_code == 200
    assert ping(stack, ping_path(job) + f"?rid={rid}&t={finished}").status_code == 200
    shown = stack.request("GET", "/v1/jobs/backup").json_body
    assert shown["status"] == "up"
    assert shown["last_run"]["duration_s"] == 480.0
    assert shown["last_run"]["finished_at"] == (now - timedelta(minutes=2)).isoformat()
    older = (now - timedelta(minutes=30)).timestamp()
    assert ping(stack, ping_path(job, "1") + f"?t={older}").status_code == 200
    assert stack.request("GET", "/v1/jobs/backup").json_body["status"] == "up"  # not the last
    ahead = (now + timedelta(minutes=5)).timestamp()
    assert ping(stack, ping_path(job) + f"?t={ahead}").status_code == 400
    assert ping(stack, ping_path(job) + "?t=yesterday").status_code == 400


def test_the_ping_url_follows_the_public_address():
    from chalicelib.services.jobs import base_url

    gateway = {"Host": "abc123.execute-api.eu-west-1.amazonaws.com", "X-Forwarded-Proto": "https"}
    assert base_url(gateway, {"stage": "api"}, None) == (
        "https://abc123.execute-api.eu-west-1.amazonaws.com/api"
    )
    assert base_url({"host": "127.0.0.1:8000"}, {}, None) == "http://127.0.0.1:8000"
    assert base_url(gateway, {"stage": "api"}, "https://ping.example.com/") == (
        "https://ping.example.com"
    )


def test_head_pings_too_as_healthchecks_takes_them(alerting_stack):
    stack = alerting_stack
    job = define(stack, "probe")
    assert stack.client.http.request("HEAD", ping_path(job)).status_code == 200
    assert status(stack, "probe") == "up"
