"""One HTTP request to the collector, with the timeouts a stuck network needs.

The agent makes the connection itself (resolving, connecting, TLS) and hands
the socket to the standard library's http.client, which writes the request and
reads the answer however it is framed (Content-Length, chunked, or to the close).

There is no single request timeout: a big batch on a slow link must get
through. Instead (the okmeter lesson): a connect timeout, a TLS handshake
timeout, TCP keepalive probes that find a dead peer within seconds, and an
idle read timeout that catches a peer which is alive but never answers
(keepalive cannot see that one). Where the OS has no keepalive tuning, a
large cap on the whole request stands in for it.

When the system resolver cannot resolve the collector, the configured
fallback resolvers are asked directly; TLS is still verified against the real
host name.
"""

from __future__ import annotations

import collections
import io
import os
import re
import socket
import struct
import time

from fleetpulse_agent.log import log

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations stay strings at run time (PEP 563): typing is never loaded
    from typing import Any, Callable, Dict, List, Optional, Tuple


MAX_RESPONSE = 1 << 20
KEEPALIVE = (("TCP_KEEPIDLE", 1), ("TCP_KEEPINTVL", 1), ("TCP_KEEPCNT", 3))


class SendError(Exception):
    """The request did not get an HTTP answer; `step` says where it failed."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__("%s: %s" % (step, reason))
        self.step = step
        self.reason = reason


# status, reason, headers (lower-case names), body
Response = collections.namedtuple("Response", "status reason headers body")
Target = collections.namedtuple("Target", "scheme host port path")
_URL_RE = re.compile(r"(https?)://(\[[^\]]+\]|[^/:?#]+)(?::(\d+))?([^#]*)")


def target(url: str) -> Target:
    """Scheme, host, port and path of an http(s) URL."""
    m = _URL_RE.match(url)
    if not m:
        raise SendError("url", "not an http(s) URL: %s" % url)
    scheme, host, port, path = m.groups()
    return Target(
        scheme,
        host.strip("[]"),
        int(port) if port else (443 if scheme == "https" else 80),
        path or "/",
    )


def random_fraction() -> float:
    """A number in [0, 1), from os.urandom."""
    return int.from_bytes(os.urandom(7), "big") / 2.0**56


# ---------------------------------------------------------------- name resolution


def resolve(
    host: str, port: int, fallbacks: List[Tuple[str, int]], timeout: float
) -> Tuple[List[Tuple[int, Tuple]], str]:
    """Addresses for host:port and which resolver gave them; raises SendError("dns")."""
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        return [(family, addr) for family, _, _, _, addr in infos], "system"
    except (socket.gaierror, UnicodeError) as exc:
        error = str(exc)
    for server in fallbacks:
        addrs: List[Tuple[int, Tuple]] = []
        for family, qtype in ((socket.AF_INET, 1), (socket.AF_INET6, 28)):  # A, then AAAA
            try:
                ips = query_a(host, server, timeout, qtype)
            except (OSError, ValueError) as exc:
                error += "; %s:%d: %s" % (server[0], server[1], exc)
                continue
            addrs += [(family, (ip, port, 0, 0) if qtype == 28 else (ip, port)) for ip in ips]
        if addrs:
            return addrs, "%s:%d" % server
        error += "; %s:%d: no A or AAAA record" % server
    raise SendError("dns", "cannot resolve %s (%s)" % (host, error))


def query_a(name: str, server: Tuple[str, int], timeout: float, qtype: int = 1) -> List[str]:
    """Addresses for `name` from one DNS server over UDP (RFC 1035, recursion desired):
    IPv4 for `qtype` 1 (A), IPv6 for 28 (AAAA)."""
    qid = int.from_bytes(os.urandom(2), "big")
    question = b"".join(
        bytes([len(label)]) + label for label in name.rstrip(".").encode("idna").split(b".")
    )
    packet = (
        struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
        + question
        + struct.pack("!BHH", 0, qtype, 1)
    )
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, server)
        deadline = time.monotonic() + timeout
        while True:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            data = sock.recv(4096)
            if len(data) >= 12 and struct.unpack("!H", data[:2])[0] == qid:
                break
    flags, qdcount, ancount = struct.unpack("!HHH", data[2:8])
    if flags & 0xF:
        raise ValueError("DNS error code %d" % (flags & 0xF))
    pos = 12
    for _ in range(qdcount):
        pos = _skip_name(data, pos) + 4
    ips = []
    for _ in range(ancount):
        pos = _skip_name(data, pos)
        rtype, _, _, length = struct.unpack("!HHIH", data[pos : pos + 10])
        pos += 10
        if rtype == qtype and length in (4, 16):
            ips.append(
                socket.inet_ntop(
                    socket.AF_INET6 if length == 16 else socket.AF_INET, data[pos : pos + length]
                )
            )
        pos += length
    return ips


def _skip_name(data: bytes, pos: int) -> int:
    while True:
        length = data[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:  # compression pointer: the name ends here
            return pos + 2
        pos += length + 1


# ---------------------------------------------------------------- connecting


def connect(addrs: List[Tuple[int, Tuple]], connect_timeout: float) -> Tuple[socket.socket, bool]:
    """A connected TCP socket to the first address that answers, and whether keepalive is tuned."""
    error = "no address"
    for family, addr in addrs:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(connect_timeout)
        try:
            sock.connect(addr)
        except OSError as exc:
            sock.close()
            error = "%s: %s" % (addr[0], _describe(exc))
            continue
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        tuned = True
        for option, value in KEEPALIVE:
            if hasattr(socket, option):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
            else:
                tuned = False
        return sock, tuned
    raise SendError("tcp", error)


_contexts: Dict[str, object] = {}


def tls_context(ca_file: str) -> object:
    """One verifying client context per CA source, made once: loading CAs costs memory."""
    import ssl  # only for https: it maps a few megabytes of libraries

    context = _contexts.get(ca_file)
    if context is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies certificate and host name
        paths = ssl.get_default_verify_paths()
        if ca_file:
            context.load_verify_locations(cafile=ca_file)
        elif paths.capath and os.path.isdir(paths.capath) and os.listdir(paths.capath):
            # A hashed directory is read certificate by certificate as needed; the
            # bundle file would be parsed whole into memory.
            context.load_verify_locations(capath=paths.capath)
        else:
            context.load_default_certs()
        _contexts[ca_file] = context
    return context


def tls_wrap(sock: socket.socket, host: str, ca_file: str, timeout: float) -> socket.socket:
    """TLS over `sock`, verified against `host` whatever address it was reached at."""
    import ssl

    try:
        tls = tls_context(ca_file).wrap_socket(  # type: ignore
            sock, server_hostname=host, do_handshake_on_connect=False
        )
        tls.settimeout(timeout)
        tls.do_handshake()
    except (OSError, ssl.SSLError) as exc:
        sock.close()
        raise SendError("tls", _describe(exc)) from None
    return tls


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


# ---------------------------------------------------------------- the request


def within(seconds: float, deadline: Optional[float]) -> float:
    """`seconds`, or less when `deadline` (a time.monotonic() instant) comes first."""
    if deadline is None:
        return seconds
    left = deadline - time.monotonic()
    if left <= 0:
        raise SendError("http", "no complete answer in time")
    return min(seconds, left)


def request(
    method: str,
    url: str,
    body: bytes,
    headers: Dict[str, str],
    cfg: object,
    *,
    deadline: Optional[float] = None,
    trace: Optional[Callable[[str, str], None]] = None,
) -> Response:
    """Send one request and read the whole answer; raises SendError without an HTTP status.

    `cfg` supplies connect_timeout, tls_timeout, read_timeout, request_cap,
    dns_fallback and ca_file (the agent's settings). `deadline`, a
    time.monotonic() instant, bounds every step (shutting down). `trace(step,
    text)` hears of each step done (dns, tcp, tls, http) with its time; by
    default they are debug log lines, so `-v once` traces a post.
    """
    start = [time.monotonic()]

    def done(step: str, text: str) -> None:
        now = time.monotonic()
        text += " (%.0f ms)" % ((now - start[0]) * 1000)
        start[0] = now
        if trace:
            trace(step, text)
        else:
            log.debug("%s: %s", step, text)

    t = target(url)
    wait = within(cfg.connect_timeout, deadline)  # type: ignore
    addrs, via = resolve(t.host, t.port, cfg.dns_fallback, wait)  # type: ignore
    done("dns", "%s -> %s via the %s resolver" % (t.host, addrs[0][1][0], via))
    sock, keepalive = connect(addrs, within(cfg.connect_timeout, deadline))  # type: ignore
    try:
        done("tcp", "port %d open" % t.port)
        if t.scheme == "https":
            wait = within(cfg.tls_timeout, deadline)  # type: ignore
            sock = tls_wrap(sock, t.host, cfg.ca_file, wait)  # type: ignore
            done("tls", "%s, certificate valid for %s" % (sock.version(), t.host))  # type: ignore
        if not keepalive:  # nothing watches the peer: a large cap on the exchange stands in
            deadline = time.monotonic() + within(cfg.request_cap, deadline)  # type: ignore
        wire = Wire(sock, cfg.read_timeout, deadline)  # type: ignore
        response = exchange(wire, method, t, body, headers)
        done("http", "%s %s -> %d" % (method, t.path, response.status))
        return response
    finally:
        sock.close()


class Wire(io.RawIOBase):
    """The connected socket as http.client sees it: each read or write waits at most
    `idle` seconds for progress, and none goes past `deadline` (a time.monotonic() instant).
    """

    def __init__(self, sock: socket.socket, idle: float, deadline: Optional[float]) -> None:
        super().__init__()
        self.sock, self.idle, self.deadline = sock, idle, deadline
        self.capped = False

    def wait(self) -> None:
        timeout = within(self.idle, self.deadline)
        self.capped = timeout < self.idle
        self.sock.settimeout(timeout)

    def sendall(self, data: bytes) -> None:
        # socket.sendall's timeout bounds the whole body; here it bounds a stall.
        view = memoryview(data)
        while view:
            self.wait()
            view = view[self.sock.send(view) :]

    def readinto(self, buffer: Any) -> int:  # a writable buffer
        self.wait()
        return self.sock.recv_into(buffer)

    def readable(self) -> bool:
        return True

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(self)

    def close(self) -> None:
        pass  # http.client closes a `Connection: close` exchange before its body is read


def exchange(wire: Wire, method: str, t: Target, body: bytes, headers: Dict[str, str]) -> Response:
    """Write the request through `wire` and read the answer to its end.

    http.client reads the answer however it is framed: Content-Length, chunked, or
    up to the close. The agent keeps its own socket, with its timeouts and keepalive.
    """
    import http.client  # loads ssl and email too: only once there is something to send

    conn = http.client.HTTPConnection(t.host, t.port)
    conn.default_port = 443 if t.scheme == "https" else 80  # left out of the Host header
    conn.sock = wire
    try:
        conn.request(method, t.path, body, dict(headers, Connection="close"))
        answer = conn.getresponse()
        try:
            data = answer.read(MAX_RESPONSE)
        except http.client.IncompleteRead as exc:  # the status came: it is the answer
            data = exc.partial
        found = {name.lower(): value for name, value in answer.getheaders()}
        return Response(answer.status, answer.reason, found, data)
    except http.client.HTTPException as exc:  # a closed connection, or no HTTP at all
        raise SendError(
            "http", "no HTTP answer (%s)" % (str(exc).strip()[:80] or "closed")
        ) from None
    except socket.timeout:
        if wire.capped:
            raise SendError("http", "no complete answer in time") from None
        raise SendError("http", "no answer for %gs" % wire.idle) from None
    except OSError as exc:
        raise SendError("http", _describe(exc)) from None


def retry_after(value: Optional[str], now: float) -> Optional[float]:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date.

    None when there is none or it cannot be read, and for a date without a zone
    ("-0000"): reading it as local time would be a guess.
    """
    value = (value or "").strip()
    if value.isascii() and value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime  # already loaded with http.client

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)
