"""`install`: put the agent, its config and a systemd unit in place, then start it.

Every path is under `root` (default `/`, or $FLEETPULSE_ROOT), so an install can
be rehearsed in a scratch directory; the unit itself names the final paths.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipapp
import zipfile

from fleetpulse_agent.config import DEFAULT_PATH, load

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations stay strings at run time (PEP 563): typing is never loaded
    from typing import Any, Dict, List, Optional


PYZ = "/usr/local/lib/fleetpulse/fleetpulse-agent.pyz"
WRAPPER = "/usr/local/bin/fleetpulse-agent"
UNIT_NAME = "fleetpulse-agent.service"
UNIT = "/etc/systemd/system/" + UNIT_NAME
SPOOL = "/var/lib/fleetpulse/spool"

UNIT_TEXT = """[Unit]
Description=fleetpulse host agent
Wants=network-online.target
After=network-online.target

[Service]
# -S: the agent needs only the standard library, not the host's site-packages.
ExecStart={python} -S {pyz} run --config {conf}
Restart=always
RestartSec=5
# The agent flushes and says goodbye within shutdown_timeout (10 s) of SIGTERM.
TimeoutStopSec=30
Nice=10
MemoryMax=128M
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
ReadWritePaths={state}

[Install]
WantedBy=multi-user.target
"""


def pyz_source() -> Optional[str]:
    """The zipapp this process runs from, if it runs from one."""
    path = sys.argv[0] if sys.argv else ""
    return path if path and os.path.isfile(path) and zipfile.is_zipfile(path) else None


def build_pyz(target: str) -> None:
    """Make the zipapp from the package this code was imported from."""
    package = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(
            package,
            os.path.join(tmp, "fleetpulse_agent"),
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        zipapp.create_archive(
            tmp, target, "/usr/bin/env python3", "fleetpulse_agent.cli:main", compressed=True
        )


def render_config(values: Dict[str, str]) -> str:
    lines = ["# fleetpulse agent settings: docs/AGENT.md lists every key.", "[agent]"]
    lines += ["%s = %s" % kv for kv in values.items() if kv[1] != ""]
    return "\n".join(lines) + "\n"


def _write(path: str, text: str, mode: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def install(args: Any, log: Any = print) -> int:
    """Install and (unless told not to) enable and start the service. Returns an exit status."""
    root = args.root if args.root is not None else os.environ.get("FLEETPULSE_ROOT", "")

    def under(path: str) -> str:
        return os.path.join(root, path.lstrip("/")) if root else path

    conf = args.config or DEFAULT_PATH
    values: Dict[str, str] = {}
    for key in ("url", "token", "host", "tags"):
        value = getattr(args, key, None)
        if value:
            values[key] = value
    for item in args.set or []:
        key, _, value = item.partition("=")
        values[key.strip()] = value.strip()
    if values or not os.path.exists(under(conf)):
        values.setdefault("spool_dir", SPOOL)
        _write(under(conf), render_config(values), 0o600)
        log("wrote %s" % under(conf))
    # The installed config must load: a mistake shows now, not in a restart loop.
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETPULSE_")}
    load(under(conf), env)

    pyz = under(PYZ)
    os.makedirs(os.path.dirname(pyz), exist_ok=True)
    source = args.pyz or pyz_source()
    if source and os.path.abspath(source) != os.path.abspath(pyz):
        shutil.copyfile(source, pyz + ".tmp")
        os.replace(pyz + ".tmp", pyz)
    elif not source:
        build_pyz(pyz + ".tmp")
        os.replace(pyz + ".tmp", pyz)
    os.chmod(pyz, 0o755)
    log("installed %s" % pyz)

    python = args.python or sys.executable or "/usr/bin/python3"
    _write(under(WRAPPER), '#!/bin/sh\nexec %s %s "$@"\n' % (python, PYZ), 0o755)
    state = os.path.dirname(SPOOL)
    os.makedirs(under(SPOOL), mode=0o700, exist_ok=True)
    _write(under(UNIT), UNIT_TEXT.format(python=python, pyz=PYZ, conf=conf, state=state), 0o644)
    log("wrote %s" % under(UNIT))

    if args.no_start or os.environ.get("FLEETPULSE_NO_START") == "1":
        log("not starting the service (as asked)")
        return 0
    commands: List[List[str]] = [
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", UNIT_NAME],
        ["systemctl", "restart", UNIT_NAME],
    ]
    for command in commands:
        try:
            done = subprocess.run(command, check=False)
        except OSError as exc:
            log("cannot run %s: %s" % (" ".join(command), exc))
            return 1
        if done.returncode != 0:
            log("%s failed with status %d" % (" ".join(command), done.returncode))
            return 1
    log("started %s" % UNIT_NAME)
    return 0
