"""Job alerts inside the alerting use-case, over in-memory stores: the same evaluation,
writes and notifications as the hosts'; a jobs table that cannot be read changes nothing."""

from __future__ import annotations

from datetime import timedelta

from chalicelib.core.jobs import Ping, PingKind, apply_ping, new_job, parse_spec
from chalicelib.core.ports import BackendUnavailable
from tests.support.alerting import T0, Fleet
from tests.support.memory import InMemoryJobStore

ID = "0b7f5f0e-2a4c-4b8e-9d3f-6c1a2b3c4d5e"


class BrokenJobStore(InMemoryJobStore):
    def scan(self):
        raise BackendUnavailable("jobs table: ResourceNotFoundException")


def fleet_with(store: InMemoryJobStore) -> Fleet:
    fleet = Fleet()
    fleet.service = with_jobs(fleet, store)
    return fleet


def with_jobs(fleet: Fleet, store: InMemoryJobStore):
    """An evaluator over the fleet's stores that also reads `store`'s jobs."""
    service = fleet.evaluator()
    service.jobs = store
    return service


def failed_job(store: InMemoryJobStore) -> None:
    job = new_job(parse_spec("backup", {"period": "1h"}), ID, T0)
    result = apply_ping(job, Ping(PingKind.FAIL, T0, 2, None, "disk full"))
    assert result.job is not None
    store.items["backup"] = result.job


def test_a_failed_job_pages_once_beside_the_hosts_and_resolves():
    store = InMemoryJobStore()
    fleet = fleet_with(store)
    failed_job(store)
    fleet.post("web-1", T0, disk=97.0)
    fleet.evaluate(T0)
    fleet.evaluate(T0 + timedelta(minutes=1))
    assert fleet.statuses("job:backup") == ["firing"]
    assert fleet.state("web-1/disk-full/mount=/") == "pending"  # hosts evaluated as ever
    job = store.items["backup"]
    store.items["backup"] = apply_ping(job, Ping(PingKind.SUCCESS, T0 + timedelta(minutes=2))).job
    fleet.evaluate(T0 + timedelta(minutes=2))
    assert fleet.statuses("job:backup") == ["firing", "resolved"]


def test_an_unreadable_jobs_table_keeps_job_alerts_and_still_evaluates_hosts():
    store = InMemoryJobStore()
    fleet = fleet_with(store)
    failed_job(store)
    fleet.evaluate(T0)
    assert fleet.state("job:backup") == "firing"
    broken = BrokenJobStore()
    fleet.service = with_jobs(fleet, broken)
    later = T0 + timedelta(hours=30)
    fleet.post("web-1", later, disk=97.0)
    fleet.evaluate(later)
    assert fleet.state("job:backup") == "firing"  # not resolved for want of data
    assert fleet.statuses("job:backup") == ["firing"]
    assert fleet.state("web-1/disk-full/mount=/") == "pending"
