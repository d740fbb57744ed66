"""`status`: what the agent is set to, what it last did, and whether the collector can be reached.

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
from fleetpulse_agent.send import SendError, connect, exchange, resolve, target, tls_wrap
from fleetpulse_agent.spool import SUFFIX, count_files, read_json

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations stay strings at run time (PEP 563): typing is never loaded
    from typing import Any, Callable


def _ago(when: Any) -> str:
    if not when:
        return "never"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(when)))
    return "%s (%ds ago)" % (stamp, time.time() - float(when))


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return ("%d %s" if unit == "B" else "%.1f %s") % (n, unit)
        n /= 1024.0
    return str(n)


def report(cfg: Any, check_network: bool = True, out: Callable[[str], None] = print) -> int:
    """Print the diagnosis; 0 when every check passed, 1 otherwise."""
    ok = True

    def line(label: str, text: str) -> None:
        out("%-12s %s" % (label, text))

    line("agent", "%s %s" % (AGENT_NAME, __version__))
    line("config", cfg.config_path or "(no file; defaults and environment)")
    line("url", ingest_url(cfg))
    token = cfg.token
    line("token", "%s… (%d chars)" % (token[:4], len(token)) if len(token) > 8 else "(set)")
    line("host", cfg.host)
    line("tags", ",".join("%s=%s" % kv for kv in sorted(cfg.tags.items())) or "(none)")
    line("intervals", "sample %gs, send %gs" % (cfg.sample_interval, cfg.send_interval))

    spool = cfg.spool_dir
    try:
        files = [e for e in os.scandir(spool) if e.name.endswith(SUFFIX)]
        size = sum(e.stat().st_size for e in files)
        writable = os.access(spool, os.W_OK)
        line(
            "spool",
            "%s: %d batches, %s of %s cap%s"
            % (
                spool,
                len(files),
                _size(size),
                _size(cfg.spool_max_mb * 2**20),
                "" if writable else " (NOT WRITABLE: batches would wait in memory)",
            ),
        )
        ok = ok and writable
    except FileNotFoundError:
        line("spool", "%s: not created yet (the agent makes it when it starts)" % spool)
    except OSError as exc:
        line("spool", "%s: %s" % (spool, exc.strerror))
        ok = False
    line(
        "set aside",
        "%d dead letters in %s, %d quarantined"
        % (
            count_files(os.path.join(spool, "dead")),
            os.path.join(spool, "dead"),
            count_files(os.path.join(spool, "quarantine")),
        ),
    )
    state = read_json(os.path.join(spool, "state.json"))
    line("last send", _ago(state.get("last_success_at")))
    if state.get("last_error_at") and float(state["last_error_at"]) > float(
        state.get("last_success_at") or 0
    ):
        line("last error", "%s: %s" % (_ago(state["last_error_at"]), state.get("last_error")))
        ok = False
    elif state.get("last_error"):
        line("last error", "%s (since recovered)" % state.get("last_error"))
    if float(state.get("retry_after_until") or 0) > time.time():
        line("retry after", _ago(state["retry_after_until"]).replace("ago", "from now"))
    if check_network:
        ok = reachability(cfg, line) and ok
    return 0 if ok else 1


def reachability(cfg: Any, line: Callable[[str, str], None]) -> bool:
    url = ingest_url(cfg)
    t = target(url)
    steps = []  # type: List[str]

    def timed(label: str, func: Callable[[], Any]) -> Any:
        start = time.monotonic()
        try:
            result = func()
        except SendError as exc:
            line(label, "FAILED: %s" % exc.reason)
            raise
        steps.append(label)
        return result, (time.monotonic() - start) * 1000

    try:
        (addrs, via), ms = timed(
            "dns", lambda: resolve(t.host, t.port, cfg.dns_fallback, cfg.connect_timeout)
        )
        line("dns", "%s -> %s via %s resolver (%.0f ms)" % (t.host, addrs[0][1][0], via, ms))
        (sock, keepalive), ms = timed("tcp", lambda: connect(addrs, cfg.connect_timeout))
        sock.close()
        line(
            "tcp",
            "connected to port %d (%.0f ms)%s"
            % (t.port, ms, "" if keepalive else ", no keepalive tuning"),
        )

        def open_conn() -> Any:
            s, _ = connect(addrs, cfg.connect_timeout)
            if t.scheme == "https":
                s = tls_wrap(s, t.host, cfg.ca_file, cfg.tls_timeout)
            return s

        if t.scheme == "https":
            tls, ms = timed("tls", open_conn)
            cert = tls.getpeercert() or {}
            line(
                "tls",
                "%s, certificate valid for %s until %s (%.0f ms)"
                % (tls.version(), t.host, cert.get("notAfter", "?"), ms),
            )
            tls.close()
        base = url[: -len("/v1/ingest")]
        health = target(base + "/v1/health")

        def get() -> Any:
            s = open_conn()
            try:
                return exchange(s, "GET", health, b"", {}, cfg=cfg, keepalive=True)
            finally:
                s.close()

        resp, ms = timed("http", get)
        line("http", "GET %s -> %d %s (%.0f ms)" % (health.path, resp.status, resp.reason, ms))
        doc = envelope(cfg.host, cfg.tags, cfg.send_interval, None)
        doc["points"] = []
        headers = {
            "Authorization": "Bearer " + cfg.token,
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        }

        def post() -> Any:
            s = open_conn()
            try:
                return exchange(s, "POST", t, encode(doc), headers, cfg=cfg, keepalive=True)
            finally:
                s.close()

        resp, ms = timed("token", post)
        verdict = "accepted" if 200 <= resp.status < 300 else "REFUSED"
        detail = ""
        if resp.status >= 300:
            try:
                detail = ": " + str(json.loads(resp.body).get("error"))
            except (ValueError, AttributeError):
                detail = ": " + resp.body[:200].decode("utf-8", "replace")
        line("token", "POST %s (no points) -> %d %s%s" % (t.path, resp.status, verdict, detail))
        return 200 <= resp.status < 300
    except SendError:
        return False
