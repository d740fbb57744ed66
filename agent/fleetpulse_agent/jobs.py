"""`exec --job SLUG -- COMMAND [ARGS...]`: run a command as a monitored job (runitor's job).

A start ping with a new run id, the command (no shell; its output passes
through and its tail is kept), then a finish ping with its exit status, its
output's tail and its duration, and the command's own exit status. Both pings
go through the spool, with the instant they happened (`t`), so a run that ends
while the collector is unreachable is reported later, measured right.

The job is addressed as /ping/<ping_key>/<slug>: the ping key is a setting
(`ping_key`, FLEETPULSE_PING_KEY; `fleetpulse tokens create --scope ping`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from urllib.parse import quote, urlencode

from fleetpulse_agent import AGENT_NAME
from fleetpulse_agent.config import valid_name
from fleetpulse_agent.deliver import envelope

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations stay strings at run time (PEP 563): typing is never loaded
    from typing import Any, Dict, List, Tuple

TAIL_BYTES = 9800  # with the closing note, under the 10 KB of a body the collector keeps


def ping_request(cfg: Any, doc: Dict[str, Any]) -> Tuple[str, bytes]:
    """The path with its query, and the body, of a spooled ping."""
    ping = doc["ping"]
    path = "/ping/%s/%s" % (quote(cfg.ping_key, safe=""), quote(ping["job"], safe=""))
    if ping.get("action"):
        path += "/" + ping["action"]
    query = {"rid": ping["rid"], "t": "%.3f" % (ping["time"] / 1000.0)}
    return path + "?" + urlencode(query), doc.get("log", "").encode("utf-8")


def exec_job(a: Any, args: Any) -> int:
    """Run args.argv as job args.job; return the command's exit status."""
    if not valid_name(args.job) or args.job != args.job.lower():
        print(
            "%s: --job %r: use lowercase letters, digits, - and _" % (AGENT_NAME, args.job),
            file=sys.stderr,
        )
        return 2
    if not a.cfg.ping_key:
        print("%s: ping_key is not set: the job runs unmonitored" % AGENT_NAME, file=sys.stderr)
    rid = str(uuid.uuid4())
    _ping(a, args, rid, "start", "")
    started = time.time()
    status, tail = run(args.argv)
    duration = time.time() - started
    note = "\n[%s: exit status %d after %.1fs]" % (AGENT_NAME, status, duration)
    _ping(a, args, rid, str(min(status, 255)), tail + note)
    if a.cfg.ping_key:
        a.sender.send_pending(deadline=time.time() + args.timeout, lock_wait=args.timeout)
        if a.spool.pending():
            print(
                "%s: job %s: pings spooled, not delivered yet (%s); the agent will send them"
                % (AGENT_NAME, args.job, a.sender.state.get("last_error") or "collector busy"),
                file=sys.stderr,
            )
    return status


def _ping(a: Any, args: Any, rid: str, action: str, log_text: str) -> None:
    if not a.cfg.ping_key:
        return
    doc = envelope(a.cfg.host, a.tags, a.cfg.send_interval, None)
    doc["ping"] = {"job": args.job, "action": action, "rid": rid, "time": int(time.time() * 1000)}
    if log_text:
        doc["log"] = log_text
    a.put(doc)
    if action == "start":  # the start goes now, if it can; the run does not wait for it
        a.sender.send_pending(deadline=time.time() + min(args.timeout, 5.0), lock_wait=0.5)


def run(command: List[str]) -> Tuple[int, str]:
    """Run `command` (no shell), its output passing through; (exit status, output's tail).

    Exit status as a shell gives it: 127 not found, 126 not executable, 128+N
    killed by signal N.
    """
    try:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except FileNotFoundError as exc:
        return 127, "%s: %s" % (command[0], exc.strerror)
    except OSError as exc:
        return 126, "%s: %s" % (command[0], exc.strerror)
    tail = b""
    out = getattr(sys.stdout, "buffer", None)
    assert child.stdout is not None
    while True:
        chunk = os.read(child.stdout.fileno(), 65536)
        if not chunk:
            break
        if out is not None:
            out.write(chunk)
            out.flush()
        tail = (tail + chunk)[-TAIL_BYTES:]
    code = child.wait()
    status = 128 - code if code < 0 else code
    return status, tail.decode("utf-8", "replace")
