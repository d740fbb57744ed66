"""In-memory stores behind the same ports, for tests and benchmarks (they never ship).

They keep the behaviour that matters to callers: the metric store refuses
what Timestream refuses (through the same planner) and treats an identical
resend as success but a different value at the same instant as a rejection;
the token, host, alert, silence and job stores and the ledger are held to the
DynamoDB adapters' behaviour by the contract suites in tests/adapters.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from chalicelib.adapters.dynamodb import ddb_number
from chalicelib.adapters.dynamodb.common import epoch_seconds
from chalicelib.core.alert_message import AlertMessage, AlertStatus
from chalicelib.core.alerts import AlertRecord
from chalicelib.core.heartbeats import DEFAULT_INTERVAL, HostSnapshot
from chalicelib.core.hosts import (
    CATALOG_SHAPES,
    HistoryPoint,
    HostState,
    HostUpdate,
    SeriesEntry,
    SeriesLatest,
    ServiceLatest,
    carried_series,
    catalog_due,
    catalog_list,
    merged_catalog,
)
from chalicelib.core.instants import instant_of_ms, ms_of_instant
from chalicelib.core.jobs import Job, JobSpec, new_job
from chalicelib.core.models import HostReport, Rejection
from chalicelib.core.notify import (
    Channel,
    Claim,
    ClaimStatus,
    Delivery,
    DeliveryRecord,
    DeliveryState,
    Episode,
)
from chalicelib.core.ports import BackendUnavailable
from chalicelib.core.silences import Silence
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

    def put(self, record: TokenRecord) -> bool:
        if record.token_id in self.items:
            return False
        self.items[record.token_id] = record
        return True

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
    """Host items as plain dicts, laid out like the DynamoDB items (`w`, `e#...`, `h#...`),
    and the series catalog: host -> series key -> (time written, entry)."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.catalogs: dict[str, dict[str, tuple[int, SeriesEntry]]] = {}
        self._lock = threading.Lock()

    def catalog(self, host: str) -> list[SeriesEntry]:
        with self._lock:
            return catalog_list(self.catalogs.get(host, {}))

    def scan(
        self, fields: Mapping[str, frozenset[str]] | None = None, *, history: bool = False
    ) -> list[HostSnapshot]:
        with self._lock:
            return [_snapshot(item, history) for item in self.items.values()]

    def snapshot(self, host: str) -> HostSnapshot | None:
        with self._lock:
            item = self.items.get(host)
            return _snapshot(item) if item is not None else None

    def mark_down(self, host: str, last_seen_at: datetime) -> bool:
        with self._lock:
            item = self.items.get(host)
            if (
                item is None
                or item["state"] != "up"
                or item["last_seen_at"] != ms_of_instant(last_seen_at)
            ):
                return False
            item["state"] = HostState.DOWN.value
            return True

    def pause(self, host: str) -> bool:
        with self._lock:
            item = self.items.get(host)
            if item is None:
                return False
            item["state"] = HostState.PAUSED.value
            return True

    def resume(self, host: str) -> bool:
        with self._lock:
            item = self.items.get(host)
            if item is None:
                return False
            if item["state"] == HostState.PAUSED.value:
                item["state"] = HostState.UP.value
            return True

    def forget(self, host: str, last_seen_at: datetime) -> bool:
        with self._lock:
            item = self.items.get(host)
            if item is None or item["state"] != "retired":
                return False
            if item["last_seen_at"] != ms_of_instant(last_seen_at):
                return False
            del self.items[host]
            return True

    def prune(self, host: str, services: dict[str, int]) -> bool:
        with self._lock:
            item = self.items.get(host)
            if item is None:
                return False
            names = [("e#" + k, t) for k, t in services.items()]
            if any(item.get(name, {}).get("t") != t for name, t in names):
                return False
            for name, _ in names:
                del item[name]
            return True

    # InstanceDirectory: the same store, looked up by the instance_id attribute.
    def hosts_of(self, instance_id: str) -> list[str]:
        with self._lock:
            return sorted(h for h, i in self.items.items() if i.get("instance_id") == instance_id)

    def end(self, host: str, instance_id: str, state: HostState, reason: str, at: datetime) -> bool:
        with self._lock:
            item = self.items.get(host)
            if item is None or item.get("instance_id") != instance_id:
                return False
            item["state"] = state.value
            item["lifecycle"] = reason
            if state is HostState.RETIRED:
                item.setdefault("retired_at", ms_of_instant(at))
            return True

    def record(self, update: HostUpdate) -> None:
        with self._lock:
            self._record(update)

    def _record(self, update: HostUpdate) -> None:
        item = self.items.setdefault(update.host, {"host": update.host})
        old_watched = _watched(item)
        seen = ms_of_instant(update.seen_at)
        item["last_seen_at"] = seen
        item.setdefault("first_seen_at", seen)
        item["state"] = update.state.value
        if update.interval_s is not None:
            item["interval_s"] = update.interval_s
        if update.tags:
            item["tags"] = dict(update.tags)
            if update.tags.get("instance_id"):
                item["instance_id"] = update.tags["instance_id"]
        item.pop("lifecycle", None)
        if update.agent_name is not None:
            item["agent_name"] = update.agent_name
            item["agent_version"] = update.agent_version or ""
        if update.state is HostState.RETIRED:
            item["retired_at"] = seen
        else:
            item.pop("retired_at", None)
        watched = {**carried_series(old_watched, update), **update.series}
        stored = {}
        for key, s in watched.items():
            fields = {
                k: v for k, v in ((k, _storable(v)) for k, v in s.fields.items()) if v is not None
            }
            if fields:  # as in DynamoDB: nothing storable, nothing stored
                stored[key] = {"m": s.measurement, "tags": s.tags, "t": s.time_ms, "f": fields}
        if stored:
            item["w"] = stored
        else:
            item.pop("w", None)
        item["series_n"] = update.series_count
        digests = item.get("cat", [])
        if catalog_due(update, digests, item.get("cat_t")):
            self.catalogs[update.host] = merged_catalog(self.catalogs.get(update.host, {}), update)
            kept = [update.catalog_digest, *(d for d in digests if d != update.catalog_digest)]
            item["cat"] = kept[:CATALOG_SHAPES]
            item["cat_t"] = ms_of_instant(update.seen_at)
        if update.history is not None:
            h = update.history
            item[f"h#{h.slot}"] = {"t": h.time_ms, "c": _storable(h.cpu), "m": _storable(h.mem)}
        for service, svc in update.services.items():
            item["e#" + service] = {
                "status": svc.status,
                "t": svc.time_ms,
                "d": svc.description,
                "ttl": svc.ttl_ms,
                "v": _storable(svc.value),
            }


def _storable(value: float | int | bool | None) -> float | bool | None:
    """The value as DynamoDB gives it back: a number out of its range is not stored."""
    if value is None or isinstance(value, bool):
        return value
    number = ddb_number(value)
    return float(number) if number is not None else None


def _watched(item: dict[str, Any]) -> dict[str, SeriesLatest]:
    return {
        k: SeriesLatest(v["m"], dict(v["tags"]), v["t"], dict(v["f"]))
        for k, v in item.get("w", {}).items()
    }


def _snapshot(item: dict[str, Any], history: bool = False) -> HostSnapshot:
    series = _watched(item)
    services = {
        k[2:]: ServiceLatest(v["status"], v["t"], v.get("ttl"), v.get("d", ""), v.get("v"))
        for k, v in item.items()
        if k.startswith("e#")
    }
    ring = (
        tuple(HistoryPoint(v["t"], v["c"], v["m"]) for k, v in item.items() if k.startswith("h#"))
        if history
        else ()
    )
    interval = item.get("interval_s")
    return HostSnapshot(
        host=item["host"],
        state=HostState(item["state"]),
        last_seen_at=instant_of_ms(item["last_seen_at"]),
        first_seen_at=instant_of_ms(item["first_seen_at"]),
        interval=timedelta(seconds=interval) if interval else DEFAULT_INTERVAL,
        tags=dict(item.get("tags", {})),
        agent_name=item.get("agent_name"),
        agent_version=item.get("agent_version"),
        retired_at=instant_of_ms(item["retired_at"]) if "retired_at" in item else None,
        lifecycle=item.get("lifecycle"),
        series=series,
        services=services,
        history=ring,
        series_count=item.get("series_n", len(series)),
    )


class InMemoryAlertStore:
    """Alert records with the same compare-and-swap as the DynamoDB store; counts requests."""

    def __init__(self) -> None:
        self.items: dict[str, AlertRecord] = {}
        self.requests = 0
        self._lock = threading.Lock()

    def scan(self) -> list[AlertRecord]:
        with self._lock:
            self.requests += 1
            return list(self.items.values())

    def put(self, record: AlertRecord, expected_version: int | None) -> bool:
        with self._lock:
            self.requests += 1
            known = self.items.get(record.alert_id)
            if (known.version if known else None) != expected_version:
                return False
            self.items[record.alert_id] = record
            return True

    def delete(self, alert_id: str, expected_version: int) -> bool:
        with self._lock:
            self.requests += 1
            known = self.items.get(alert_id)
            if known is None or known.version != expected_version:
                return False
            del self.items[alert_id]
            return True


class InMemorySilenceStore:
    def __init__(self) -> None:
        self.items: dict[str, Silence] = {}

    def list(self) -> list[Silence]:
        return sorted(self.items.values(), key=lambda s: s.created_at)

    def put(self, silence: Silence) -> bool:
        if silence.silence_id in self.items:
            return False
        self.items[silence.silence_id] = silence
        return True

    def delete(self, silence_id: str) -> bool:
        return self.items.pop(silence_id, None) is not None


class InMemoryAlertPublisher:
    """Records what was published; `fail` makes the next publishes raise."""

    def __init__(self) -> None:
        self.messages: list[AlertMessage] = []
        self.fail = 0

    def publish(self, message: AlertMessage) -> None:
        if self.fail:
            self.fail -= 1
            raise BackendUnavailable("publish failed (in-memory publisher told to fail)")
        self.messages.append(message)


class InMemoryLedger:
    """The same ledger in a dict: for unit tests and quick local runs."""

    def __init__(self) -> None:
        self.deliveries: dict[tuple[str, Channel], dict[str, Any]] = {}
        self.episodes: dict[tuple[str, Channel], Episode] = {}
        self._lock = threading.Lock()

    def claim(self, delivery: Delivery, now: datetime, lease: timedelta) -> Claim:
        message_id, channel, message = delivery.message_id, delivery.channel, delivery.message
        with self._lock:
            item = self.deliveries.get((message_id, channel))
            if item is not None:
                state = DeliveryState(item["state"])
                expired = state is DeliveryState.CLAIMED and item["lease_until"] < epoch_seconds(
                    now
                )
                if state.final:
                    return Claim(ClaimStatus.DONE, previous=state)
                if state is DeliveryState.CLAIMED and not expired:
                    return Claim(ClaimStatus.BUSY, previous=state)
            claim_id = uuid.uuid4().hex
            item = item or {"claims": 0, "attempts": 0, "first_claimed_at": now.isoformat()}
            item.update(
                state=DeliveryState.CLAIMED.value,
                claim_id=claim_id,
                lease_until=epoch_seconds(now + lease),
                claimed_at=now.isoformat(),
                dedup_key=message["dedup_key"],
                alert_status=message["status"],
                claims=item["claims"] + 1,
            )
            self.deliveries[(message_id, channel)] = item
            return Claim(ClaimStatus.CLAIMED, claim_id)

    def finish(
        self, delivery: Delivery, claim: Claim, record: DeliveryRecord, now: datetime
    ) -> None:
        message_id, channel, message = delivery.message_id, delivery.channel, delivery.message
        with self._lock:
            item = self.deliveries[(message_id, channel)]
            if item["claim_id"] != claim.claim_id:
                return
            item.update(
                state=record.state.value,
                finished_at=now.isoformat(),
                lease_until=0,
                attempts=item["attempts"] + record.attempts,
                response_code=record.response_code,
                error=record.error,
            )
            if record.state is DeliveryState.SENT:
                key = (message["dedup_key"], channel)
                episode = self.episodes.get(key, Episode())
                if message["status"] == AlertStatus.RESOLVED:
                    episode = Episode(episode.firing_sent, episode.resolved_sent + 1)
                else:
                    episode = Episode(episode.firing_sent + 1, episode.resolved_sent)
                self.episodes[key] = episode

    def episode(self, dedup_key: str, channel: Channel) -> Episode:
        return self.episodes.get((dedup_key, channel), Episode())

    def delivery(self, message_id: str, channel: Channel) -> dict[str, Any] | None:
        item = self.deliveries.get((message_id, channel))
        return dict(item) if item else None


class InMemoryJobStore:
    """The jobs table's conditions: create if absent, put on the expected version and
    ping id, delete if present."""

    def __init__(self) -> None:
        self.items: dict[str, Job] = {}
        self.requests = 0
        self._lock = threading.Lock()

    def get(self, slug: str) -> Job | None:
        with self._lock:
            self.requests += 1
            return self.items.get(slug)

    def by_ping_id(self, ping_id: str) -> Job | None:
        with self._lock:
            self.requests += 1
            return next((j for j in self.items.values() if j.ping_id == ping_id), None)

    def scan(self) -> list[Job]:
        with self._lock:
            self.requests += 1
            return list(self.items.values())

    def define(self, spec: JobSpec, ping_id: str, now: datetime) -> Job:
        with self._lock:
            self.requests += 1
            known = self.items.get(spec.slug)
            job = (
                new_job(spec, ping_id, now)
                if known is None
                else replace(known, spec=spec, version=known.version)
            )
            job = replace(job, version=job.version + 1)
            self.items[spec.slug] = job
            return job

    def create(self, job: Job) -> bool:
        with self._lock:
            self.requests += 1
            if job.spec.slug in self.items:
                return False
            self.items[job.spec.slug] = job
            return True

    def put(self, job: Job, expected_version: int) -> bool:
        with self._lock:
            self.requests += 1
            known = self.items.get(job.spec.slug)
            if known is None or known.version != expected_version or known.ping_id != job.ping_id:
                return False
            self.items[job.spec.slug] = job
            return True

    def delete(self, slug: str) -> bool:
        with self._lock:
            self.requests += 1
            return self.items.pop(slug, None) is not None
