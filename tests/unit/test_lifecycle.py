"""What each EventBridge event says about an instance (chalicelib/core/lifecycle.py)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.core.hosts import HostState
from chalicelib.core.lifecycle import (
    ASG_TERMINATE,
    SPOT_WARNING,
    STATE_CHANGE,
    InstanceFate,
    instance_end,
)


def event(detail_type: str, **detail: Any) -> dict[str, Any]:
    return {"source": "aws.ec2", "detail-type": detail_type, "detail": detail}


@pytest.mark.parametrize(
    ("e", "fate"),
    [
        (event(STATE_CHANGE, **{"instance-id": "i-1", "state": "terminated"}), "retire"),
        (event(STATE_CHANGE, **{"instance-id": "i-1", "state": "shutting-down"}), "retire"),
        (event(STATE_CHANGE, **{"instance-id": "i-1", "state": "stopping"}), "pause"),
        (event(STATE_CHANGE, **{"instance-id": "i-1", "state": "stopped"}), "pause"),
        (event(SPOT_WARNING, **{"instance-id": "i-1", "instance-action": "terminate"}), "retire"),
        (event(SPOT_WARNING, **{"instance-id": "i-1", "instance-action": "hibernate"}), "pause"),
        (event(ASG_TERMINATE, EC2InstanceId="i-1", AutoScalingGroupName="web"), "retire"),
    ],
)
def test_each_kind_of_event_has_its_fate(e, fate):
    end = instance_end(e)
    assert end is not None
    assert (end.instance_id, end.fate.value) == ("i-1", fate)


def test_fates_are_the_stored_states():
    assert InstanceFate.RETIRE.state is HostState.RETIRED
    assert InstanceFate.PAUSE.state is HostState.PAUSED


def test_the_reason_names_the_group_and_the_instance():
    end = instance_end(event(ASG_TERMINATE, EC2InstanceId="i-1", AutoScalingGroupName="web"))
    assert end is not None
    assert end.reason == "Auto Scaling group web is terminating EC2 instance i-1"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=10,
)


@given(
    st.sampled_from([STATE_CHANGE, SPOT_WARNING, ASG_TERMINATE, "Scheduled Event", None]),
    json_values,
)
def test_any_event_gives_an_end_or_none_and_never_raises(detail_type, detail):
    end = instance_end({"detail-type": detail_type, "detail": detail})
    assert end is None or (end.instance_id and len(end.reason) <= 500)
