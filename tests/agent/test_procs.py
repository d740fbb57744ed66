"""Process groups on a scripted /proc: kernel threads are no group, idle groups no top CPU user."""

from __future__ import annotations

from pathlib import Path

from fleetpulse_agent.procs import PAGE, Processes

# /proc/<pid>/stat flags as a kernel writes them: kthreadd and a kworker carry PF_KTHREAD.
USER = 0x400100
KTHREADD = 0x208040
KWORKER = 0x4208060


class FakeProc:
    """A /proc holding only /proc/<pid>/stat files, so a test can move CPU time forward."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: dict[int, list] = {}

    def add(self, pid: int, comm: str, flags: int, ppid: int = 1, rss_pages: int = 0) -> None:
        self.procs[pid] = [comm, flags, ppid, rss_pages, 0]
        self.write(pid)

    def run(self, pid: int, ticks: int) -> None:
        self.procs[pid][4] += ticks
        self.write(pid)

    def write(self, pid: int) -> None:
        comm, flags, ppid, rss, utime = self.procs[pid]
        # state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
        # cutime cstime priority nice threads itrealvalue starttime vsize rss
        fields = f"S {ppid} {pid} {pid} 0 -1 {flags} 0 0 0 0 {utime} 0 0 0 20 0 1 0 {pid} 0 {rss}"
        (self.root / str(pid)).mkdir(exist_ok=True)
        (self.root / str(pid) / "stat").write_text(f"{pid} ({comm}) {fields} 0 0\n")


def machine(root: Path) -> FakeProc:
    fake = FakeProc(root)
    fake.add(1, "systemd", USER, ppid=0, rss_pages=4000)
    fake.add(2, "kthreadd", KTHREADD, ppid=0)
    fake.add(3, "kworker/R-rcu_gp", KWORKER, ppid=2)
    fake.add(4, "pool_workqueue_release", KWORKER, ppid=2)
    fake.add(5, "kworker/0:1-events", KWORKER, ppid=2)
    fake.add(100, "cron", USER, rss_pages=500)
    fake.add(200, "python3", USER, ppid=100, rss_pages=2000)
    fake.add(201, "python3", USER, ppid=100, rss_pages=1000)
    return fake


def names(points: list[dict]) -> dict[str, dict]:
    return {p["tags"]["name"]: p["fields"] for p in points}


def test_kernel_threads_are_not_process_groups(tmp_path) -> None:
    fake = machine(tmp_path)
    watcher = Processes(proc=str(tmp_path))
    assert set(watcher.groups()) == {"systemd", "cron", "python3"}
    points, events, _ = watcher.collect(100.0, 100_000)
    assert set(names(points)) == {"systemd", "cron", "python3"}
    assert names(points)["python3"]["count"] == 2
    assert names(points)["python3"]["rss_bytes"] == 3000 * PAGE
    assert events == []
    fake.run(5, 500)  # a busy kworker is the kernel's work, not a program's
    fake.run(200, 30)
    points, _, _ = watcher.collect(160.0, 160_000)
    groups = names(points)
    assert set(groups) == {"systemd", "cron", "python3"}
    assert groups["python3"]["cpu_percent"] > 0


def test_the_top_by_cpu_are_groups_that_used_some(tmp_path) -> None:
    fake = machine(tmp_path)
    watcher = Processes(proc=str(tmp_path), top=1)
    points, _, _ = watcher.collect(100.0, 100_000)
    assert set(names(points)) == {"systemd"}  # the top by memory; nothing has used CPU yet
    fake.run(100, 6)
    points, _, _ = watcher.collect(160.0, 160_000)
    assert set(names(points)) == {"systemd", "cron"}
    points, _, _ = watcher.collect(220.0, 220_000)
    assert set(names(points)) == {"systemd"}  # an idle minute: no top CPU user


def test_kernel_threads_are_counted_in_only_when_asked(tmp_path) -> None:
    machine(tmp_path)
    watcher = Processes(proc=str(tmp_path))
    watcher.skip_flags = 0  # what bench/agent_payload.py measures as the previous payload
    assert "kworker/R-rcu_gp" in watcher.groups()
