"""The `ec2_lifecycle` EventBridge handler: instances that EC2 ends are retired or paused
quietly, through the chalice test client over moto."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from chalicelib.core.lifecycle import ASG_TERMINATE, EVENT_PATTERN, SPOT_WARNING, STATE_CHANGE

MIN = timedelta(minutes=1)


def lifecycle(stack: Any, detail_type: str, detail: dict[str, Any], source: str = "aws.ec2"):
    event = stack.client.events.generate_cw_event(
        source=source, detail_type=detail_type, detail=detail, resources=[]
    )
    return stack.client.lambda_.invoke("ec2_lifecycle", event).payload


def state_change(stack: Any, instance: str, state: str) -> dict[str, Any]:
    return lifecycle(stack, STATE_CHANGE, {"instance-id": instance, "state": state})


def run(stack: Any, n: int, host: str | None = None, **post: Any) -> None:
    for _ in range(n):
        stack.clock.advance(MIN)
        if host:
            stack.post(host, **post)
        stack.evaluate()


def state(stack: Any, host: str) -> str:
    return stack.services.host_store.get(host)["state"]


EC2_TAGS = {"instance_id": "i-0123456789abcdef0", "asg": "web", "instance_type": "t3.micro"}


def test_a_terminated_instance_never_pages(alerting_stack):
    stack = alerting_stack
    run(stack, 2, "web-1", tags=EC2_TAGS)
    report = state_change(stack, "i-0123456789abcdef0", "terminated")
    assert report["ended"] == ["web-1"]
    assert report["fate"] == "retire"
    assert state(stack, "web-1") == "retired"
    run(stack, 10)  # silent for ten minutes: retired hosts are not late
    assert stack.messages() == []


def test_an_open_host_down_alert_resolves_with_the_reason(alerting_stack):
    stack = alerting_stack
    run(stack, 2, "web-1", tags=EC2_TAGS)
    run(stack, 4)
    [down] = stack.messages()
    assert (down["alert_id"], down["status"]) == ("web-1/heartbeat", "firing")
    lifecycle(
        stack,
        ASG_TERMINATE,
        {"EC2InstanceId": "i-0123456789abcdef0", "AutoScalingGroupName": "web"},
        source="aws.autoscaling",
    )
    run(stack, 1)
    resolved = stack.messages()[-1]
    assert resolved["status"] == "resolved"
    assert resolved["summary"] == (
        "web-1: Auto Scaling group web is terminating EC2 instance i-0123456789abcdef0"
    )
    run(stack, 5)
    assert len(stack.messages()) == 2  # no reminder, no second page


def test_a_stopped_instance_is_paused_and_comes_back(alerting_stack):
    stack = alerting_stack
    run(stack, 2, "web-1", tags=EC2_TAGS)
    assert state_change(stack, "i-0123456789abcdef0", "stopping")["ended"] == ["web-1"]
    assert state(stack, "web-1") == "paused"
    [host] = stack.request("GET", "/v1/hosts").json_body["hosts"]
    assert host["state"] == "paused"
    run(stack, 30)
    assert stack.messages() == []
    run(stack, 2, "web-1", tags=EC2_TAGS)  # started again: it posts, it is up
    assert state(stack, "web-1") == "up"
    assert "lifecycle" not in stack.services.host_store.get("web-1")
    run(stack, 5)  # and a silence now is a real outage
    assert [m["status"] for m in stack.messages()] == ["firing"]


def test_a_spot_warning_retires_or_pauses_as_the_interruption_says(alerting_stack):
    stack = alerting_stack
    run(stack, 1, "spot-1", tags={"instance_id": "i-1"})
    run(stack, 1, "spot-2", tags={"instance_id": "i-2"})
    lifecycle(stack, SPOT_WARNING, {"instance-id": "i-1", "instance-action": "terminate"})
    lifecycle(stack, SPOT_WARNING, {"instance-id": "i-2", "instance-action": "stop"})
    assert (state(stack, "spot-1"), state(stack, "spot-2")) == ("retired", "paused")


def test_the_instance_is_found_by_one_query_on_the_index(alerting_stack):
    stack = alerting_stack
    for i in range(5):
        run(stack, 1, f"web-{i}", tags={"instance_id": f"i-{i}"})
    calls: list[tuple[str, dict[str, Any]]] = []
    client = stack.services.clients.get("dynamodb")
    client.meta.events.register(
        "provide-client-params.dynamodb.*",
        lambda model, params, **_: calls.append((model.name, params)),
    )
    state_change(stack, "i-3", "terminated")
    assert [name for name, _ in calls] == ["Query", "UpdateItem"]
    assert calls[0][1]["IndexName"] == "instance_id"


def test_a_host_another_instance_took_over_is_left_alone(alerting_stack):
    stack = alerting_stack
    run(stack, 1, "ip-10-0-0-5", tags={"instance_id": "i-old"})
    run(stack, 1, "ip-10-0-0-5", tags={"instance_id": "i-new"})  # the name was reused
    report = state_change(stack, "i-old", "terminated")
    assert report["ended"] == []
    assert state(stack, "ip-10-0-0-5") == "up"


@pytest.mark.parametrize(
    ("detail_type", "detail"),
    [
        (STATE_CHANGE, {"instance-id": "i-0123456789abcdef0", "state": "running"}),
        (STATE_CHANGE, {"instance-id": "i-0123456789abcdef0", "state": "pending"}),
        (STATE_CHANGE, {"state": "terminated"}),
        (SPOT_WARNING, {"instance-id": "i-0123456789abcdef0", "instance-action": "dance"}),
        ("EC2 Instance Launch Successful", {"EC2InstanceId": "i-0123456789abcdef0"}),
    ],
)
def test_events_that_end_nothing_change_nothing(alerting_stack, detail_type, detail):
    stack = alerting_stack
    run(stack, 1, "web-1", tags=EC2_TAGS)
    assert lifecycle(stack, detail_type, detail)["ended"] == []
    assert state(stack, "web-1") == "up"


def test_an_unknown_instance_is_a_no_op(alerting_stack):
    stack = alerting_stack
    run(stack, 1, "web-1")
    assert state_change(stack, "i-nobody", "terminated") == {
        "instance_id": "i-nobody",
        "fate": "retire",
        "reason": "EC2 instance i-nobody is terminated",
        "ended": [],
        "skipped": [],
    }


def test_the_rule_matches_the_three_event_kinds():
    import app

    [source] = [s for s in app.app.event_sources if s.name == "ec2_lifecycle"]
    assert source.event_pattern == EVENT_PATTERN
    assert set(EVENT_PATTERN["detail-type"]) == {STATE_CHANGE, SPOT_WARNING, ASG_TERMINATE}
