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
from fleetpulse_agent.send import SendError, connect, exchange, resolve, target, tls_wrap
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
    """DNS, TCP, TLS, GET /v1/health, then an empty authenticated post: each step timed."""
    url = ingest_url(cfg)
    t = target(url)

    def step(label: str, func: Callable[[], Any], say: Callable[[Any], str]) -> Any:
        start = time.monotonic()
        try:
            result = func()
        except SendError as exc:
            line(label, "FAILED: %s" % exc.reason)
            raise
        line(label, "%s (%.0f ms)" % (say(result), (time.monotonic() - start) * 1000))
        return result

    def connection() -> Any:
        sock, _ = connect(addrs, cfg.connect_timeout)
        return tls_wrap(sock, t.host, cfg.ca_file, cfg.tls_timeout) if t.scheme == "https" else sock

    def ask(method: str, where: Any, body: bytes, headers: Any) -> Any:
        sock = connection()
        try:
            return exchange(sock, method, where, body, headers, cfg=cfg, keepalive=True)
        finally:
            sock.close()

    try:
        addrs = step(
            "dns",
            lambda: resolve(t.host, t.port, cfg.dns_fallback, cfg.connect_timeout),
            lambda r: "%s -> %s via the %s resolver" % (t.host, r[0][0][1][0], r[1]),
        )[0]
        step(
            "tcp", lambda: connect(addrs, cfg.connect_timeout)[0], lambda s: "port %d open" % t.port
        ).close()
        if t.scheme == "https":

            def tls() -> Any:
                sock = connection()
                sock.close()
                return sock.version(), (sock.getpeercert() or {}).get("notAfter", "?")

            step(
                "tls", tls, lambda r: "%s, certificate for %s valid until %s" % (r[0], t.host, r[1])
            )
        health = target(url[: -len("v1/ingest")] + "v1/health")
        step(
            "http",
            lambda: ask("GET", health, b"", {}),
            lambda r: "GET %s -> %d" % (health.path, r.status),
        )
        doc = envelope(cfg.host, cfg.tags, cfg.send_interval, None)
        doc["points"] = []
        headers = {
            "Authorization": "Bearer " + cfg.token,
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        }
        resp = step(
            "token",
            lambda: ask("POST", t, encode(doc), headers),
            lambda r: (
                "POST %s (no points) -> %d %s%s"
                % (t.path, r.status, "accepted" if r.status < 300 else "REFUSED", _why(r))
            ),
        )
        return 200 <= resp.status < 300
    except SendError:
        return False


def _why(response: Any) -> str:
    if response.status < 300:
        return ""
    try:
        return ": %s" % json.loads(response.body)["error"]
    except (ValueError, KeyError, TypeError):
        return ": " + response.body[:200].decode("utf-8", "replace")
