"""EC2 lifecycle events: which instance is going away, and whether it comes back.

An instance that Auto Scaling or a Spot interruption terminates dies before its
agent can say goodbye. EventBridge tells the collector first; the host whose
`instance_id` tag names the instance is then retired (it will never post again)
or paused (a stopped instance may be started again), quietly: an open host-down
alert resolves with the reason instead of paging. A host that posts again is up.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.core.hosts import HostState
from chalicelib.core.text import clip

STATE_CHANGE = "EC2 Instance State-change Notification"
SPOT_WARNING = "EC2 Spot Instance Interruption Warning"
ASG_TERMINATE = "EC2 Instance-terminate Lifecycle Action"

# The EventBridge rule's pattern (chalice makes the rule from it, the local stack too).
# States the handler does not act on (pending, running) match as well: they cost an
# invocation that does nothing, and the rule stays one simple pattern.
EVENT_PATTERN: dict[str, Any] = {
    "source": ["aws.ec2", "aws.autoscaling"],
    "detail-type": [STATE_CHANGE, SPOT_WARNING, ASG_TERMINATE],
}

# The host tag that names the instance, and the host item attribute indexed by it.
INSTANCE_TAG = "instance_id"
# The host item attribute holding why EC2 ended the host; the host's next post removes it.
LIFECYCLE_ATTRIBUTE = "lifecycle"
MAX_REASON = 500


class InstanceFate(enum.StrEnum):
    RETIRE = "retire"  # terminated: never posts again
    PAUSE = "pause"  # stopped: may be started again

    @property
    def state(self) -> HostState:
        return HostState.RETIRED if self is InstanceFate.RETIRE else HostState.PAUSED


STATE_FATES = {
    "shutting-down": InstanceFate.RETIRE,
    "terminated": InstanceFate.RETIRE,
    "stopping": InstanceFate.PAUSE,
    "stopped": InstanceFate.PAUSE,
}
SPOT_FATES = {
    "terminate": InstanceFate.RETIRE,
    "stop": InstanceFate.PAUSE,
    "hibernate": InstanceFate.PAUSE,
}


@dataclass(frozen=True, slots=True)
class InstanceEnd:
    """What one EventBridge event says about one instance."""

    instance_id: str
    fate: InstanceFate
    reason: str


def instance_end(event: Mapping[str, Any]) -> InstanceEnd | None:
    """The instance the event is about and its fate; None for an event that changes
    nothing (a start, another detail-type, a malformed event)."""
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        return None
    kind = event.get("detail-type")
    if kind == STATE_CHANGE:
        instance, state = detail.get("instance-id"), detail.get("state")
        fate = STATE_FATES.get(state) if isinstance(state, str) else None
        reason = f"EC2 instance {instance} is {state}"
    elif kind == SPOT_WARNING:
        instance, action = detail.get("instance-id"), detail.get("instance-action")
        fate = SPOT_FATES.get(action) if isinstance(action, str) else None
        reason = f"Spot interruption: EC2 instance {instance} will {action}"
    elif kind == ASG_TERMINATE:
        instance = detail.get("EC2InstanceId")
        fate = InstanceFate.RETIRE
        group = detail.get("AutoScalingGroupName") or "an Auto Scaling group"
        reason = f"Auto Scaling group {group} is terminating EC2 instance {instance}"
    else:
        return None
    if fate is None or not isinstance(instance, str) or not instance:
        return None
    return InstanceEnd(instance, fate, clip(reason, MAX_REASON))
