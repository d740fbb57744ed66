"""The spool on real file systems: the cap, a read-only or full disk, leftovers of a crash."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fleetpulse_agent.deliver import Sender, encode, envelope
from fleetpulse_agent.spool import Spool


def body(n: int, size: int = 0) -> bytes:
    doc = envelope("h", {}, 60, "alive")
    doc["points"] = [{"measurement": "m", "time": 1_763_700_000_000 + n, "fields": {"v": n}}]
    if size:
        doc["points"][0]["fields"]["pad"] = os.urandom(size).hex()  # incompressible
    return encode(doc)


@contextlib.contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A small tmpfs of our own: a real full or read-only file system, not a mock."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); needs root with CAP_SYS_ADMIN"
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_batches_come_back_oldest_first_and_leave_no_temp_files(tmp_path) -> None:
    spool = Spool(str(tmp_path), 2**20, 2**20)
    for n in range(5):
        spool.put(body(n), 1_763_700_000_000 + n)
    names = [i.name for i in spool.pending()]
    assert names == sorted(names)
    assert len(names) == 5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    assert all((tmp_path / n).stat().st_mode & 0o777 == 0o600 for n in names)


def test_the_cap_drops_the_oldest_batches_and_counts_them(tmp_path, agent_log) -> None:
    one = len(body(0, 2000))
    spool = Spool(str(tmp_path), 5 * one, 2**20)
    for n in range(12):
        spool.put(body(n, 2000), 1_763_700_000_000 + n)
    kept = spool.pending()
    assert spool.dropped == 12 - len(kept)
    assert 4 <= len(kept) <= 5
    assert sum(i.size for i in kept) <= 5 * one
    # the newest survive
    assert [int(i.name[:16]) for i in kept] == [
        1_763_700_000_000 + n for n in range(12 - len(kept), 12)
    ]
    assert any("dropped the oldest batch" in m for _, m in agent_log)


def test_stale_temp_files_from_a_crash_are_removed_fresh_ones_kept(tmp_path) -> None:
    stale = tmp_path / ".tmp-0001763700000000-000001-1.json.gz"
    fresh = tmp_path / ".tmp-0001763700000001-000001-2.json.gz"
    stale.write_bytes(b"half a batch")
    fresh.write_bytes(b"being written by another process")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    spool = Spool(str(tmp_path), 2**20, 2**20)
    assert not stale.exists()
    assert fresh.exists()  # might be the event command, mid-write
    assert spool.pending() == []


def test_a_read_only_spool_falls_back_to_memory_and_still_delivers(
    tmp_path, collector, make_cfg, agent_log
) -> None:
    with tmpfs(tmp_path / "ro", "size=1m,ro") as ro:
        cfg = make_cfg(collector.url, spool_dir=str(ro / "spool"))
        spool = Spool(cfg.spool_dir, 2**20, 2**20)
        doc = envelope(cfg.host, cfg.tags, 60, "alive")
        doc["points"] = [
            {"measurement": "cpu", "time": int(time.time() * 1000), "fields": {"user": 1.5}}
        ]
        item = spool.put(encode(doc))
        assert item.body is not None  # held in memory
        assert spool.disk_error
        assert Sender(cfg, spool).send_pending() == 0
        assert len(collector.stored) == 1
        assert spool.pending() == []
        assert any("not usable" in m or "in memory" in m for _, m in agent_log)


def test_a_full_disk_falls_back_to_memory_and_recovers_when_space_returns(tmp_path) -> None:
    with tmpfs(tmp_path / "small", "size=64k") as small:
        filler = small / "filler"
        spool = Spool(str(small / "spool"), 2**20, 2**20)
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
        os.close(fd)
        for n in range(3):
            spool.put(body(n, 3000), 1_763_700_000_000 + n)
        assert len(spool.memory) >= 1
        assert "No space left" in spool.disk_error
        in_memory = len(spool.memory)
        filler.unlink()
        spool.put(body(9), 1_763_700_000_009)
        assert spool.disk_error == ""  # the disk takes writes again
        assert len(spool.memory) == in_memory  # and what waits in memory is still sent from there
        assert [int(i.name[:16]) for i in spool.pending()][-1] == 1_763_700_000_009
        assert len(spool.pending()) == 4


def test_the_memory_queue_is_bounded_too(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the spool directory should be")
    one = len(body(0, 1000))
    spool = Spool(str(blocker / "spool"), 2**20, 3 * one + 100)
    for n in range(10):
        spool.put(body(n, 1000), 1_763_700_000_000 + n)
    assert len(spool.memory) == 3
    assert spool.dropped == 7
    assert [int(i.name[:16]) for i in spool.pending()] == [
        1_763_700_000_007,
        1_763_700_000_008,
        1_763_700_000_009,
    ]


def test_a_413_split_keeps_the_batch_place_in_the_order(tmp_path) -> None:
    spool = Spool(str(tmp_path), 2**20, 2**20)
    for n in range(3):
        spool.put(body(n), 1_763_700_000_000 + n)
    middle = spool.pending()[1]
    halves = spool.replace(middle, [body(10), body(11)])
    names = [i.name for i in spool.pending()]
    assert names == sorted(names)
    assert names[1:3] == [h.name for h in halves]
    assert middle.name not in names


def test_a_dead_letter_keeps_the_reason_and_the_folder_is_bounded(tmp_path) -> None:
    spool = Spool(str(tmp_path), 2**20, 2**20)
    for n in range(105):
        spool.put(body(n), 1_763_700_000_000 + n)
    for item in spool.pending():
        spool.dead_letter(item, "400 nope")
    dead = sorted((tmp_path / "dead").glob("*.json.gz"))
    assert len(dead) == 100
    assert spool.dead_letters == 105
    assert (dead[0].parent / (dead[0].name + ".reason")).read_text() == "400 nope\n"
    assert spool.pending() == []
