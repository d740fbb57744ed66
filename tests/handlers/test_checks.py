"""Remote checks end to end: the admin API, the schedule and runner handlers over moto, real
targets on 127.0.0.1, alerts on SNS, and PagerDuty (the local inbox) paged once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client

from chalicelib.adapters.aws import AwsClients
from chalicelib.core.instants import ms_of_instant
from chalicelib.settings import Settings
from chalicelib.wiring import Services, use
from fleetpulse.inbox import LocalInbox
from fleetpulse.resources import create_all
from tests.support.alerting import T0
from tests.support.alerting_aws import TOPIC_ARN, AlertingStack, Clock, subscribed_queue
from tests.support.alerts import sns_event
from tests.support.aws import WriteRecordsCapture, dims, measures
from tests.support.http import add_token
from tests.support.notify import put_secrets
from tests.support.targets import WebServer

MIN = timedelta(minutes=1)


class ChecksStack(AlertingStack):
    checks_file: Path

    def tick(self) -> dict[str, Any]:
        """A minute passes and the `checks` schedule runs (its batches in-process)."""
        self.clock.advance(MIN)
        event = self.client.events.generate_cw_event(
            source="aws.events",
            detail_type="Scheduled Event",
            detail={},
            resources=["arn:aws:events:us-east-1:123456789012:rule/fleetpulse-dev-checks"],
        )
        return self.client.lambda_.invoke("checks", event).payload

    def check_alerts(self) -> list[dict[str, Any]]:
        response = self.request("GET", "/v1/alerts?state=all")
        return [a for a in response.json_body["alerts"] if a["kind"] == "check"]


def build(tmp_path: Path, checks: list[dict[str, Any]], **env: str) -> Iterator[ChecksStack]:
    path = tmp_path / "checks.yaml"
    path.write_text(json.dumps({"checks": checks}))  # YAML is a superset of JSON
    settings = Settings.from_env(
        {
            "FLEETPULSE_TOKEN_CACHE_SECONDS": "0",
            "FLEETPULSE_ALERTS_TOPIC_ARN": TOPIC_ARN,
            "FLEETPULSE_CHECKS": str(path),
            **env,
        }
    )
    clock = Clock(T0)
    services = Services(settings, AwsClients(region="us-east-1"), clock=clock)
    create_all(settings, services.clients)
    queue = subscribed_queue(services.clients, TOPIC_ARN)
    use(services)
    import app

    with Client(app.app, stage_name="dev") as client:
        stack = ChecksStack(client, services, clock, queue)
        stack.checks_file = path
        stack.fleet_token = add_token(services, "fleet")
        stack.admin_token = add_token(services, "admin")
        yield stack


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[LocalInbox]:
    box = LocalInbox(tmp_path / "inbox.jsonl", lambda _line: None)
    box.start()
    yield box
    box.stop()


@pytest.fixture
def api_stack(aws: None, tmp_path: Path, tcp_ports: Any) -> Iterator[ChecksStack]:
    file_check = {"name": "db-port", "type": "tcp", "host": "127.0.0.1", "port": 5432}
    yield from build(tmp_path, [file_check])


def test_the_admin_api_needs_an_admin_token(api_stack):
    fleet = api_stack.fleet_token
    for method, path in [
        ("GET", "/v1/checks"),
        ("GET", "/v1/checks/db-port"),
        ("PUT", "/v1/checks/x"),
        ("DELETE", "/v1/checks/x"),
    ]:
        assert api_stack.request(method, path, {}, token=fleet).status_code == 403
        assert api_stack.client.http.get(path).status_code == 401 or method != "GET"


def test_put_get_list_and_delete_a_check(api_stack):
    body = {"type": "http", "url": "https://api.example.com/health", "failures": 2}
    created = api_stack.request("PUT", "/v1/checks/api-health", body)
    assert created.status_code == 201, created.body
    assert created.json_body["source"] == "api"
    assert created.json_body["expect_status"] == ["200-399"]
    assert created.json_body["locations"] == ["us-east-1"]
    again = api_stack.request("PUT", "/v1/checks/api-health", {**body, "failures": 3})
    assert again.status_code == 200
    got = api_stack.request("GET", "/v1/checks/api-health").json_body
    assert got["failures"] == 3
    assert api_stack.request("PUT", "/v1/checks/api-health", got).status_code == 200
    listed = api_stack.request("GET", "/v1/checks").json_body["checks"]
    assert [(c["name"], c["source"]) for c in listed] == [
        ("api-health", "api"),
        ("db-port", "file"),
    ]
    assert api_stack.request("DELETE", "/v1/checks/api-health").status_code == 200
    assert api_stack.request("GET", "/v1/checks/api-health").status_code == 404
    assert api_stack.request("DELETE", "/v1/checks/api-health").status_code == 404


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"type": "tcp", "host": "db", "port": 99999}, "port"),
        ({"type": "http", "url": "nope"}, "url"),
        ({"type": "http", "url": "http://x", "every": "1s"}, "every"),
        ({"type": "dns", "query": "x.example", "expect": "1.2.3.4"}, "expect"),
        ({"name": "other", "type": "tcp", "host": "db", "port": 1}, "name"),
        ({"type": "smtp"}, "type"),
        ([1, 2], "$"),
    ],
)
def test_a_bad_check_is_a_400_naming_the_field(api_stack, body, path):
    response = api_stack.request("PUT", "/v1/checks/x", body)
    assert response.status_code == 400, response.body
    assert path in [d["path"] for d in response.json_body["details"]]


def test_a_check_from_the_file_is_changed_in_the_file(api_stack):
    response = api_stack.request(
        "PUT", "/v1/checks/db-port", {"type": "tcp", "host": "db", "port": 1}
    )
    assert response.status_code == 400
    assert "checks file" in response.json_body["details"][0]["message"]
    assert api_stack.request("DELETE", "/v1/checks/db-port").status_code == 400


def test_a_fleet_token_lists_one_locations_checks_and_posts_results(api_stack):
    api_stack.request(
        "PUT",
        "/v1/checks/eu-only",
        {"type": "tcp", "host": "db", "port": 1, "locations": ["eu-west-1"]},
    )
    listed = api_stack.request("GET", "/v1/checks?location=eu-west-1", token=api_stack.fleet_token)
    assert [c["name"] for c in listed.json_body["checks"]] == ["eu-only"]
    host_token = add_token(api_stack.services, "host:web-1")
    result = {
        "check": "eu-only",
        "location": "eu-west-1",
        "time": ms_of_instant(api_stack.clock()),
        "up": True,
    }
    refused = api_stack.request("POST", "/v1/check-results", {"results": [result]}, host_token)
    assert refused.status_code == 403
    wrong = api_stack.request(
        "POST",
        "/v1/check-results",
        {"results": [{**result, "location": "ap-south-1"}]},
        api_stack.fleet_token,
    )
    assert wrong.status_code == 400
    assert wrong.json_body["details"][0]["path"] == "results[0]"
    ok = api_stack.request(
        "POST", "/v1/check-results", {"results": [result]}, api_stack.fleet_token
    )
    assert ok.status_code == 202, ok.body
    assert api_stack.services.checks.store.state("eu-only", "eu-west-1")["up"] is True


@pytest.fixture
def paging_stack(aws, tmp_path, web, inbox) -> Iterator[ChecksStack]:
    check = {
        "name": "api-health",
        "type": "http",
        "url": web.url(),
        "failures": 2,
        "body_contains": "ok",
        "labels": {"team": "web"},
    }
    for stack in build(tmp_path, [check], FLEETPULSE_PAGERDUTY_URL=inbox.pagerduty_url):
        put_secrets(
            stack.services.settings, "http://127.0.0.1:9/unused", stack.services.clients.get("ssm")
        )
        yield stack


def deliver_to_pagerduty(stack: ChecksStack) -> None:
    for i, message in enumerate(stack.messages()):
        if message.get("_delivered"):
            continue
        body = {k: v for k, v in message.items() if not k.startswith("_")}
        stack.client.lambda_.invoke("notify_pagerduty", sns_event(body, f"m-{i}"))
        message["_delivered"] = True


def test_a_check_that_breaks_pages_once_and_resolves(paging_stack, web, inbox):
    stack = paging_stack
    capture = WriteRecordsCapture(stack.services.clients.get("timestream-write"))
    report = stack.tick()
    assert (report["runs"], report["batches"]) == (1, 1)
    web.status = 503
    for _ in range(4):
        stack.tick()
        deliver_to_pagerduty(stack)
    [alert] = stack.check_alerts()
    assert (alert["state"], alert["kind"], alert["host"]) == ("firing", "check", "127.0.0.1")
    assert alert["labels"] == {"team": "web", "check": "api-health", "type": "http"}
    web.status = 200
    stack.tick()
    deliver_to_pagerduty(stack)
    firing, resolved = stack.messages()
    assert (firing["status"], resolved["status"]) == ("firing", "resolved")
    assert firing["summary"] == (
        "api-health failing from 1 of 1: unexpected status 503 (expected 200-399)"
    )
    records = [json.loads(line) for line in inbox.jsonl.read_text().splitlines()]
    events = [(r["body"]["event_action"], r["body"]["dedup_key"]) for r in records]
    assert events == [("trigger", firing["dedup_key"]), ("resolve", firing["dedup_key"])]
    points = [r for r in capture.stored() if r["MeasureName"] == "check"]
    assert len(points) == 6
    assert dims(points[0]) == {
        "host": "127.0.0.1",
        "check": "api-health",
        "type": "http",
        "location": "us-east-1",
    }
    assert [measures(p)["up"][0] for p in points] == ["1", "0", "0", "0", "0", "1"]
    assert measures(points[1])["status_code"][0] == "503"


def remote(stack: ChecksStack, up: bool) -> None:
    """eu-west-1's probe posts its result, as a deployment there would."""
    result = {
        "check": "api",
        "location": "eu-west-1",
        "time": ms_of_instant(stack.clock()),
        "up": up,
        "reason": "connect: timeout after 5s",
    }
    response = stack.request("POST", "/v1/check-results", {"results": [result]}, stack.fleet_token)
    assert response.status_code == 202, response.body


def test_quorum_holds_back_one_failing_location(aws, tmp_path, web):
    check = {
        "name": "api",
        "type": "http",
        "url": web.url(),
        "locations": ["us-east-1", "eu-west-1"],
    }
    for stack in build(tmp_path, [check]):
        for _ in range(3):
            stack.tick()
            remote(stack, up=False)
        assert stack.check_alerts() == []
        web.status = 500
        stack.tick()
        [alert] = stack.check_alerts()
        assert alert["state"] == "firing"
        assert alert["summary"].startswith("api failing from 2 of 2:")
        remote(stack, up=True)
        assert stack.check_alerts()[0]["state"] == "firing"  # one good location of two
        stack.tick()
        assert stack.check_alerts()[0]["state"] == "firing"
        web.status = 200
        stack.tick()
        assert stack.check_alerts()[0]["state"] == "resolved"  # a good quorum


def test_a_hung_check_does_not_delay_the_others(aws, tmp_path, web, tcp_ports):
    fast = WebServer()
    web.watch, web.watch_for = fast, 9.0
    checks = [
        {"name": "hung", "type": "http", "url": web.url("/hang"), "timeout": "10s"},
        {"name": "fast", "type": "http", "url": fast.url()},
        {"name": "port", "type": "tcp", "host": "127.0.0.1", "port": tcp_ports.open_port},
    ]
    try:
        for stack in build(tmp_path, checks):
            report = stack.tick()
            assert report["batches"] == 1
            # The hung target held its request while the fast one was served.
            assert web.saw_watched is True
            store = stack.services.checks.store
            assert store.state("hung", "us-east-1")["reason"] == "request: timeout after 10s"
            assert store.state("fast", "us-east-1")["up"] is True
            assert store.state("port", "us-east-1")["up"] is True
    finally:
        fast.stop()
