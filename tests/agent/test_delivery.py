"""What the sender does with each collector answer, against a real local HTTP collector."""

from __future__ import annotations

import time
from email.utils import formatdate
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fake_collector import Answer, FakeCollector, closed_port
from fleetpulse_agent.deliver import Sender, decode, encode, envelope
from fleetpulse_agent.spool import Spool

from chalicelib.core.limits import Limits


def batch(
    cfg: SimpleNamespace, n_points: int, start_ms: int, state: str | None = "alive"
) -> dict[str, Any]:
    doc = envelope(cfg.host, cfg.tags, cfg.send_interval, state)
    doc["points"] = [
        {
            "measurement": "cpu",
            "time": start_ms + i,
            "tags": {"cpu": "total"},
            "fields": {"user": float(i % 100), "user_max": 99.5},
        }
        for i in range(n_points)
    ]
    return doc


def setup(
    cfg: SimpleNamespace, batches: int = 3, points: int = 5
) -> tuple[Spool, Sender, list[int]]:
    spool = Spool(cfg.spool_dir, 10 * 2**20, 2**20)
    sender = Sender(cfg, spool)
    now = int(time.time() * 1000) - 60_000
    times = []
    for b in range(batches):
        start = now + b * 1000
        spool.put(encode(batch(cfg, points, start)), start)
        times += [start + i for i in range(points)]
    return spool, sender, times


def stored_times(collector: FakeCollector) -> list[int]:
    return [k[3] for k in collector.order]


# How an answer may be framed. On a connection the collector keeps open (a proxy may,
# whatever the request asked), an agent that read to the close would wait out its idle
# timeout and count the answer as lost.
FRAMINGS = {
    "length, then close": {},
    "length, kept open": {"keep_alive": True},
    "chunked, then close": {"chunked": True},
    "chunked, kept open": {"chunked": True, "keep_alive": True},
}


def test_202_deletes_batches_and_stores_every_point_once_in_order(collector, make_cfg) -> None:
    cfg = make_cfg(collector.url)
    spool, sender, times = setup(cfg)
    assert sender.send_pending() == 0
    assert spool.pending() == []
    assert stored_times(collector) == times
    assert collector.duplicates == 0
    assert collector.conflicts == []
    assert len(collector.posts) == 1  # the backlog was coalesced into one request


def test_400_from_the_validator_moves_the_batch_to_dead_letters(collector, make_cfg) -> None:
    cfg = make_cfg(collector.url)
    spool, sender, times = setup(cfg, batches=2)
    bad = batch(cfg, 2, int(time.time() * 1000))
    bad["host"] = "not a host name!"
    spool.put(encode(bad))
    assert sender.send_pending() == 0
    assert spool.dead_letters == 1
    assert spool.pending() == []
    dead = list((Path(cfg.spool_dir) / "dead").glob("*.json.gz"))
    assert len(dead) == 1
    reason = (dead[0].parent / (dead[0].name + ".reason")).read_text()
    assert reason.startswith("400 request envelope is invalid (host:")
    assert stored_times(collector) == times  # the good batches before it went through


def test_400_on_a_coalesced_request_is_retried_batch_by_batch(collector, make_cfg) -> None:
    cfg = make_cfg(collector.url)
    spool, sender, times = setup(cfg, batches=3, points=2)
    collector.answer(400, 400)  # the coalesced request, then the first batch alone
    assert sender.send_pending() == 0
    assert spool.dead_letters == 1
    assert stored_times(collector) == times[2:]
    assert [p.points for p in collector.posts] == [6, 2, 2, 2]


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_keep_the_backlog_and_back_off_long_until_the_token_is_fixed(
    collector, make_cfg, status
) -> None:
    cfg = make_cfg(collector.url, auth_backoff=600, retry_base=1)
    spool, sender, times = setup(cfg)
    if status == 401:
        collector.token = "rotated"
    else:
        collector.allowed_hosts = {"another-host"}
    waits = [sender.send_pending() for _ in range(1)]
    assert waits[0] >= 15  # slow: a config mistake is not cured by hammering
    assert len(spool.pending()) == 3
    assert spool.dead_letters == 0
    assert (
        "check url and token" in sender.state["last_error"]
        or str(status) in sender.state["last_error"]
    )
    # the operator fixes the token; the whole backlog arrives
    collector.token, collector.allowed_hosts = "secret-token", None
    sender.not_before = 0
    assert sender.send_pending() == 0
    assert stored_times(collector) == times


def test_auth_backoff_grows_to_its_cap(collector, make_cfg) -> None:
    cfg = make_cfg(collector.url, auth_backoff=300, retry_base=1)
    _spool, sender, _ = setup(cfg, batches=1)
    collector.token = "other"
    waits = []
    for _ in range(6):
        sender.not_before = 0
        waits.append(sender.send_pending())
    assert all(w <= 300 for w in waits)
    assert waits[-1] >= 150  # reached the cap (jitter takes at most half)
    assert waits[0] < waits[-1]


def test_413_splits_the_request_until_it_fits(make_cfg) -> None:
    with FakeCollector(limits=Limits(max_points=4)) as collector:
        cfg = make_cfg(collector.url)
        spool, sender, times = setup(cfg, batches=2, points=7)
        assert sender.send_pending() == 0
        assert spool.pending() == []
        assert spool.dead_letters == 0
        assert stored_times(collector) == times
        assert collector.duplicates == 0
        assert {p.status for p in collector.posts} == {202, 413}


def test_413_on_a_single_item_is_a_dead_letter(make_cfg) -> None:
    with FakeCollector(limits=Limits(max_body_bytes=100)) as collector:
        cfg = make_cfg(collector.url)
        spool, sender, _ = setup(cfg, batches=1, points=1)
        assert sender.send_pending() == 0
        assert spool.dead_letters == 1
        assert spool.pending() == []


def test_415_is_permanent(collector, make_cfg) -> None:
    cfg = make_cfg(collector.url)
    spool, sender, _ = setup(cfg, batches=1)
    collector.answer(415)
    assert sender.send_pending() == 0
    assert spool.dead_letters == 1


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_retryable_answers_keep_the_batch_with_exponential_backoff(
    collector, make_cfg, status
) -> None:
    cfg = make_cfg(collector.url, retry_base=1, max_backoff=1000)
    spool, sender, times = setup(cfg)
    collector.default = Answer(status)
    waits = []
    for _ in range(5):
        sender.not_before = 0
        waits.append(sender.send_pending())
    assert len(spool.pending()) == 3
    assert spool.dead_letters == 0
    for n, w in enumerate(waits):
        assert 2**n / 2 <= w <= 2**n  # doubling, with jitter
    collector.default = Answer(202)
    sender.not_before = 0
    assert sender.send_pending() == 0
    assert stored_times(collector) == times
    assert collector.duplicates == 0


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_retry_after_is_honoured(collector, make_cfg, form, framing) -> None:
    header = "120" if form == "seconds" else formatdate(time.time() + 121, usegmt=True)
    cfg = make_cfg(collector.url, read_timeout=5)
    spool, sender, _ = setup(cfg, batches=1)
    collector.answer(Answer(503, headers={"Retry-After": header}, **FRAMINGS[framing]))
    wait = sender.send_pending()
    assert 118 <= wait <= 133
    # within that time the sender does not post again, even at shutdown
    posts = len(collector.posts)
    assert sender.send_pending(urgent=True) > 100
    assert len(collector.posts) == posts
    # and a new process (cron's next `once`) respects it too
    again = Sender(cfg, spool)
    assert again.send_pending() > 100
    assert len(collector.posts) == posts


def test_a_retry_after_of_zero_still_backs_off(collector, make_cfg) -> None:
    cfg = make_cfg(collector.url, retry_base=1, max_backoff=1000)
    _, sender, _ = setup(cfg, batches=1)
    collector.answer(Answer(429, headers={"Retry-After": "0"}))
    assert sender.send_pending() >= 0.5  # no hammering a collector that sheds load


def test_connection_refused_keeps_everything(make_cfg) -> None:
    cfg = make_cfg(f"http://127.0.0.1:{closed_port()}")
    spool, sender, _ = setup(cfg)
    assert sender.send_pending() > 0
    assert len(spool.pending()) == 3
    assert sender.send_errors == 1
    assert "tcp" in sender.state["last_error"]


def test_a_collector_that_never_answers_times_out_and_the_batch_stays(collector, make_cfg) -> None:
    cfg = make_cfg(collector.url, read_timeout=0.3)
    spool, sender, times = setup(cfg)
    collector.answer("stall")
    assert sender.send_pending() > 0
    # the idle timeout ended it (the stalled collector would hold the request 60 s)
    assert sender.state["last_error"] == "http: no answer for 0.3s"
    assert len(spool.pending()) == 3
    sender.not_before = 0
    assert sender.send_pending() == 0
    assert stored_times(collector) == times


def test_stored_but_unanswered_then_resent_is_stored_once(collector, make_cfg) -> None:
    cfg = make_cfg(collector.url, read_timeout=0.3)
    _spool, sender, times = setup(cfg)
    collector.answer("store-stall")
    assert sender.send_pending() > 0
    sender.not_before = 0
    assert sender.send_pending() == 0
    assert stored_times(collector) == times
    assert collector.duplicates == len(times)  # the resend was byte-identical: deduped
    assert collector.conflicts == []


@pytest.mark.parametrize("framing", FRAMINGS)
def test_rejected_items_are_counted_and_never_resent(collector, make_cfg, framing) -> None:
    collector.default = Answer(202, **FRAMINGS[framing])
    cfg = make_cfg(collector.url, read_timeout=5)
    spool = Spool(cfg.spool_dir, 2**20, 2**20)
    sender = Sender(cfg, spool)
    now = int(time.time() * 1000)
    doc = batch(cfg, 2, now - 10_000)
    doc["points"].append(
        {"measurement": "cpu", "time": now - 30 * 3600 * 1000, "fields": {"user": 1.0}}
    )
    spool.put(encode(doc))
    assert sender.send_pending() == 0
    assert sender.rejected == 1
    assert len(collector.order) == 2
    assert spool.pending() == []
    assert len(collector.posts) == 1


def test_backlog_is_coalesced_into_capped_requests(collector, make_cfg) -> None:
    cfg = make_cfg(collector.url)
    _spool, sender, times = setup(cfg, batches=12, points=300)
    assert sender.send_pending() == 0
    assert all(p.points <= 1000 for p in collector.posts)
    assert len(collector.posts) == 4  # 3 batches of 300 per request
    assert stored_times(collector) == times


def test_a_shutdown_batch_ends_its_request(collector, make_cfg) -> None:
    cfg = make_cfg(collector.url)
    spool = Spool(cfg.spool_dir, 2**20, 2**20)
    now = int(time.time() * 1000) - 5000
    spool.put(encode(batch(cfg, 2, now)), now)
    spool.put(encode(batch(cfg, 2, now + 100, state="shutdown")), now + 100)
    spool.put(encode(batch(cfg, 2, now + 200)), now + 200)
    assert Sender(cfg, spool).send_pending() == 0
    assert [p.heartbeat["state"] for p in collector.posts] == ["shutdown", "alive"]


def test_corrupt_batches_are_quarantined_and_the_rest_delivered(collector, make_cfg) -> None:
    cfg = make_cfg(collector.url)
    spool, sender, times = setup(cfg, batches=3, points=2)
    victim = spool.pending()[1]
    path = Path(cfg.spool_dir) / victim.name
    path.write_bytes(path.read_bytes()[:20])  # truncated mid-write by a dying disk
    assert sender.send_pending() == 0
    assert spool.quarantined == 1
    assert (Path(cfg.spool_dir) / "quarantine" / victim.name).exists()
    assert stored_times(collector) == times[:2] + times[4:]


def test_stored_body_round_trips() -> None:
    cfg = SimpleNamespace(host="h", tags={"a": "b"}, send_interval=60)
    doc = batch(cfg, 3, 1_763_700_000_000)
    assert decode(encode(doc)) == doc
    assert encode(doc) == encode(doc)  # same batch, same bytes
    with pytest.raises(ValueError):
        decode(encode(doc)[:-3])


def test_a_bug_in_a_pass_is_logged_and_counted_not_raised(make_cfg, collector) -> None:
    cfg = make_cfg(collector.url)
    spool, _, _ = setup(cfg, batches=1)

    def broken(body: bytes) -> Any:
        raise RuntimeError("boom")

    sender = Sender(cfg, spool, post=broken)
    assert sender.send_pending() > 0
    assert sender.send_errors == 1
    assert len(spool.pending()) == 1
