"""GET /v1/hosts, GET /v1/alerts, GET/POST/DELETE /v1/silences, host pause: admin only."""

from __future__ import annotations

from datetime import timedelta

import pytest

MIN = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/hosts"),
        ("GET", "/v1/alerts"),
        ("GET", "/v1/silences"),
        ("POST", "/v1/silences"),
        ("DELETE", "/v1/silences/abc"),
        ("POST", "/v1/hosts/web-1/pause"),
    ],
)
def test_admin_endpoints_need_an_admin_token(alerting_stack, method, path):
    stack = alerting_stack
    assert stack.client.http.request(method, path, headers={}, body=b"").status_code == 401
    response = stack.request(method, path, {}, token=stack.fleet_token)
    assert response.status_code == 403
    assert "admin token" in response.json_body["error"]


def test_hosts_with_their_derived_state(alerting_stack):
    stack = alerting_stack
    stack.post(
        "web-1", tags={"role": "web"}, agent={"name": "fleetpulse-agent", "version": "0.1.0"}
    )
    stack.post("web-2")
    stack.post("db-1", heartbeat={"state": "shutdown"})
    stack.clock.advance(MIN)
    stack.post("web-1", disk=10.0)  # breaches nothing: counted, not kept in the item
    stack.clock.advance(90 * timedelta(seconds=1))
    stack.post("web-2")
    response = stack.request("GET", "/v1/hosts")
    assert response.status_code == 200
    hosts = {h["host"]: h for h in response.json_body["hosts"]}
    assert {name: h["state"] for name, h in hosts.items()} == {
        "db-1": "retired",
        "web-1": "late",
        "web-2": "up",
    }
    web = hosts["web-1"]
    assert web["tags"] == {"role": "web"}
    assert web["agent_version"] == "0.1.0"
    assert (web["interval_s"], web["grace_s"]) == (60, 120)
    assert (web["series"], hosts["web-2"]["series"]) == (1, 0)
    assert web["last_seen_at"] == (stack.clock() - 90 * timedelta(seconds=1)).isoformat()
    stack.clock.advance(3 * MIN)
    down = stack.request("GET", "/v1/hosts?state=down,late").json_body["hosts"]
    assert [h["host"] for h in down] == ["web-1", "web-2"]
    web_down = stack.request("GET", "/v1/hosts?host=web-*&state=down").json_body["hosts"]
    assert [h["host"] for h in web_down] == ["web-1"]  # web-2: silent exactly 3m, still late
    bad = stack.request("GET", "/v1/hosts?state=sleepy")
    assert bad.status_code == 400
    assert bad.json_body["details"][0]["path"] == "state"


def test_alerts_open_by_default_and_all_on_request(alerting_stack):
    stack = alerting_stack
    stack.post("web-1", disk=97.0)
    stack.evaluate()
    [pending] = stack.request("GET", "/v1/alerts").json_body["alerts"]
    assert pending["state"] == "pending"
    assert pending["alert_id"] == "web-1/disk-full/mount=/"
    for _ in range(2):
        stack.clock.advance(MIN)
        stack.post("web-1", disk=97.0)
        stack.evaluate()
    stack.clock.advance(MIN)
    stack.post("web-1", disk=10.0)
    stack.evaluate()
    assert stack.request("GET", "/v1/alerts").json_body["alerts"] == []
    [resolved] = stack.request("GET", "/v1/alerts?state=all").json_body["alerts"]
    assert resolved["state"] == "resolved"
    assert resolved["notified"] == "resolved"
    assert stack.request("GET", "/v1/alerts?state=resolved&severity=critical").json_body["alerts"]
    assert stack.request("GET", "/v1/alerts?state=all&host=db-*").json_body["alerts"] == []
    assert stack.request("GET", "/v1/alerts?state=gone").status_code == 400


def test_silences_add_list_delete(alerting_stack):
    stack = alerting_stack
    once = stack.request(
        "POST",
        "/v1/silences",
        {"matchers": {"host": "web-*", "rule": "disk-full"}, "duration": "2h", "comment": "resize"},
    )
    assert once.status_code == 201
    assert once.json_body["state"] == "active"
    assert once.json_body["ends_at"] == (stack.clock() + timedelta(hours=2)).isoformat()
    stack.clock.advance(timedelta(seconds=1))  # listed in order of creation
    weekly = stack.request(
        "POST",
        "/v1/silences",
        {
            "matchers": {"role": "db"},
            "schedule": {"days": ["sun"], "start": "02:00", "end": "04:00", "timezone": "UTC"},
            "created_by": "ops",
        },
    )
    assert weekly.status_code == 201
    assert weekly.json_body["created_by"] == "ops"
    assert weekly.json_body["state"] == "pending"  # it is Sunday noon
    listed = stack.request("GET", "/v1/silences").json_body["silences"]
    assert [s["silence_id"] for s in listed] == [
        once.json_body["silence_id"],
        weekly.json_body["silence_id"],
    ]
    assert listed[0]["created_by"]  # the admin token's id when not given
    stack.clock.advance(timedelta(hours=3))
    assert [
        s["silence_id"] for s in stack.request("GET", "/v1/silences").json_body["silences"]
    ] == [weekly.json_body["silence_id"]]
    assert len(stack.request("GET", "/v1/silences?state=all").json_body["silences"]) == 2
    deleted = stack.request("DELETE", f"/v1/silences/{weekly.json_body['silence_id']}")
    assert deleted.status_code == 200
    again = stack.request("DELETE", f"/v1/silences/{weekly.json_body['silence_id']}")
    assert again.status_code == 404
    assert "no silence with id" in again.json_body["error"]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"duration": "1h"}, "matchers"),
        ({"matchers": {"host": "*"}}, "ends_at"),
        ({"matchers": {"host": "*"}, "duration": "soon"}, "duration"),
        (
            {
                "matchers": {"host": "*"},
                "schedule": {"days": ["sun"], "start": "2am", "end": "04:00"},
            },
            "schedule.start",
        ),
        ([1, 2], ""),
    ],
)
def test_bad_silences_are_400_with_the_path(alerting_stack, body, path):
    response = alerting_stack.request("POST", "/v1/silences", body)
    assert response.status_code == 400
    assert path in [d["path"] for d in response.json_body["details"]]


def test_a_body_that_is_not_json_is_400(alerting_stack):
    stack = alerting_stack
    response = stack.client.http.post(
        "/v1/silences", headers={"Authorization": f"Bearer {stack.admin_token}"}, body=b"{nope"
    )
    assert response.status_code == 400
    assert response.json_body["error"] == "body is not valid JSON"


def test_pause_and_resume_a_host(alerting_stack):
    stack = alerting_stack
    stack.post("web-1")
    assert stack.request("POST", "/v1/hosts/web-1/pause").json_body == {
        "host": "web-1",
        "paused": True,
    }
    [host] = stack.request("GET", "/v1/hosts").json_body["hosts"]
    assert host["state"] == "paused"
    assert stack.request("DELETE", "/v1/hosts/web-1/pause").status_code == 200
    assert stack.request("GET", "/v1/hosts").json_body["hosts"][0]["state"] == "new"
    assert stack.request("POST", "/v1/hosts/nobody/pause").status_code == 404
