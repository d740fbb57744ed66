"""`status`: the settings, what the agent last did, and whether the collector can be reached.

Reachability is checked one step at a time (DNS, TCP, TLS, HTTP, token), so
the first failing step names the problem.
"""

from __future__ import annotations

import json
import os
import time

from fleetpulse_agent import AGENT_NAME, __version__
from fleetpulse_agent.config import ingest_url
from fleetpulse_agent.deliver import encode, envelope
from fleetpulse_agent.send import SendError, request
from fleetpulse_agent.spool import SUFFIX, read_json

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations stay strings at run time (PEP 563): typing is never loaded
    from typing import Any, Callable


def _when(at: Any) -> str:
    if not at:
        return "never"
    ago = time.time() - float(at)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(at)))
    return "%s (%s)" % (stamp, "%d s ago" % ago if ago >= 0 else "in %d s" % -ago)


def _count(folder: str) -> Any:
    """Batches in `folder` and their bytes."""
    sizes = [e.stat().st_size for e in os.scandir(folder) if e.name.endswith(SUFFIX)]
    return len(sizes), sum(sizes)


def report(cfg: Any, check_network: bool = True, out: Callable[[str], None] = print) -> int:
    """Print the diagnosis; 0 when every check passed, 1 otherwise."""
    ok = True

    def line(label: str, text: str) -> None:
        out("%-12s %s" % (label, text))

    token = cfg.token
    for label, text in (
        ("agent", "%s %s" % (AGENT_NAME, __version__)),
        ("config", cfg.config_path or "(no file: defaults and environment)"),
        ("url", ingest_url(cfg)),
        ("token", "%s... (%d chars)" % (token[:4], len(token)) if len(token) > 8 else "(set)"),
        ("host", cfg.host),
        ("tags", ",".join("%s=%s" % kv for kv in sorted(cfg.tags.items())) or "(none)"),
        ("intervals", "sample %gs, send %gs" % (cfg.sample_interval, cfg.send_interval)),
    ):
        line(label, text)
    spool = cfg.spool_dir
    try:
        n, size = _count(spool)
        line(
            "spool", "%s: %d batches, %.1f MB of %g MB" % (spool, n, size / 2**20, cfg.spool_max_mb)
        )
        if not os.access(spool, os.W_OK):
            line("spool", "NOT WRITABLE: batches would wait in memory")
            ok = False
    except FileNotFoundError:
        line("spool", "%s: not created yet (the agent makes it when it starts)" % spool)
    except OSError as exc:
        line("spool", "%s: %s" % (spool, exc.strerror))
        ok = False
    for folder in ("dead", "quarantine"):
        try:
            line(
                folder,
                "%d batches in %s"
                % (_count(os.path.join(spool, folder))[0], os.path.join(spool, folder)),
            )
        except OSError:
            line(folder, "none")
    state = read_json(os.path.join(spool, "state.json"))
    line(
        "counts",
        "%d batches dropped by the spool cap, %d send errors, %d items rejected (by pid %s)"
        % (
            state.get("dropped", 0),
            state.get("send_errors", 0),
            state.get("rejected", 0),
            state.get("pid", "-"),
        ),
    )
    line("last send", _when(state.get("last_success_at")))
    failed_at = float(state.get("last_error_at") or 0)
    if state.get("last_error"):
        recovered = failed_at <= float(state.get("last_success_at") or 0)
        line(
            "last error",
            "%s at %s%s"
            % (state["last_error"], _when(failed_at), " (recovered)" if recovered else ""),
        )
        ok = ok and recovered
    if float(state.get("retry_after_until") or 0) > time.time():
        line("retry after", _when(state["retry_after_until"]))
    if check_network:
        ok = reachability(cfg, line) and ok
    return 0 if ok else 1


def reachability(cfg: Any, line: Callable[[str, str], None]) -> bool:
    """GET /v1/health, then an empty authenticated post; every step timed, the failing one named."""
    url = ingest_url(cfg)
    doc = envelope(cfg.host, cfg.tags, cfg.send_interval, None)
    doc["points"] = []
    headers = {
        "Authorization": "Bearer " + cfg.token,
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }

    def answer_only(step: str, text: str) -> None:
        # The second request's DNS, TCP and TLS steps were just shown: only its answer is news.
        if step == "http":
            line("token", text)

    try:
        request("GET", url[: -len("v1/ingest")] + "v1/health", b"", {}, cfg, trace=line)
        response = request("POST", url, encode(doc), headers, cfg, trace=answer_only)
    except SendError as exc:
        line(exc.step, "FAILED: %s" % exc.reason)
        return False
    if response.status < 300:
        return True
    try:
        why = json.loads(response.body)["error"]
    except (ValueError, KeyError, TypeError):
        why = response.body[:200].decode("utf-8", "replace")
    line("token", "REFUSED: %d %s" % (response.status, why))
    return False
