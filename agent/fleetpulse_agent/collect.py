"""Host samples from /proc and os (Linux).

`Collector.sample()` returns `(measurement, tags, fields)` triples. Counters
(CPU ticks, bytes, packets) become per-second rates or per-sample counts from
the delta with the previous sample, so the first sample of a counter gives
nothing. Each reader fails on its own: one broken file costs its measurement,
never the others.
"""

from __future__ import annotations

import os
import re
import time

from fleetpulse_agent.log import log

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations stay strings at run time (PEP 563): typing is never loaded
    from typing import Any, Callable, Dict, List, Optional, Tuple

    Sample = Tuple[str, Dict[str, str], Dict[str, Any]]

# How each field is summarised over a send interval (see aggregate.py).
GAUGE, AVG, CONST, SUM = "gauge", "avg", "const", "sum"
KINDS = {
    "total_bytes": CONST,
    "swap_total_bytes": CONST,
    "uptime_s": CONST,
    "n_cpus": CONST,
    "file_handles_max": CONST,
    "rx_errors": SUM,
    "tx_errors": SUM,
    "rx_drops": SUM,
    "tx_drops": SUM,
    # Already averages over minutes: their swing within one interval is noise.
    "load5": AVG,
    "load15": AVG,
    # The agent's own footprint: its average is what it costs the host.
    "rss_bytes": AVG,
    "cpu_percent": AVG,
}
TCP_STATES = {
    "01": "established",
    "02": "syn_sent",
    "03": "syn_recv",
    "04": "fin_wait1",
    "05": "fin_wait2",
    "06": "time_wait",
    "07": "close",
    "08": "close_wait",
    "09": "last_ack",
    "0A": "listen",
    "0B": "closing",
}
# The states worth their min and max; the rest are sent as the interval's average only,
# which keeps the tcp record well inside the store's 2 KB.
for _tcp in TCP_STATES.values():
    KINDS[_tcp] = GAUGE if _tcp in ("established", "time_wait", "close_wait", "listen") else AVG
# File systems with a block device that are still not worth watching: snap and
# live-CD images are read-only and always 100% full.
SKIP_FS = ("squashfs", "iso9660", "udf")
SKIP_NET = ("lo", "veth")
SKIP_DISK = ("loop", "ram", "fd", "sr")
_TCP_STATE_RE = re.compile(rb"^\s*\d+: \S+ \S+ ([0-9A-F]{2})", re.M)
PAGE = os.sysconf("SC_PAGE_SIZE")
SECTOR = 512  # /proc/diskstats counts 512-byte sectors whatever the device's own size


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class Collector:
    """Reads the host's state; keeps the previous counters to turn them into rates."""

    def __init__(
        self, proc: str = "/proc", clock: Callable[[], float] = time.monotonic, sys: str = "/sys"
    ) -> None:
        self.proc = proc
        self.sys = sys
        self.clock = clock
        self.prev: Dict[str, Any] = {}
        self.failed: set = set()
        self.errors = 0
        self.readers = [
            self.cpu,
            self.memory,
            self.system,
            self.processes,
            self.disk_usage,
            self.disk_io,
            self.network,
            self.tcp,
            self.own,
        ]

    def sample(self) -> List[Sample]:
        """One reading of everything that can be read now; never raises."""
        now = self.clock()
        out: List[Sample] = []
        for reader in self.readers:
            try:
                reader(now, out)
                self.failed.discard(reader.__name__)
            except Exception as exc:  # one unreadable file must not stop the others
                self.errors += 1
                if reader.__name__ not in self.failed:
                    self.failed.add(reader.__name__)
                    log.warning("cannot collect %s: %s", reader.__name__, exc)
        return out

    def _delta(self, key: str, now: float, values: Tuple[int, ...]) -> Optional[Tuple[float, list]]:
        """Elapsed seconds and per-value increases since the last call with `key`."""
        prev = self.prev.get(key)
        self.prev[key] = (now, values)
        if prev is None or now <= prev[0] or len(prev[1]) != len(values):
            return None
        deltas = [a - b for a, b in zip(values, prev[1])]
        if any(d < 0 for d in deltas):  # counter reset (device re-added, wrap): skip once
            return None
        return now - prev[0], deltas

    def own(self, now: float, out: List[Sample]) -> None:
        """The agent's own footprint: resident memory, and CPU as a share of one core."""
        fields: Dict[str, Any] = {"rss_bytes": int(read("/proc/self/statm").split()[1]) * PAGE}
        t = os.times()
        d = self._delta("own", now, (round((t.user + t.system) * 1000),))
        if d is not None:
            fields["cpu_percent"] = d[1][0] / 10.0 / d[0]  # ms per s, as a percentage
        out.append(("fleetpulse_agent", {}, fields))

    def p(self, name: str) -> str:
        return os.path.join(self.proc, name)

    # -- readers: each appends its samples to `out`

    def cpu(self, now: float, out: List[Sample]) -> None:
        for line in read(self.p("stat")).splitlines():
            if line.startswith(b"cpu "):
                ticks = tuple(int(x) for x in line.split()[1:9])
                break
        else:
            raise ValueError("no cpu line in stat")
        d = self._delta("cpu", now, ticks)
        if d is None:
            return
        user, nice, system, idle, iowait, irq, softirq, steal = d[1]
        total = float(sum(d[1])) or 1.0
        out.append(
            (
                "cpu",
                {"cpu": "total"},
                {
                    "user": 100.0 * (user + nice) / total,
                    "system": 100.0 * (system + irq + softirq) / total,
                    "iowait": 100.0 * iowait / total,
                    "steal": 100.0 * steal / total,
                    "idle": 100.0 * idle / total,
                },
            )
        )

    def memory(self, now: float, out: List[Sample]) -> None:
        info = {}
        for line in read(self.p("meminfo")).splitlines():
            name, _, rest = line.partition(b":")
            parts = rest.split()
            if parts:
                info[name] = int(parts[0]) * 1024
        total = info[b"MemTotal"]
        available = info.get(b"MemAvailable")
        if available is None:  # kernels before 3.14
            available = info[b"MemFree"] + info.get(b"Buffers", 0) + info.get(b"Cached", 0)
        used = total - available
        out.append(
            (
                "memory",
                {},
                {
                    "total_bytes": total,
                    "available_bytes": available,
                    "used_bytes": used,
                    "used_percent": 100.0 * used / total if total else 0.0,
                },
            )
        )
        swap_total = info.get(b"SwapTotal", 0)
        if not swap_total:
            return  # no swap configured: nothing to watch
        swap_used = swap_total - info.get(b"SwapFree", 0)
        out.append(
            (
                "swap",
                {},
                {
                    "total_bytes": swap_total,
                    "used_bytes": swap_used,
                    "used_percent": 100.0 * swap_used / swap_total,
                },
            )
        )

    def system(self, now: float, out: List[Sample]) -> None:
        load = read(self.p("loadavg")).split()
        fields: Dict[str, Any] = {
            "load1": float(load[0]),
            "load5": float(load[1]),
            "load15": float(load[2]),
            "uptime_s": int(float(read(self.p("uptime")).split()[0])),
            "n_cpus": os.cpu_count() or 1,
        }
        try:
            allocated, unused, maximum = read(self.p("sys/fs/file-nr")).split()[:3]
            fields["file_handles"] = int(allocated) - int(unused)
            fields["file_handles_max"] = int(maximum)
        except (OSError, ValueError):
            pass
        out.append(("system", {}, fields))

    def processes(self, now: float, out: List[Sample]) -> None:
        states = {"R": 0, "D": 0, "Z": 0}
        total = 0
        for name in os.listdir(self.proc):
            if not name.isdigit():
                continue
            try:
                data = read(os.path.join(self.proc, name, "stat"))
            except OSError:  # the process ended while we looked
                continue
            total += 1
            state = data[data.rfind(b")") + 2 : data.rfind(b")") + 3].decode()
            if state in states:
                states[state] += 1
        threads = read(self.p("loadavg")).split()[3].partition(b"/")[2]
        out.append(
            (
                "processes",
                {},
                {
                    "total": total,
                    "running": states["R"],
                    "blocked": states["D"],
                    "zombie": states["Z"],
                    "threads": int(threads),
                },
            )
        )

    def mounts(self) -> List[Tuple[str, str, str]]:
        """Real mounted file systems as (device, mount point, type), one per device."""
        nodev = set()
        for line in read(self.p("filesystems")).decode().splitlines():
            if line.startswith("nodev"):
                nodev.add(line.split()[-1])
        nodev.discard("zfs")  # ZFS datasets have no block device but hold real data
        seen = set()
        found = []
        for line in read(self.p("self/mounts")).decode(errors="replace").splitlines():
            parts = line.split()
            if len(parts) < 3:
                continue
            device, mount, fstype = parts[0], _unescape(parts[1]), parts[2]
            if fstype in nodev or fstype in SKIP_FS or device in seen:
                continue
            seen.add(device)
            found.append((device, mount, fstype))
        return found

    def disk_usage(self, now: float, out: List[Sample]) -> None:
        for device, mount, fstype in self.mounts():
            try:
                st = os.statvfs(mount)
            except OSError:
                continue
            if not st.f_blocks:
                continue
            used = (st.f_blocks - st.f_bfree) * st.f_frsize
            avail = st.f_bavail * st.f_frsize
            fields = {
                "total_bytes": st.f_blocks * st.f_frsize,
                "used_bytes": used,
                "used_percent": 100.0 * used / (used + avail) if used + avail else 0.0,
            }
            if st.f_files:
                fields["inodes_used_percent"] = 100.0 * (st.f_files - st.f_ffree) / st.f_files
            tags = {"mount": mount[:256], "device": device[:256], "fstype": fstype[:256]}
            out.append(("disk", tags, fields))

    def disk_io(self, now: float, out: List[Sample]) -> None:
        try:
            whole = set(os.listdir(os.path.join(self.sys, "block")))
        except OSError:
            whole = None
        for line in read(self.p("diskstats")).splitlines():
            parts = line.split()
            if len(parts) < 14:
                continue
            name = parts[2].decode()
            if name.startswith(SKIP_DISK) or (whole is not None and name not in whole):
                continue  # partitions repeat their disk's counts
            reads, rsect, writes, wsect, busy_ms = (
                int(parts[3]),
                int(parts[5]),
                int(parts[7]),
                int(parts[9]),
                int(parts[12]),
            )
            d = self._delta("disk:" + name, now, (reads, rsect, writes, wsect, busy_ms))
            if d is None or not (reads or writes):
                continue
            s, (dr, drs, dw, dws, dbusy) = d
            out.append(
                (
                    "diskio",
                    {"device": name},
                    {
                        "read_bytes_per_s": drs * SECTOR / s,
                        "write_bytes_per_s": dws * SECTOR / s,
                        "reads_per_s": dr / s,
                        "writes_per_s": dw / s,
                        "util_percent": min(100.0, dbusy / (10.0 * s)),
                    },
                )
            )

    def network(self, now: float, out: List[Sample]) -> None:
        for line in read(self.p("net/dev")).decode().splitlines()[2:]:
            name, _, rest = line.partition(":")
            name = name.strip()
            if not name or name.startswith(SKIP_NET):
                continue
            v = rest.split()
            counters = tuple(int(v[i]) for i in (0, 1, 2, 3, 8, 9, 10, 11))
            d = self._delta("net:" + name, now, counters)
            if d is None or not (counters[1] or counters[5]):
                continue  # no packet either way since boot: down or unused
            s, (rxb, rxp, rxe, rxd, txb, txp, txe, txd) = d
            out.append(
                (
                    "net",
                    {"interface": name},
                    {
                        "rx_bytes_per_s": rxb / s,
                        "tx_bytes_per_s": txb / s,
                        "rx_packets_per_s": rxp / s,
                        "tx_packets_per_s": txp / s,
                        "rx_errors": rxe,
                        "tx_errors": txe,
                        "rx_drops": rxd,
                        "tx_drops": txd,
                    },
                )
            )

    def tcp(self, now: float, out: List[Sample]) -> None:
        counts = dict.fromkeys(TCP_STATES.values(), 0)
        for name in ("net/tcp", "net/tcp6"):
            try:
                data = read(self.p(name))
            except OSError:
                continue
            for code in _TCP_STATE_RE.findall(data):
                state = TCP_STATES.get(code.decode())
                if state:
                    counts[state] += 1
        out.append(("tcp", {}, counts))


def _unescape(path: str) -> str:
    # /proc/mounts writes space, tab, newline and backslash as octal escapes
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)
