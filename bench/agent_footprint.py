#!/usr/bin/env python3
"""Resident memory and CPU of the fleetpulse agent beside collectd, measured in the same run.

Both run at their defaults side by side for --duration seconds: the agent
(`run`: sample every 10 s, send every 60 s, statsd listener on) posting to a
local sink, and collectd (10 s interval) with the cpu, load, memory, swap, df,
disk, interface, processes, uptime and tcpconns plugins writing CSV. Each
process's RSS and CPU time are read from /proc once a second. CPU is reported
for the steady state (after --warmup seconds) so interpreter start-up does
not count as per-cycle cost; start-up CPU is shown on its own.

    apt-get install -y collectd-core   # or collectd; without it only the agent is measured
    python3 bench/agent_footprint.py --duration 180
    python3 bench/agent_footprint.py --check   # with an exec check, check_load every 60 s

With --check the agent also runs the Nagios plugin check_load every
--check-interval seconds (60, the default interval of a check); the plugin's
own CPU, spent in a child process, is shown on a line of its own. A check run
more often than the agent sends (60 s) posts each result at once; at 60 s and
more, steady results ride with the regular batch.

Targets: under 20 MB RSS and under 0.1% of one core for the agent, with its process
metrics and service discovery on (the default; --no-processes measures without them).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
COLLECTD_PLUGINS = (
    "cpu",
    "load",
    "memory",
    "swap",
    "df",
    "disk",
    "interface",
    "processes",
    "uptime",
    "tcpconns",
)


class Sink(BaseHTTPRequestHandler):
    """Accepts every post like the collector would, counting points."""

    points = 0
    posts = 0
    process_points = 0
    events = 0

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        doc = json.loads(gzip.decompress(body))
        Sink.posts += 1
        Sink.points += len(doc.get("points") or ())
        Sink.process_points += sum(p["measurement"] == "process" for p in doc.get("points") or ())
        Sink.events += len(doc.get("events") or ())
        reply = json.dumps({"accepted": len(doc.get("points") or ()), "rejected": []}).encode()
        self.send_response(202)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def children_cpu_seconds(pid: int) -> float:
    """CPU of the process's reaped children (the plugins the agent ran)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[13]) + int(fields[14])) / TICKS  # cutime + cstime


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def pss_bytes(pid: int) -> int:
    """Proportional set size: shared pages (libpython, libssl) split between their users."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def collectd_config(tmp: Path) -> Path:
    lines = [
        f'BaseDir "{tmp}"',
        f'PIDFile "{tmp}/collectd.pid"',
        "Interval 10",
        "AutoLoadPlugin false",
        "LoadPlugin logfile",
        "<Plugin logfile>",
        '  LogLevel "warning"',
        f'  File "{tmp}/collectd.log"',
        "</Plugin>",
    ]
    lines += [f"LoadPlugin {p}" for p in (*COLLECTD_PLUGINS, "csv")]
    lines += ["<Plugin csv>", f'  DataDir "{tmp}/csv"', "  StoreRates true", "</Plugin>"]
    path = tmp / "collectd.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--duration", type=float, default=180, help="seconds to measure (default 180)"
    )
    parser.add_argument("--warmup", type=float, default=15, help="seconds before steady state")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the agent")
    parser.add_argument("--pyz", help="run this zipapp instead of the source tree")
    parser.add_argument(
        "--no-processes",
        action="store_true",
        help="turn the agent's process metrics and service discovery off (default: on)",
    )
    parser.add_argument(
        "--plain-http",
        action="store_true",
        help="post over http (default: https, as in production)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="also run an exec check: [check:load] with check_load",
    )
    parser.add_argument(
        "--check-interval", type=float, default=60, help="seconds between its runs (default 60)"
    )
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    tmp = Path(tempfile.mkdtemp(prefix="fleetpulse-bench-"))
    scheme, host = "http", "127.0.0.1"
    if not args.plain_http and shutil.which("openssl"):
        # TLS costs the agent memory (libssl, the CA store): measure it as deployed.
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost",
                "-keyout",
                str(tmp / "key.pem"),
                "-out",
                str(tmp / "cert.pem"),
            ],
            check=True,
            capture_output=True,
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme, host = "https", "localhost"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO / "agent"),
        "FLEETPULSE_CONFIG": str(tmp / "agent.conf"),
        "FLEETPULSE_URL": f"{scheme}://{host}:{server.server_address[1]}",
        "FLEETPULSE_CA_FILE": str(tmp / "cert.pem") if scheme == "https" else "",
        "FLEETPULSE_TOKEN": "bench",
        "FLEETPULSE_SPOOL_DIR": str(tmp / "spool"),
        "FLEETPULSE_STATSD": f"127.0.0.1:{free_udp_port()}",
        "FLEETPULSE_PROCESSES": "false" if args.no_processes else "true",
        "FLEETPULSE_EC2_TAGS": "false",  # off EC2 the metadata service only costs start-up time
    }
    conf = "[agent]\n"
    if args.check:
        plugin = "/usr/lib/nagios/plugins/check_load"
        if not Path(plugin).exists():
            raise SystemExit(f"{plugin} not found: apt-get install -y monitoring-plugins-basic")
        conf += f"[check:load]\ncommand = {plugin} -w 1000,1000,1000 -c 2000,2000,2000\n"
        conf += f"interval = {args.check_interval:g}\n"
        env["FLEETPULSE_CHECKS_DIR"] = str(tmp / "checks.d")
    (tmp / "agent.conf").write_text(conf)
    # -S as in the systemd unit: the host's site-packages are none of the agent's business.
    agent_cmd = (
        [args.python, "-S", args.pyz] if args.pyz else [args.python, "-S", "-m", "fleetpulse_agent"]
    )
    procs = {"agent": subprocess.Popen([*agent_cmd, "run"], env=env, stderr=subprocess.DEVNULL)}
    collectd = shutil.which("collectd") or (
        "/usr/sbin/collectd" if Path("/usr/sbin/collectd").exists() else None
    )
    if collectd:
        (tmp / "csv").mkdir()
        procs["collectd"] = subprocess.Popen([collectd, "-f", "-C", str(collectd_config(tmp))])
    else:
        print("collectd not found (apt-get install -y collectd-core): measuring the agent only")

    rss: dict[str, list[int]] = {name: [] for name in procs}
    pss: dict[str, list[int]] = {name: [] for name in procs}
    start_cpu: dict[str, float] = {}
    started = time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < args.duration:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    raise SystemExit(f"{name} exited with status {proc.returncode}")
                rss[name].append(rss_bytes(proc.pid))
                pss[name].append(pss_bytes(proc.pid))
                if elapsed >= args.warmup and name not in start_cpu:
                    start_cpu[name] = cpu_seconds(proc.pid)
            time.sleep(1)
        end_cpu = {name: cpu_seconds(proc.pid) for name, proc in procs.items()}
        plugins_cpu = children_cpu_seconds(procs["agent"].pid)
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(timeout=30)
        server.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)

    steady = args.duration - args.warmup
    cycles = steady / 10  # both sample every 10 s
    rows = {}
    for name in procs:
        cpu = end_cpu[name] - start_cpu[name]
        rows[name] = {
            "rss_peak_mb": max(rss[name]) / 2**20,
            "rss_median_mb": statistics.median(rss[name]) / 2**20,
            "pss_median_mb": statistics.median(pss[name]) / 2**20,
            "cpu_percent": 100 * cpu / steady,
            "cpu_ms_per_cycle": 1000 * cpu / cycles,
            "startup_cpu_s": start_cpu[name],
        }
    print(f"\n{args.duration:.0f} s run ({steady:.0f} s steady state, {cycles:.0f} cycles of 10 s)")
    print(
        f"agent posted over {scheme}; the sink received {Sink.points} points in {Sink.posts} posts"
    )
    host_processes = sum(n.isdigit() for n in os.listdir("/proc"))
    print(
        f"process metrics {'off' if args.no_processes else 'on'}: {host_processes} processes on "
        f"this host, {Sink.process_points} `process` points and {Sink.events} events received\n"
    )
    header = f"{'':10} {'RSS peak MB':>12} {'RSS median MB':>14} {'PSS median MB':>14} {'CPU % core':>11} {'CPU ms/cycle':>13} {'start-up CPU s':>15}"
    print(header)
    for name, r in rows.items():
        print(
            f"{name:10} {r['rss_peak_mb']:12.1f} {r['rss_median_mb']:14.1f} {r['pss_median_mb']:14.1f} {r['cpu_percent']:11.3f} "
            f"{r['cpu_ms_per_cycle']:13.2f} {r['startup_cpu_s']:15.2f}"
        )
    if "collectd" in rows:
        a, c = rows["agent"], rows["collectd"]
        print(
            f"{'agent/cd':10} {a['rss_peak_mb'] / c['rss_peak_mb']:12.2f} "
            f"{a['rss_median_mb'] / c['rss_median_mb']:14.2f} "
            f"{a['pss_median_mb'] / c['pss_median_mb']:14.2f} "
            f"{a['cpu_percent'] / max(c['cpu_percent'], 1e-9):11.2f} "
            f"{a['cpu_ms_per_cycle'] / max(c['cpu_ms_per_cycle'], 1e-9):13.2f}"
        )
    if args.check:
        print(
            f"{'plugins':10} {'':12} {'':14} {'':14} {100 * plugins_cpu / args.duration:11.3f}"
            "   (check_load, in child processes, whole run)"
        )
    a = rows["agent"]
    ok = a["rss_peak_mb"] < 20 and a["cpu_percent"] < 0.1
    print(f"\ntargets (< 20 MB RSS, < 0.1% of one core): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
