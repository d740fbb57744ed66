"""In-memory stores behind the same ports: for unit tests and quick local runs.

They keep the behaviour that matters to callers: the metric store refuses
what Timestream refuses (through the same planner) and treats an identical
resend as success but a different value at the same instant as a rejection.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from chalicelib.core.hosts import HostState, HostUpdate
from chalicelib.core.models import HostReport, Rejection
from chalicelib.core.timestream import expand_records, plan_writes
from chalicelib.core.tokens import TokenRecord

SeriesKey = tuple[str, str, tuple[tuple[str, str], ...]]  # measure, time, dims


class InMemoryMetricStore:
    def __init__(self) -> None:
        self.records: dict[SeriesKey, dict[str, Any]] = {}
        self.writes = 0  # records accepted, resends included
        self._lock = threading.Lock()

    def write(self, reports: Sequence[HostReport]) -> list[Rejection]:
        plan = plan_writes(reports)
        rejected = list(plan.rejected)
        with self._lock:
            for request in plan.requests:
                expanded = expand_records(request.common, request.records)
                for record, source in zip(expanded, request.sources, strict=True):
                    dims = tuple(sorted((d["Name"], d["Value"]) for d in record["Dimensions"]))
                    key = (record["MeasureName"], record["Time"], dims)
                    known = self.records.get(key)
                    if known is not None and known["MeasureValues"] != record["MeasureValues"]:
                        rejected.append(
                            Rejection(
                                source.index,
                                source.path,
                                f"{source.path}: a different value is already stored for this series and time",
                            )
                        )
                        continue
                    self.records[key] = record
                    self.writes += 1
        return rejected


class InMemoryTokenStore:
    def __init__(self) -> None:
        self.items: dict[str, TokenRecord] = {}

    def get(self, token_id: str) -> TokenRecord | None:
        return self.items.get(token_id)

    def put(self, record: TokenRecord) -> None:
        if record.token_id in self.items:
            raise ValueError(f"token {record.token_id} exists")
        self.items[record.token_id] = record

    def list(self) -> list[TokenRecord]:
        return sorted(self.items.values(), key=lambda r: r.created_at)

    def revoke(self, token_id: str, at: datetime) -> bool:
        record = self.items.get(token_id)
        if record is None:
            return False
        if record.revoked_at is None:
            self.items[token_id] = replace(record, revoked_at=at)
        return True

    def touch(self, token_id: str, at: datetime) -> None:
        record = self.items.get(token_id)
        if record is not None:
            self.items[token_id] = replace(record, last_used_at=at)


class InMemoryHostStore:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def record(self, update: HostUpdate) -> None:
        item = self.items.setdefault(update.host, {"host": update.host})
        seen = int(update.seen_at.timestamp() * 1000)
        item["last_seen_at"] = seen
        item.setdefault("first_seen_at", seen)
        item["state"] = update.state.value
        if update.interval_s is not None:
            item["interval_s"] = update.interval_s
        if update.tags:
            item["tags"] = dict(update.tags)
        if update.agent_name is not None:
            item["agent_name"] = update.agent_name
            item["agent_version"] = update.agent_version or ""
        if update.state is HostState.RETIRED:
            item["retired_at"] = seen
        else:
            item.pop("retired_at", None)
        for key, s in update.series.items():
            item["s#" + key] = {
                "m": s.measurement,
                "tags": s.tags,
                "t": s.time_ms,
                "f": dict(s.fields),
            }
        for service, svc in update.services.items():
            item["e#" + service] = {
                "status": svc.status,
                "t": svc.time_ms,
                "d": svc.description,
                "ttl": svc.ttl_ms,
                "v": svc.value,
            }
