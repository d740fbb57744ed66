"""Stdlib probes of discovered services, where the protocol is a few lines of text.

redis `INFO` and memcached `stats` over their TCP ports, nginx `stub_status` from
the configured URL or one found in nginx's configuration. A probe that fails is
a reason (returned, then logged and shown on the service's event), never a crash.
"""

from __future__ import annotations

import os
import re
import socket
from types import SimpleNamespace

from fleetpulse_agent.send import request

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations stay strings at run time (PEP 563): typing is never loaded
    from typing import Any, Dict, List, Optional, Tuple

PROBE_TIMEOUT = 2.0
# The agent's own HTTP client (http.client would cost the agent memory).
PROBE_SETTINGS = SimpleNamespace(
    connect_timeout=PROBE_TIMEOUT,
    tls_timeout=PROBE_TIMEOUT,
    read_timeout=PROBE_TIMEOUT,
    request_cap=3 * PROBE_TIMEOUT,
    dns_fallback=[],
    ca_file="",
)
REDIS_FIELDS = {
    "connected_clients": "clients",
    "blocked_clients": "blocked_clients",
    "used_memory": "used_memory_bytes",
    "keyspace_hits": "hits",
    "keyspace_misses": "misses",
    "instantaneous_ops_per_sec": "ops_per_s",
    "total_commands_processed": "commands",
    "evicted_keys": "evicted_keys",
}
MEMCACHED_FIELDS = {
    "curr_connections": "clients",
    "bytes": "used_memory_bytes",
    "limit_maxbytes": "max_memory_bytes",
    "get_hits": "hits",
    "get_misses": "misses",
    "cmd_get": "gets",
    "cmd_set": "sets",
    "curr_items": "items",
    "evictions": "evicted_keys",
}
_STUB_RE = re.compile(
    rb"Active connections:\s*(\d+)\s*server accepts handled requests\s*(\d+)\s+(\d+)\s+(\d+)"
    rb"\s*Reading:\s*(\d+)\s*Writing:\s*(\d+)\s*Waiting:\s*(\d+)"
)
_NGINX_LISTEN_RE = re.compile(r"^\s*listen\s+(?:(\[[^\]]+\]|[\w.*-]+):)?(\d+)[^;]*;", re.M)
_LOCATION_RE = re.compile(r"location\s+=?\s*(\S+)\s*\{[^{}]*\bstub_status\b", re.S)


def _exchange(port: int, request: bytes, done: Any) -> bytes:
    with socket.create_connection(("127.0.0.1", port), PROBE_TIMEOUT) as sock:
        sock.settimeout(PROBE_TIMEOUT)
        sock.sendall(request)
        data = b""
        while not done(data):
            chunk = sock.recv(65536)
            if not chunk:
                raise ValueError("connection closed after %d bytes" % len(data))
            data += chunk
            if len(data) > 1 << 20:
                raise ValueError("answer over 1 MB")
        return data


def _numbers(pairs: List[Tuple[str, str]], names: Dict[str, str]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in pairs:
        if key in names:
            try:
                out[names[key]] = float(value) if "." in value else int(value)
            except ValueError:
                continue
    return out


def redis(port: int) -> Dict[str, Any]:
    """Fields from redis `INFO`; raises on any failure (the caller keeps the reason)."""

    def done(data: bytes) -> bool:
        head, sep, rest = data.partition(b"\r\n")
        if not sep:
            return False
        if head[:1] != b"$":  # -NOAUTH, -ERR...
            raise ValueError(head.decode(errors="replace")[:200])
        return len(rest) >= int(head[1:]) + 2

    data = _exchange(port, b"INFO\r\n", done).partition(b"\r\n")[2].decode(errors="replace")
    pairs = [line.partition(":")[::2] for line in data.splitlines()]
    return _numbers(pairs, REDIS_FIELDS)


def memcached(port: int) -> Dict[str, Any]:
    """Fields from memcached `stats`; raises on any failure."""

    def done(data: bytes) -> bool:
        if data.startswith((b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")) and data.endswith(b"\n"):
            raise ValueError(data.decode(errors="replace").strip()[:200])
        return data.endswith(b"END\r\n")

    data = _exchange(port, b"stats\r\n", done).decode(errors="replace")
    pairs = [tuple(line.split()[1:3]) for line in data.splitlines() if line.startswith("STAT ")]
    return _numbers(pairs, MEMCACHED_FIELDS)  # type: ignore[arg-type]


def nginx(url: str) -> Dict[str, Any]:
    """Fields from nginx `stub_status` at `url`; raises on any failure."""
    answer = request("GET", url, b"", {}, PROBE_SETTINGS)
    body = answer.body
    m = _STUB_RE.search(body)
    if answer.status != 200 or not m:
        raise ValueError("%s answered %d, not a stub_status page" % (url, answer.status))
    names = ("active", "accepts", "handled", "requests", "reading", "writing", "waiting")
    return dict(zip(names, (int(v) for v in m.groups())))


def nginx_config(cmdline: List[str]) -> str:
    """The text of nginx's configuration (its -c file, else the default), includes inlined."""
    path = "/etc/nginx/nginx.conf"
    prefix = "/etc/nginx"
    for i, arg in enumerate(cmdline[:-1]):
        if arg == "-c":
            path = cmdline[i + 1]
            prefix = os.path.dirname(path)
    return _inline(path, prefix, 0)


def _inline(path: str, prefix: str, depth: int) -> str:
    import glob  # nginx without a configured URL only

    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    if depth > 3:
        return text

    def include(m: Any) -> str:
        pattern = m.group(1).strip("\"'")
        parts = []
        for name in sorted(glob.glob(os.path.join(prefix, pattern))):
            try:
                parts.append(_inline(name, prefix, depth + 1))
            except OSError:
                continue
        return "\n".join(parts)

    return re.sub(r"^\s*include\s+([^;]+);", include, text, flags=re.M)


def stub_status_url(config: str) -> Optional[str]:
    """The first `stub_status` location of the configuration, as a local URL."""
    text = re.sub(r"#[^\n]*", "", config)
    for server in _servers(text):
        m = _LOCATION_RE.search(server)
        listen = _NGINX_LISTEN_RE.search(server)
        if m and listen:
            host = listen.group(1) or "127.0.0.1"
            if host in ("*", "0.0.0.0"):
                host = "127.0.0.1"
            elif host == "[::]":
                host = "[::1]"
            return "http://%s:%s%s" % (host, listen.group(2), m.group(1))
    return None


def _servers(text: str) -> List[str]:
    blocks = []
    for m in re.finditer(r"\bserver\s*\{", text):
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        blocks.append(text[m.end() : i])
    return blocks


def probe(
    service: str, ports: List[int], pids: List[int], nginx_url: str, proc: str = "/proc"
) -> Tuple[Optional[str], Dict[str, Any], Optional[str]]:
    """(measurement, fields, failure reason) for one running service; never raises."""
    try:
        if service == "redis-server" and ports:
            return "redis", redis(ports[0]), None
        if service == "memcached" and ports:
            return "memcached", memcached(ports[0]), None
        if service == "nginx":
            url = nginx_url
            if not url:
                # The master's title reads "nginx: master process /usr/sbin/nginx -c FILE".
                words: List[str] = []
                for pid in pids:
                    try:
                        with open("%s/%d/cmdline" % (proc, pid), "rb") as f:
                            words += f.read().decode(errors="replace").replace("\0", " ").split()
                    except OSError:
                        continue
                url = stub_status_url(nginx_config(words)) or ""
            if url:
                return "nginx", nginx(url), None
        return None, {}, None
    except Exception as exc:  # any failure is the reason on the service's event
        return None, {}, "%s probe failed: %s" % (service, exc or type(exc).__name__)
