"""Processes by group, and the services they are (process-exporter's way: /proc, cheaply).

Once per send interval: one read of /proc/<pid>/stat per process gives each
group (processes with the same executable name) its count, CPU, resident
memory and threads; open file descriptors are counted only for the groups
sent: the top `top` by CPU (of those that used any), the top `top` by memory,
and every service. Kernel threads (PF_KTHREAD: kworker/*, kthreadd...) run no
program and are no group.

A group whose name is a known server (nginx, postgres, redis-server...) is a
service: while it runs, an `ok` event with a ttl; when its processes vanish, a
critical event ("redis-server is gone"), unless systemd says its unit was
stopped on purpose, in which case one last `ok` without a ttl retires it
quietly. Listening ports come from /proc/net/tcp and tcp6, matched to the
service's sockets; the probes (probes.py) use them.
"""

from __future__ import annotations

import os
import re
import threading
import time

from fleetpulse_agent.log import log
from fleetpulse_agent.probes import probe

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations stay strings at run time (PEP 563): typing is never loaded
    from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

# process name (/proc/<pid>/comm) -> service name
SERVICES = {
    "nginx": "nginx",
    "postgres": "postgres",
    "postmaster": "postgres",
    "mysqld": "mysqld",
    "mariadbd": "mariadbd",
    "redis-server": "redis-server",
    "memcached": "memcached",
    "haproxy": "haproxy",
    "sshd": "sshd",
    "dockerd": "dockerd",
    "containerd": "containerd",
}
# The units Debian and Amazon Linux name them, for a process outside a unit's cgroup.
SERVICE_UNITS = {
    "postgres": ("postgresql",),
    "mysqld": ("mysql", "mysqld"),
    "mariadbd": ("mariadb",),
    "redis-server": ("redis-server", "redis"),
    "sshd": ("ssh", "sshd"),
    "dockerd": ("docker",),
}
PF_KTHREAD = 0x00200000  # /proc/<pid>/stat flags: a kernel thread (kworker/*, kthreadd...)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
_LISTEN_RE = re.compile(rb"^\s*\d+: [0-9A-F]+:([0-9A-F]{4}) \S+ 0A(?:\s+\S+){5}\s+(\d+)", re.M)
_UNIT_RE = re.compile(r"/([^/]+\.service)(?:/|$)", re.M)


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class Group:
    __slots__ = ("name", "pids", "rss", "threads", "ticks")

    def __init__(self, name: str) -> None:
        self.name = name
        self.pids: List[int] = []
        self.ticks = 0  # CPU ticks used since the last reading, by processes seen both times
        self.rss = 0
        self.threads = 0


class Service:
    __slots__ = ("gone", "name", "pids", "ports", "unit")

    def __init__(self, name: str) -> None:
        self.name = name
        self.unit = ""
        self.ports: List[int] = []
        self.pids: List[int] = []
        self.gone = False


class Processes:
    """Reads process groups and services; `collect` once per send interval."""

    def __init__(
        self,
        proc: str = "/proc",
        top: int = 10,
        ttl: float = 180,
        systemctl: str = "systemctl",
        pids: Optional[Callable[[], Iterable[int]]] = None,
    ) -> None:
        self.proc = proc
        self.top = top
        self.ttl_ms = int(ttl * 1000)
        self.systemctl = systemctl
        self.list_pids = pids or self._all_pids  # tests watch only the processes they started
        self.skip_flags = PF_KTHREAD  # bench/agent_payload.py sets 0 to count kernel threads in
        self.prev: Dict[Tuple[int, int], int] = {}  # (pid, start time) -> CPU ticks
        self.prev_at: Optional[float] = None
        self.services: Dict[str, Service] = {}
        self.probe_failures: Dict[str, str] = {}
        self.nginx_url = ""  # nginx's stub_status URL; empty: found in its configuration
        self.every = 60.0
        self.thread: Optional[threading.Thread] = None
        self.lock = threading.Lock()
        self.ready: List[Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]] = []
        self.errors = 0

    @classmethod
    def of(cls, cfg: Any) -> Processes:
        """The watcher the agent's settings ask for: once per send interval, service
        events living 3 send intervals."""
        w = cls(top=cfg.process_top, ttl=3 * cfg.send_interval, systemctl=cfg.systemctl)
        w.nginx_url = cfg.nginx_status_url
        w.every = cfg.send_interval
        return w

    # -- in the agent: a thread of its own, so a slow probe never delays a sample

    def start(self, stopping: threading.Event) -> None:
        """Watch once per `every` seconds in a daemon thread until `stopping` is set."""

        def loop() -> None:
            while not stopping.is_set():
                self.watch()
                stopping.wait(self.every)

        self.thread = threading.Thread(target=loop, name="processes", daemon=True)
        self.thread.start()

    def watch(self) -> None:
        points: List[Dict[str, Any]] = []
        events = self.interval(time.monotonic(), int(time.time() * 1000), points)
        with self.lock:
            self.ready.append((points, events))

    def take(self, points: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """What the watcher found since the last call: points added to `points`, events
        returned. Without the thread (`once`), one watch now."""
        if self.thread is None:
            self.watch()
        with self.lock:
            ready, self.ready = self.ready, []
        events = []
        for found, said in ready:
            points += found
            events += said
        return events

    def _all_pids(self) -> List[int]:
        return [int(n) for n in os.listdir(self.proc) if n.isdigit()]

    def groups(self) -> Dict[str, Group]:
        """Every process group now; CPU ticks relative to the previous call."""
        groups: Dict[str, Group] = {}
        ticks_now: Dict[Tuple[int, int], int] = {}
        for pid in self.list_pids():
            try:
                data = read("%s/%d/stat" % (self.proc, pid))
            except OSError:  # it ended while we looked
                continue
            close = data.rfind(b")")
            name = data[data.find(b"(") + 1 : close].decode(errors="replace")
            f = data[close + 2 :].split()
            if len(f) < 22 or f[0] == b"Z" or int(f[6]) & self.skip_flags:
                continue  # a zombie holds no memory and runs nothing; a kernel thread is no program
            key = (pid, int(f[19]))
            ticks = int(f[11]) + int(f[12])
            ticks_now[key] = ticks
            g = groups.get(name)
            if g is None:
                g = groups[name] = Group(name)
            g.pids.append(pid)
            g.threads += int(f[17])
            g.rss += int(f[21]) * PAGE
            if key in self.prev:
                g.ticks += max(0, ticks - self.prev[key])
        self.prev = ticks_now
        return groups

    def fds(self, pids: List[int]) -> Optional[int]:
        n, seen = 0, False
        for pid in pids:
            try:
                n += len(os.listdir("%s/%d/fd" % (self.proc, pid)))
                seen = True
            except OSError:  # another user's process (the agent is not root), or gone
                continue
        return n if seen else None

    def listening(self) -> Dict[int, int]:
        """socket inode -> TCP port, for every listening socket."""
        found: Dict[int, int] = {}
        for name in ("net/tcp", "net/tcp6"):
            try:
                data = read("%s/%s" % (self.proc, name))
            except OSError:
                continue
            for port, inode in _LISTEN_RE.findall(data):
                found[int(inode)] = int(port, 16)
        return found

    def ports(self, pids: List[int], listening: Dict[int, int]) -> List[int]:
        ports: Set[int] = set()
        for pid in pids:
            fd_dir = "%s/%d/fd" % (self.proc, pid)
            try:
                names = os.listdir(fd_dir)
            except OSError:
                continue
            for fd in names:
                try:
                    link = os.readlink(fd_dir + "/" + fd)
                except OSError:
                    continue
                if link.startswith("socket:["):
                    port = listening.get(int(link[8:-1]))
                    if port:
                        ports.add(port)
        return sorted(ports)

    def unit_of(self, pids: List[int]) -> str:
        for pid in pids:
            try:
                m = _UNIT_RE.search(read("%s/%d/cgroup" % (self.proc, pid)).decode())
            except (OSError, UnicodeDecodeError):
                continue
            if m:
                return m.group(1)
        return ""

    def stopped_on_purpose(self, service: Service) -> Optional[str]:
        """What systemd says when it stopped the service's unit cleanly; None otherwise
        (failed, restarting, no unit, no systemd)."""
        import subprocess  # only when a service vanished: it costs memory

        units = [service.unit] if service.unit else []
        units += [u + ".service" for u in SERVICE_UNITS.get(service.name, (service.name,))]
        for unit in units:
            try:
                out = subprocess.run(
                    [self.systemctl, "show", "--property=LoadState,ActiveState,Result", unit],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    timeout=5,
                    check=False,
                ).stdout.decode(errors="replace")
            except (OSError, subprocess.SubprocessError):
                return None  # no systemd here: a vanished service is a vanished service
            state = dict(line.partition("=")[::2] for line in out.splitlines())
            if state.get("LoadState") != "loaded":
                continue
            if state.get("ActiveState") == "inactive" and state.get("Result") == "success":
                return "stopped on purpose (systemd unit %s is inactive)" % unit
            return None
        return None

    def collect(
        self, now: float, now_ms: int
    ) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]], Dict[str, Service]]:
        """The interval's `process` points and service events, and the running services."""
        groups = self.groups()
        elapsed = now - self.prev_at if self.prev_at is not None else 0.0
        self.prev_at = now
        # A group that used no CPU is nobody's top CPU user (every group, at the first reading).
        by_cpu = sorted((g for g in groups.values() if g.ticks), key=lambda g: -g.ticks)[: self.top]
        by_rss = sorted(groups.values(), key=lambda g: -g.rss)[: self.top]
        running = {SERVICES[n]: g for n, g in groups.items() if n in SERVICES}
        chosen = {g.name: g for g in by_cpu + by_rss + list(running.values())}
        points = []
        for g in chosen.values():
            fields: Dict[str, Any] = {"count": len(g.pids), "rss_bytes": g.rss}
            fields["threads"] = g.threads
            if elapsed > 0:
                fields["cpu_percent"] = round(100.0 * g.ticks / CLK_TCK / elapsed, 3)
            fds = self.fds(g.pids)
            if fds is not None:
                fields["open_fds"] = fds
            points.append(
                {
                    "measurement": "process",
                    "time": now_ms,
                    "tags": {"name": g.name},
                    "fields": fields,
                }
            )
        events = []
        listening = self.listening() if running else {}
        for name, g in running.items():
            s = self.services.get(name)
            if s is None:
                s = self.services[name] = Service(name)
                log.info("service discovered: %s (%d processes)", name, len(g.pids))
            s.gone = False
            if s.pids != g.pids or not s.ports:  # new processes, or not listening yet
                s.unit = self.unit_of(g.pids) or s.unit
                s.ports = self.ports(g.pids, listening)
            s.pids = g.pids
            text = "%d processes" % len(g.pids)
            if s.ports:
                text += ", listening on " + ", ".join(str(p) for p in s.ports)
            events.append(self.event(name, "ok", text, now_ms, self.ttl_ms))
        for name in [n for n in self.services if n not in running]:
            s = self.services[name]
            quiet = self.stopped_on_purpose(s)
            if quiet:
                log.info("service %s: %s", name, quiet)
                events.append(self.event(name, "ok", quiet, now_ms, None))
                del self.services[name]
                continue
            if not s.gone:
                log.info("service %s is gone", name)
            s.gone = True
            events.append(self.event(name, "critical", name + " is gone", now_ms, None))
        return points, events, {n: s for n, s in self.services.items() if not s.gone}

    def interval(
        self, now: float, now_ms: int, points: List[Dict[str, Any]]
    ) -> List[Dict[str, Any]]:
        """`collect` (points added to `points`), then each running service probed: its
        numbers as points of their own measurement (`redis`, `memcached`, `nginx`), a
        failure as the reason on its event. Returns the events; never raises."""
        try:
            found, events, running = self.collect(now, now_ms)
        except Exception as exc:  # the host's own points go out whatever happens here
            self.errors += 1
            log.exception("process metrics lost: %s", exc)
            return []
        points += found
        for event in events:
            s = running.get(event["service"])
            if s is None:
                continue
            measurement, fields, failure = probe(s.name, s.ports, s.pids, self.nginx_url, self.proc)
            if measurement and fields:
                tags = {"port": str(s.ports[0])} if s.ports else {}
                points.append(
                    {"measurement": measurement, "time": now_ms, "tags": tags, "fields": fields}
                )
            if failure:
                event["description"] += "; " + failure
                if self.probe_failures.get(s.name) != failure:
                    log.info("%s", failure)
            self.probe_failures[s.name] = failure or ""
        return events

    @staticmethod
    def event(
        service: str, status: str, text: str, now_ms: int, ttl_ms: Optional[int]
    ) -> Dict[str, Any]:
        e = {"service": service, "status": status, "description": text, "time": now_ms}
        if ttl_ms:
            e["ttl"] = ttl_ms
        return e
