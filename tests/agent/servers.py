"""Real nginx, redis-server and memcached from Debian on 127.0.0.1, each on a free port with
its own directory, and a `systemctl` that keeps units the way systemd does, for machines
(this one, CI) where systemd is not running.

Programs are asked for through tests/support/programs.py: with CI=true a missing one fails
the test instead of skipping it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support.programs import require_program as shared_require_program

PACKAGES = {"nginx": "nginx-light", "redis-server": "redis-server", "memcached": "memcached"}
SBIN = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")


def require_program(name: str) -> str:
    """The program's path, looked for in the sbin folders too (nginx lives in /usr/sbin)."""
    return shared_require_program(name, PACKAGES.get(name, name), path=":".join(SBIN))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    for _ in range(500):
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"{what} is not listening on {port}")


def start_redis(root: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = require_program("redis-server")
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(root)]
    args += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(port, process, "redis-server")
    return process, port


def start_memcached(root: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = require_program("memcached")
    port = free_port()
    args = [binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "16"]
    if os.geteuid() == 0:
        args += ["-u", "root"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(port, process, "memcached")
    return process, port


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include {root}/sites/*.conf;
}}
"""
NGINX_SITE = """\
server {{
    listen 127.0.0.1:{port};
    # the page the agent finds here
    location = /nginx_status {{
        stub_status;
        allow 127.0.0.1;
        deny all;
    }}
    location / {{ return 200 "hello\\n"; }}
}}
"""


def start_nginx(root: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = require_program("nginx")
    port = free_port()
    (root / "sites").mkdir(parents=True, exist_ok=True)
    (root / "nginx.conf").write_text(NGINX_CONF.format(root=root))
    (root / "sites" / "status.conf").write_text(NGINX_SITE.format(port=port))
    args = [binary, "-c", str(root / "nginx.conf"), "-p", str(root), "-e", str(root / "error.log")]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(port, process, "nginx")
    for _ in range(500):  # the master listens before it forks its worker
        if descendants(process.pid):
            break
        time.sleep(0.02)
    return process, port


def descendants(root_pid: int) -> list[int]:
    """Every process under `root_pid` (the processes a test started, and theirs)."""
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        parents[int(name)] = int(data[data.rfind(b")") + 2 :].split()[1])
    found, frontier = [], [root_pid]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return sorted(found)


FAKE_SYSTEMCTL = '''\
#!{python}
"""systemctl as systemd answers it, for units whose main pid is in {state}/<unit>."""
import os, signal, sys, time
STATE = {state!r}
command, unit = sys.argv[1], sys.argv[-1]
path = os.path.join(STATE, unit)
def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
if not os.path.exists(path):
    print("LoadState=not-found\\nActiveState=inactive\\nResult=success")
    sys.exit(0)
pid, _, how = open(path).read().partition(" ")
if command == "stop":
    os.kill(int(pid), signal.SIGTERM)
    while alive(int(pid)):
        time.sleep(0.01)
    open(path, "w").write(pid + " stopped")
    sys.exit(0)
if how == "stopped":
    print("LoadState=loaded\\nActiveState=inactive\\nResult=success")
elif alive(int(pid)):
    print("LoadState=loaded\\nActiveState=active\\nResult=success")
else:
    print("LoadState=loaded\\nActiveState=failed\\nResult=signal")
'''


class FakeSystemd:
    """Units by name; `systemctl stop` ends the unit's process and remembers it was asked to."""

    def __init__(self, root: Path) -> None:
        self.state = root / "units"
        self.state.mkdir(parents=True)
        self.systemctl = root / "systemctl"
        self.systemctl.write_text(
            FAKE_SYSTEMCTL.format(python=sys.executable, state=str(self.state))
        )
        self.systemctl.chmod(0o755)

    def add(self, unit: str, pid: int) -> None:
        (self.state / unit).write_text(str(pid))

    def stop(self, unit: str) -> None:
        subprocess.run([str(self.systemctl), "stop", unit], check=True, timeout=30)


def kill(process: subprocess.Popen[bytes]) -> None:
    """An ungraceful end: SIGKILL, as the OOM killer or a crash would."""
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
