"""The `ec2_lifecycle` use-case: an EventBridge event in, the instance's hosts retired or
paused quietly. The next evaluation resolves their open heartbeat alerts with the reason."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.core.lifecycle import instance_end
from chalicelib.core.ports import InstanceDirectory


@dataclass(slots=True)
class LifecycleReport:
    instance_id: str | None = None
    fate: str | None = None
    reason: str = ""
    ended: list[str] = field(default_factory=list)  # hosts retired or paused
    skipped: list[str] = field(default_factory=list)  # hosts another instance took over

    def as_json(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "fate": self.fate,
            "reason": self.reason,
            "ended": self.ended,
            "skipped": self.skipped,
        }


class LifecycleService:
    def __init__(self, instances: InstanceDirectory) -> None:
        self.instances = instances

    def handle(self, event: Mapping[str, Any], now: datetime) -> LifecycleReport:
        """Retire (terminated) or pause (stopped) the hosts of the event's instance."""
        end = instance_end(event)
        if end is None:
            return LifecycleReport()
        report = LifecycleReport(end.instance_id, end.fate.value, end.reason)
        for host in self.instances.hosts_of(end.instance_id):
            if self.instances.end(host, end.instance_id, end.fate.state, end.reason, now):
                report.ended.append(host)
            else:
                report.skipped.append(host)
        return report
