"""The `evaluate` schedule end to end: posts in, Contract 2 messages out on SNS (moto + SQS)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.core.ports import BackendUnavailable
from chalicelib.core.rules import RulesError
from chalicelib.services.alerting import AlertingService
from tests.support.aws import WriteRecordsCapture, dims, measures

MIN = timedelta(minutes=1)
DISK = "web-1/disk-full/mount=/"


def minutes(stack, n, **post):
    """`n` minutes of posts from web-1 (when `post` says what), one evaluation each."""
    reports = []
    for _ in range(n):
        stack.clock.advance(MIN)
        if post:
            stack.post("web-1", **post)
        reports.append(stack.evaluate())
    return reports


def test_a_disk_filling_up_fires_once_and_resolves_once(alerting_stack):
    stack = alerting_stack
    capture = WriteRecordsCapture(stack.services.clients.get("timestream-write"))
    minutes(stack, 4, disk=97.0)
    minutes(stack, 2, disk=40.0)
    firing, resolved = stack.messages()
    assert firing["status"] == "firing"
    assert firing["severity"] == "critical"
    assert firing["summary"] == "Disk / at 97% on web-1"
    assert firing["_attributes"] == {"severity": "critical", "status": "firing", "host": "web-1"}
    assert firing["links"] == [
        {"href": "https://runbooks.example/disk", "text": "Runbook"},
        {"href": "https://status.example/status", "text": "Status page"},
        {"href": "https://status.example/status/hosts/web-1", "text": "Host history"},
    ]
    assert resolved["status"] == "resolved"
    assert resolved["dedup_key"] == firing["dedup_key"]
    assert resolved["_attributes"]["status"] == "resolved"
    annotations = [r for r in capture.stored() if r["MeasureName"] == "alert"]
    assert [measures(r)["status"][0] for r in annotations] == ["pending", "firing", "resolved"]
    assert dims(annotations[0]) == {
        "host": "web-1",
        "alert_id": DISK,
        "rule": "disk-full",
        "kind": "threshold",
    }


def test_a_quiet_evaluation_writes_nothing(alerting_stack):
    stack = alerting_stack
    calls = []
    client = stack.services.clients.get("dynamodb")
    client.meta.events.register(
        "provide-client-params.dynamodb.*",
        lambda model, params, **_: calls.append(
            (model.name, params["TableName"].rsplit("-", 1)[1])
        ),
    )
    minutes(stack, 3, disk=40.0)
    calls.clear()
    stack.clock.advance(MIN)
    report = stack.evaluate()
    assert report["transitions"] == 0
    # The hosts table in its parallel segments (FLEETPULSE_SCAN_SEGMENTS, 4 by default),
    # the alerts, silences and jobs tables in one Scan each.
    assert sorted(calls) == sorted(
        [("Scan", "hosts")] * 4 + [("Scan", "alerts"), ("Scan", "silences"), ("Scan", "jobs")]
    )


def test_a_host_that_stops_posting_is_paged_and_resolves_when_it_returns(alerting_stack):
    stack = alerting_stack
    minutes(stack, 2, disk=40.0)
    minutes(stack, 4)
    [down] = stack.messages()
    assert (down["alert_id"], down["kind"], down["status"]) == (
        "web-1/heartbeat",
        "heartbeat",
        "firing",
    )
    assert stack.services.host_store.get("web-1")["state"] == "down"
    minutes(stack, 1, disk=40.0)
    assert [m["status"] for m in stack.messages()] == ["firing", "resolved"]
    assert stack.services.host_store.get("web-1")["state"] == "up"


def test_two_interleaved_evaluations_send_one_message(alerting_stack):
    stack = alerting_stack
    other = AlertingService(
        hosts=stack.services.host_store,
        alerts=stack.services.alert_store,
        silences=stack.services.silence_store,
        publisher=lambda: stack.services.alert_publisher,
        metrics=stack.services.metric_store,
        policy=lambda: stack.services.alerting_policy,
    )
    mine = stack.services.alerting
    minutes(stack, 2, disk=97.0)  # pending
    for _ in range(2):
        stack.clock.advance(MIN)
        stack.post("web-1", disk=97.0)
        a, b = mine.plan(stack.clock()), other.plan(stack.clock())
        mine.apply(*a)
        other.apply(*b)
    assert [m["status"] for m in stack.messages()] == ["firing"]
    assert stack.services.alert_store.scan()[0].notified.value == "firing"


class FailingOnce:
    def __init__(self, real):
        self.real = real
        self.failures = 1

    def publish(self, message):
        if self.failures:
            self.failures -= 1
            raise BackendUnavailable("SNS publish: throttled")
        self.real.publish(message)


def test_a_failed_publish_is_retried_next_minute_and_sent_once(alerting_stack):
    stack = alerting_stack
    real = stack.services.alert_publisher
    stack.services.__dict__["alert_publisher"] = FailingOnce(real)
    reports = minutes(stack, 3, disk=97.0)
    assert reports[-1]["publish_failures"] == 1
    assert stack.messages() == []
    report = minutes(stack, 1, disk=97.0)[0]
    assert (report["notifications"], report["transitions"]) == (1, 0)
    minutes(stack, 3, disk=97.0)
    assert [m["status"] for m in stack.messages()] == ["firing"]


def test_a_silence_holds_the_page_until_it_ends(alerting_stack):
    stack = alerting_stack
    response = stack.request(
        "POST",
        "/v1/silences",
        {"matchers": {"host": "web-*"}, "duration": "5m", "comment": "patching"},
    )
    assert response.status_code == 201
    minutes(stack, 4, disk=97.0)
    assert stack.messages() == []
    alerts = stack.request("GET", "/v1/alerts").json_body["alerts"]
    assert [(a["state"], a["silenced_by"]) for a in alerts] == [
        ("firing", [response.json_body["silence_id"]])
    ]
    minutes(stack, 1, disk=97.0)
    [message] = stack.messages()
    assert message["status"] == "firing"


def test_deleting_a_silence_releases_what_it_held(alerting_stack):
    stack = alerting_stack
    silence = stack.request(
        "POST", "/v1/silences", {"matchers": {"rule": "disk-full"}, "duration": "1h"}
    )
    minutes(stack, 4, disk=97.0)
    assert stack.messages() == []
    stack.request("DELETE", f"/v1/silences/{silence.json_body['silence_id']}")
    minutes(stack, 1, disk=97.0)
    assert [m["status"] for m in stack.messages()] == ["firing"]


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_bad_rules_file_fails_the_evaluation_loudly(alerting_stack, tmp_path):
    stack = alerting_stack
    path = tmp_path / "broken.yaml"
    path.write_text("rules:\n  - name: disk-full\n    measurement: disk\n")
    from dataclasses import replace

    stack.services.settings = replace(stack.services.settings, rules_path=str(path))
    with pytest.raises(RulesError, match=r"rules\[0\] \(disk-full\).field: is required"):
        stack.evaluate()
