"""Collection: rates from counter deltas on a scripted /proc, and the real /proc end to end."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fleetpulse_agent.aggregate import Aggregator
from fleetpulse_agent.collect import Collector, read
from fleetpulse_agent.deliver import envelope

from chalicelib.core.ingest import validate
from chalicelib.core.limits import Limits
from chalicelib.core.timestream import plan_writes

MEMINFO = "MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 250 kB\nSwapTotal: 400 kB\nSwapFree: 300 kB\n"
NET_HEAD = "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop\n"


class FakeProc:
    """A /proc and /sys laid out as files, so a test can move counters forward."""

    def __init__(self, root: Path) -> None:
        self.proc = root / "proc"
        self.sys = root / "sys"
        (self.sys / "block" / "vda").mkdir(parents=True)
        for d in ("net", "self", "sys/fs", "sys/kernel/random", "1", "2", "3"):
            (self.proc / d).mkdir(parents=True, exist_ok=True)
        self.write("meminfo", MEMINFO)
        self.write("loadavg", "0.50 0.25 0.10 2/345 999\n")
        self.write("uptime", "12345.67 100.0\n")
        self.write("sys/fs/file-nr", "1024 0 9223372036854775807\n")
        self.write("sys/kernel/random/boot_id", "boot-1\n")
        self.write("1/stat", "1 (systemd) S 0 1\n")
        self.write("2/stat", "2 (my (odd) name) R 1 2\n")
        self.write("3/stat", "3 (zombie) Z 1 3\n")
        self.write("filesystems", "nodev\tsysfs\nnodev\ttmpfs\n\text4\n\tsquashfs\nnodev\tzfs\n")
        self.write(
            "self/mounts",
            "/dev/vda1 / ext4 rw 0 0\n"
            "tmpfs /run tmpfs rw 0 0\n"
            "/dev/loop0 /snap/core squashfs ro 0 0\n"
            "/dev/vda1 /mnt/bind ext4 rw 0 0\n",
        )
        self.write(
            "net/tcp",
            "  sl  local_address rem_address   st\n   0: 0100007F:0277 00000000:0000 0A 0\n   1: 0100007F:0277 0100007F:9999 01 0\n",
        )
        self.write(
            "net/tcp6",
            "  sl  local_address rem_address   st\n   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 0\n",
        )
        self.tick(cpu=(0, 0, 0, 0, 0, 0, 0, 0), net=(0, 0, 0, 0, 0, 0, 0, 0), disk=(0, 0, 0, 0, 0))

    def write(self, name: str, text: str) -> None:
        (self.proc / name).write_text(text)

    def tick(self, cpu: tuple[int, ...], net: tuple[int, ...], disk: tuple[int, ...]) -> None:
        self.write(
            "stat",
            "cpu  " + " ".join(map(str, cpu)) + " 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\nprocs_running 2\n",
        )
        rxb, rxp, rxe, rxd, txb, txp, txe, txd = net
        self.write(
            "net/dev",
            NET_HEAD
            + "    lo: 999 9 0 0 0 0 0 0 999 9 0 0 0 0 0 0\n"
            + f"  eth0: {rxb} {rxp} {rxe} {rxd} 0 0 0 0 {txb} {txp} {txe} {txd} 0 0 0 0\n",
        )
        reads, rsect, writes, wsect, busy = disk
        self.write(
            "diskstats",
            f" 253 0 vda {reads} 0 {rsect} 0 {writes} 0 {wsect} 0 0 {busy} 0 0 0 0 0\n"
            f" 253 1 vda1 {reads} 0 {rsect} 0 {writes} 0 {wsect} 0 0 {busy} 0 0 0 0 0\n"
            " 7 0 loop0 5 0 10 0 0 0 0 0 0 1 0 0 0 0 0\n",
        )


def by_measurement(
    samples: list[tuple[str, dict[str, str], dict[str, object]]],
) -> dict[str, list[tuple[dict[str, str], dict[str, object]]]]:
    out: dict[str, list[tuple[dict[str, str], dict[str, object]]]] = {}
    for m, tags, fields in samples:
        out.setdefault(m, []).append((tags, fields))
    return out


@pytest.fixture
def fake(tmp_path: Path) -> FakeProc:
    return FakeProc(tmp_path)


def test_rates_come_from_counter_deltas_over_elapsed_time(fake) -> None:
    now = [100.0]
    c = Collector(str(fake.proc), clock=lambda: now[0], sys=str(fake.sys))
    first = by_measurement(c.sample())
    assert not {"cpu", "net", "diskio"} & set(first)  # nothing to diff yet
    now[0] = 110.0
    fake.tick(
        cpu=(500, 100, 200, 800, 200, 50, 50, 100),  # 2000 ticks
        net=(10_000, 100, 2, 3, 20_000, 200, 0, 1),
        disk=(40, 800, 10, 200, 2500),
    )
    s = by_measurement(c.sample())
    cpu = s["cpu"][0][1]
    assert cpu == {"user": 30.0, "system": 15.0, "iowait": 10.0, "steal": 5.0, "idle": 40.0}
    [(tags, net)] = s["net"]  # lo skipped
    assert tags == {"interface": "eth0"}
    assert net["rx_bytes_per_s"] == 1000.0
    assert net["tx_packets_per_s"] == 20.0
    assert (net["rx_errors"], net["rx_drops"], net["tx_drops"]) == (2, 3, 1)
    [(tags, io)] = s["diskio"]  # the partition and the loop device skipped
    assert tags == {"device": "vda"}
    assert io["read_bytes_per_s"] == 800 * 512 / 10
    assert io["writes_per_s"] == 1.0
    assert io["util_percent"] == 25.0


def test_a_counter_that_goes_backwards_is_skipped_once(fake) -> None:
    now = [0.0]
    c = Collector(str(fake.proc), clock=lambda: now[0], sys=str(fake.sys))
    fake.tick(cpu=(100,) * 8, net=(5000,) * 8, disk=(5, 5, 5, 5, 5))
    c.sample()
    now[0] = 10.0
    fake.tick(cpu=(200,) * 8, net=(10,) * 8, disk=(6, 6, 6, 6, 6))  # the interface was re-created
    s = by_measurement(c.sample())
    assert "net" not in s
    assert "cpu" in s


def test_memory_processes_system_and_tcp(fake) -> None:
    c = Collector(str(fake.proc), sys=str(fake.sys))
    s = by_measurement(c.sample())
    assert s["memory"][0][1] == {
        "total_bytes": 1024000,
        "available_bytes": 256000,
        "used_bytes": 768000,
        "used_percent": 75.0,
    }
    assert s["swap"][0][1]["used_percent"] == 25.0
    assert s["processes"][0][1] == {
        "total": 3,
        "running": 1,
        "blocked": 0,
        "zombie": 1,
        "threads": 345,
    }
    system = s["system"][0][1]
    assert (system["load1"], system["uptime_s"], system["file_handles"]) == (0.5, 12345, 1024)
    tcp = s["tcp"][0][1]
    assert (tcp["listen"], tcp["established"], tcp["time_wait"]) == (2, 1, 0)


def test_no_swap_and_an_interface_that_never_carried_a_packet_send_nothing(fake) -> None:
    fake.write("meminfo", MEMINFO.replace("SwapTotal: 400 kB\nSwapFree: 300 kB", "SwapTotal: 0 kB"))
    now = [0.0]
    c = Collector(str(fake.proc), clock=lambda: now[0], sys=str(fake.sys))
    c.sample()
    now[0] = 10.0
    fake.tick(cpu=(1,) * 8, net=(0,) * 8, disk=(1, 1, 1, 1, 1))
    s = by_measurement(c.sample())
    assert "memory" in s
    assert "swap" not in s  # none configured: zeros every minute would tell nothing
    assert "net" not in s  # eth0 is down or unused
    now[0] = 20.0
    fake.tick(cpu=(2,) * 8, net=(0, 0, 0, 0, 60, 1, 0, 0), disk=(1, 1, 1, 1, 1))
    s = by_measurement(c.sample())
    assert [tags for tags, _ in s["net"]] == [{"interface": "eth0"}]  # one packet sent


def test_disk_usage_covers_real_file_systems_once_each(fake) -> None:
    s = by_measurement(Collector(str(fake.proc), sys=str(fake.sys)).sample())
    assert [tags["mount"] for tags, _ in s["disk"]] == [
        "/"
    ]  # no tmpfs, no snap image, no bind mount twice
    tags, fields = s["disk"][0]
    assert tags == {"mount": "/", "device": "/dev/vda1", "fstype": "ext4"}
    assert 0 <= fields["used_percent"] <= 100


def test_a_missing_file_costs_only_its_reader(fake, agent_log) -> None:
    (fake.proc / "net" / "dev").unlink()
    c = Collector(str(fake.proc), sys=str(fake.sys))
    c.sample()
    s = by_measurement(c.sample())
    assert "memory" in s
    assert "net" not in s
    assert c.errors == 2
    assert len([m for _, m in agent_log if "cannot collect network" in m]) == 1  # said once


def test_real_proc_points_pass_the_collector_and_fit_a_timestream_record() -> None:
    c = Collector()
    agg = Aggregator()
    for _ in range(3):
        now_ms = int(time.time() * 1000)
        for m, tags, fields in c.sample():
            agg.add(m, tags, fields, now_ms)
        time.sleep(0.05)
    points = agg.flush()
    measurements = {p["measurement"] for p in points}
    assert {"cpu", "memory", "system", "processes", "disk", "tcp"} <= measurements
    swap_kb = int(read("/proc/meminfo").split(b"SwapTotal:")[1].split()[0])
    assert ("swap" in measurements) == (swap_kb > 0)
    assert c.errors == 0
    doc = envelope("test-host", {"role": "test"}, 60, "alive")
    doc["points"] = points
    parsed = validate(doc, Limits(), int(time.time() * 1000))
    assert parsed.rejected == []
    assert plan_writes(parsed.reports).rejected == []
    assert max(len(p["fields"]) for p in points) <= 40
