"""The InstanceDirectory contract, held by the in-memory fake and by DynamoDB (moto): the
hosts table looked up by the `instance_id` a host's posts carry, and ended only while the
host still belongs to that instance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalicelib.core.hosts import HostState, HostUpdate

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
I_1 = "i-0123456789abcdef0"
I_2 = "i-0fedcba9876543210"


def post(stores, host: str, at: datetime = NOW, **tags: str) -> None:
    stores.hosts.record(HostUpdate(host, at, HostState.UP, 60, tags, "fleetpulse-agent", "0.1.0"))


def snapshot(stores, host: str):
    [found] = [h for h in stores.hosts.scan() if h.host == host]
    return found


def test_hosts_are_found_by_the_instance_id_their_posts_carry(stores):
    post(stores, "web-1", instance_id=I_1, role="web")
    post(stores, "web-2", instance_id=I_1)
    post(stores, "db-1", instance_id=I_2)
    post(stores, "laptop", role="dev")  # no instance id: not in the directory
    assert stores.instances.hosts_of(I_1) == ["web-1", "web-2"]
    assert stores.instances.hosts_of(I_2) == ["db-1"]
    assert stores.instances.hosts_of("i-00000000000000000") == []


def test_ending_a_host_sets_its_state_and_reason_once_retired(stores):
    post(stores, "web-1", instance_id=I_1)
    at = NOW + timedelta(minutes=5)
    assert stores.instances.end("web-1", I_1, HostState.RETIRED, "terminated", at)
    host = snapshot(stores, "web-1")
    assert host.state is HostState.RETIRED
    assert host.lifecycle == "terminated"
    assert host.retired_at == at
    later = at + timedelta(minutes=5)
    assert stores.instances.end("web-1", I_1, HostState.RETIRED, "terminated", later)
    assert snapshot(stores, "web-1").retired_at == at  # the first retirement is kept


def test_a_paused_host_that_posts_again_is_back_without_a_reason(stores):
    post(stores, "web-1", instance_id=I_1)
    assert stores.instances.end("web-1", I_1, HostState.PAUSED, "stopped", NOW)
    host = snapshot(stores, "web-1")
    assert (host.state, host.lifecycle, host.retired_at) == (HostState.PAUSED, "stopped", None)
    post(stores, "web-1", NOW + timedelta(minutes=1), instance_id=I_1)
    host = snapshot(stores, "web-1")
    assert (host.state, host.lifecycle) == (HostState.UP, None)


def test_a_host_another_instance_took_is_not_ended(stores):
    post(stores, "web-1", instance_id=I_1)
    post(stores, "web-1", NOW + timedelta(minutes=1), instance_id=I_2)  # the name moved on
    assert not stores.instances.end("web-1", I_1, HostState.RETIRED, "terminated", NOW)
    assert snapshot(stores, "web-1").state is HostState.UP
    assert not stores.instances.end("ghost", I_1, HostState.RETIRED, "terminated", NOW)
    assert [h.host for h in stores.hosts.scan()] == ["web-1"]
