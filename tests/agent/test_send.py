"""The transport on real sockets: fallback DNS, TLS checked against the real name, timeouts,
and answers however they are framed."""

from __future__ import annotations

import contextlib
import datetime
import re
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fake_collector import FakeCollector
from fleetpulse_agent import config, send
from fleetpulse_agent.send import SendError, request, retry_after


def cfg(**overrides: object) -> SimpleNamespace:
    values: dict[str, object] = {
        "connect_timeout": 1.0,
        "tls_timeout": 0.5,
        "read_timeout": 0.5,
        "request_cap": 300.0,
        "dns_fallback": [],
        "ca_file": "",
    }
    values.update(overrides)
    return SimpleNamespace(**values)


class FakeDNS:
    """A UDP DNS server on 127.0.0.1 answering A and AAAA queries for the names it knows."""

    def __init__(self, records: dict[str, str]) -> None:
        self.records = records
        self.queries: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = self.sock.getsockname()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(512)
            except OSError:
                return
            qid = data[:2]
            pos, labels = 12, []
            while data[pos]:
                labels.append(data[pos + 1 : pos + 1 + data[pos]].decode())
                pos += data[pos] + 1
            question = data[12 : pos + 5]
            qtype = struct.unpack("!H", data[pos + 1 : pos + 3])[0]
            name = ".".join(labels)
            self.queries.append(name)
            ip = self.records.get(name)
            if ip is None:
                self.sock.sendto(qid + b"\x81\x83\x00\x01\x00\x00\x00\x00\x00\x00" + question, peer)
                continue
            family, rtype = (socket.AF_INET6, 28) if ":" in ip else (socket.AF_INET, 1)
            if qtype != rtype:  # the name exists, without an address of that family
                self.sock.sendto(qid + b"\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00" + question, peer)
                continue
            # a CNAME first, then the address record: the client must walk past both
            cname = b"\xc0\x0c\x00\x05\x00\x01\x00\x00\x00\x3c\x00\x02\xc0\x0c"
            packed = socket.inet_pton(family, ip)
            answer = b"\xc0\x0c" + struct.pack("!HHIH", rtype, 1, 60, len(packed)) + packed
            self.sock.sendto(
                qid + b"\x81\x80\x00\x01\x00\x02\x00\x00\x00\x00" + question + cname + answer, peer
            )

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def serving(handle: Callable[[socket.socket, threading.Event], None]) -> Iterator[int]:
    """A TCP server on 127.0.0.1 handing each connection to `handle(conn, done)` in a thread of
    its own; `done` is set when the block ends (a handler holding a connection open waits on it).
    Yields the port.
    """
    done = threading.Event()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def run(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            handle(conn, done)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=run, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        done.set()
        listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        listener.close()


def read_request(conn: socket.socket) -> bytes:
    """The request's head, once the whole request (head and Content-Length body) is in."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    while length and len(body) < int(length[1]):
        body += conn.recv(65536)
    return head


def silent(conn: socket.socket, done: threading.Event) -> None:
    """A peer that takes the connection, says nothing, and hangs up after 3 s."""
    done.wait(3)


@pytest.fixture
def dns() -> Iterator[FakeDNS]:
    server = FakeDNS({"collector.fleetpulse.invalid": "127.0.0.1"})
    yield server
    server.close()


def test_a_refused_connection_is_a_tcp_error() -> None:
    from fake_collector import closed_port

    with pytest.raises(SendError) as err:
        request("POST", f"http://127.0.0.1:{closed_port()}/v1/ingest", b"{}", {}, cfg())
    assert err.value.step == "tcp"
    assert "refused" in err.value.reason.lower()


def test_a_connection_never_accepted_times_out_on_the_connect_timeout() -> None:
    with socket.socket() as listener, contextlib.ExitStack() as fillers:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        # Fill the accept queue: further SYNs are dropped, as by a firewall that drops.
        for _ in range(64):
            filler = fillers.enter_context(socket.socket())
            filler.settimeout(0.3)
            try:
                filler.connect(listener.getsockname())
            except TimeoutError:
                break
        else:
            raise AssertionError("the accept queue never filled")
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1/ingest"
        with pytest.raises(SendError) as err:
            request("POST", url, b"{}", {}, cfg(connect_timeout=0.3, read_timeout=5))
    # the socket's own timeout, not the kernel's ETIMEDOUT ("Connection timed out") minutes later
    assert (err.value.step, err.value.reason) == ("tcp", "127.0.0.1: timed out")


def test_a_peer_that_accepts_and_never_answers_times_out_on_the_idle_timeout() -> None:
    with serving(silent) as port, pytest.raises(SendError) as err:
        request("POST", f"http://127.0.0.1:{port}/v1/ingest", b"{}", {}, cfg(read_timeout=0.3))
    # before the peer hangs up, which would read "no HTTP answer"
    assert (err.value.step, err.value.reason) == ("http", "no answer for 0.3s")


def test_keepalive_probes_are_tuned_on_the_socket() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        sock, tuned = send.connect([(socket.AF_INET, listener.getsockname())], 1.0)
        with sock:
            assert tuned
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3


def trickle(conn: socket.socket, done: threading.Event) -> None:
    """A chunked answer, one byte every 0.1 s: alive all along, done after 0.6 s."""
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(6):
        time.sleep(0.1)
        conn.sendall(b"1\r\n.\r\n")
    conn.sendall(b"0\r\n\r\n")


def test_where_keepalive_watches_the_peer_a_slow_answer_has_no_overall_cap() -> None:
    with serving(trickle) as port:
        response = request(
            "POST", f"http://127.0.0.1:{port}/", b"x", {}, cfg(read_timeout=5, request_cap=0.3)
        )
    assert (response.status, response.body) == (200, b"......")


def test_without_keepalive_tuning_a_large_cap_bounds_the_whole_request(monkeypatch) -> None:
    monkeypatch.setattr(send, "KEEPALIVE", (("TCP_NO_SUCH_OPTION", 1),))
    with serving(trickle) as port, pytest.raises(SendError) as err:
        request("POST", f"http://127.0.0.1:{port}/", b"x", {}, cfg(read_timeout=5, request_cap=0.3))
    assert (err.value.step, err.value.reason) == ("http", "no complete answer in time")


def test_when_the_system_resolver_fails_the_fallback_resolvers_are_asked(dns, collector) -> None:
    url = f"http://collector.fleetpulse.invalid:{collector.port}/v1/ingest"
    response = request("GET", url, b"", {}, cfg(dns_fallback=[("127.0.0.1", 9), dns.address]))
    assert response.status == 200
    assert dns.queries == ["collector.fleetpulse.invalid"] * 2  # A and AAAA


class _V6Server(HTTPServer):
    address_family = socket.AF_INET6


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_fallback_resolver_gives_ipv6_addresses_too(dns) -> None:
    server = _V6Server(("::1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        dns.records["v6.fleetpulse.invalid"] = "::1"  # an AAAA record only
        url = f"http://v6.fleetpulse.invalid:{server.server_address[1]}/v1/health"
        response = request("GET", url, b"", {}, cfg(dns_fallback=[dns.address]))
    finally:
        server.shutdown()
        server.server_close()
    assert (response.status, response.body) == (200, b"ok")


def test_the_fallback_resolver_is_the_vpcs_unless_configured() -> None:
    assert config.load(env={}, require_url=False).dns_fallback == [("169.254.169.253", 53)]


def test_when_every_resolver_fails_the_error_says_so(dns) -> None:
    with pytest.raises(SendError) as err:
        request(
            "GET", "http://unknown.fleetpulse.invalid/", b"", {}, cfg(dns_fallback=[dns.address])
        )
    assert err.value.step == "dns"
    assert "DNS error code 3" in err.value.reason


def make_cert(tmp_path: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_collector(tmp_path) -> Iterator[tuple[FakeCollector, Path]]:
    cert, key = make_cert(tmp_path, "collector.fleetpulse.invalid")
    with FakeCollector() as collector:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        collector.server.socket = context.wrap_socket(collector.server.socket, server_side=True)
        yield collector, cert


def test_tls_through_a_fallback_resolver_is_verified_against_the_real_name(
    dns, tls_collector
) -> None:
    collector, cert = tls_collector
    url = f"https://collector.fleetpulse.invalid:{collector.port}/v1/health"
    response = request("GET", url, b"", {}, cfg(dns_fallback=[dns.address], ca_file=str(cert)))
    assert response.status == 200
    assert dns.queries == ["collector.fleetpulse.invalid"] * 2  # A and AAAA, from the fallback


def test_tls_to_a_certificate_for_another_name_is_refused(dns, tls_collector, tmp_path) -> None:
    collector, cert = tls_collector
    dns.records["impostor.fleetpulse.invalid"] = "127.0.0.1"
    url = f"https://impostor.fleetpulse.invalid:{collector.port}/v1/health"
    with pytest.raises(SendError) as err:
        request("GET", url, b"", {}, cfg(dns_fallback=[dns.address], ca_file=str(cert)))
    assert err.value.step == "tls"
    assert "certificate" in err.value.reason.lower() or "hostname" in err.value.reason.lower()


@pytest.fixture
def slow_tls(tmp_path) -> Iterator[tuple[int, Path]]:
    """A TLS server for collector.fleetpulse.invalid that starts its handshake 1.5 s late."""
    cert, key = make_cert(tmp_path, "collector.fleetpulse.invalid")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def handle(conn: socket.socket, done: threading.Event) -> None:
        done.wait(1.5)
        with context.wrap_socket(conn, server_side=True) as tls:
            read_request(tls)
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    with serving(handle) as port:
        yield port, cert


def test_a_slow_tls_handshake_times_out_on_the_tls_timeout(dns, slow_tls) -> None:
    port, cert = slow_tls
    url = f"https://collector.fleetpulse.invalid:{port}/v1/health"
    # every other timeout outlasts the server's delay: only tls_timeout can end the wait
    patient = {"connect_timeout": 5, "read_timeout": 5, "dns_fallback": [dns.address]}
    with pytest.raises(SendError) as err:
        request("GET", url, b"", {}, cfg(tls_timeout=0.2, ca_file=str(cert), **patient))
    assert (err.value.step, err.value.reason) == ("tls", "timed out")
    # the same server, given the time, is reached through the fallback resolver
    response = request("GET", url, b"", {}, cfg(tls_timeout=10, ca_file=str(cert), **patient))
    assert (response.status, response.body) == (200, b"ok")


ANSWERS = {
    "to the close": (b"HTTP/1.0 202 Accepted\r\n\r\nhello world", False),
    "to its length, on a connection kept open": (
        b"HTTP/1.1 202 Accepted\r\nContent-Length: 11\r\n\r\nhello worldEXTRA",
        True,
    ),
    "chunked, with an extension and a trailer, on a connection kept open": (
        b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;note=x\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: 1\r\n\r\n",
        True,
    ),
}


@pytest.mark.parametrize("framing", ANSWERS)
def test_answers_are_read_however_they_are_framed(framing) -> None:
    raw, kept_open = ANSWERS[framing]
    heads: list[bytes] = []

    def handle(conn: socket.socket, done: threading.Event) -> None:
        heads.append(read_request(conn))
        conn.sendall(raw)
        if kept_open:
            done.wait(30)  # a reader waiting for the close would wait out its read_timeout

    with serving(handle) as port:
        response = request(
            "POST",
            f"http://127.0.0.1:{port}/v1/ingest?x=1",
            b"x",
            {"X-Test": "1"},
            cfg(read_timeout=5),
        )
    assert (response.status, response.reason, response.body) == (202, "Accepted", b"hello world")
    lines = heads[0].decode().split("\r\n")
    assert lines[0] == "POST /v1/ingest?x=1 HTTP/1.1"
    assert {f"Host: 127.0.0.1:{port}", "X-Test: 1", "Content-Length: 1"} <= set(lines[1:])


CUT_SHORT = {
    "by its length": b"HTTP/1.1 503 Busy\r\nContent-Length: 100\r\n\r\nbusy",
    "in a chunk": b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbusy\r\n9\r\n",
}


@pytest.mark.parametrize("where", CUT_SHORT)
def test_an_answer_cut_short_keeps_its_status_and_what_came(where) -> None:
    def handle(conn: socket.socket, done: threading.Event) -> None:
        read_request(conn)
        conn.sendall(CUT_SHORT[where])

    with serving(handle) as port:
        response = request("POST", f"http://127.0.0.1:{port}/", b"x", {}, cfg(read_timeout=5))
    assert (response.status, response.body) == (503, b"busy")


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = 1_763_700_000.0
    assert retry_after("30", now) == 30
    assert retry_after(" 30 ", now) == 30
    assert retry_after("Fri, 21 Nov 2025 04:41:00 GMT", now) == pytest.approx(1_763_700_060 - now)
    assert retry_after("Fri, 21 Nov 2025 05:41:00 +0100", now) == pytest.approx(60)
    assert retry_after("Fri, 21 Nov 2025 04:39:00 GMT", now) == 0  # already past


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "soon",
        "1.5",
        "-5",
        "\u0663\u0660",  # digits, but not ASCII ones
        "Fri, 21 Nov 2025 04:41:00 -0000",  # no zone: local time would be a guess
        "Fri, 21 Nov 2025 04:41:00",
    ],
)
def test_retry_after_refuses_what_is_not_seconds_or_a_zoned_date(value) -> None:
    assert retry_after(value, 1_763_700_000.0) is None


def test_dns_ids_are_checked(dns) -> None:
    # an answer with a foreign id is ignored; the query then times out
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as liar:
        liar.bind(("127.0.0.1", 0))

        def lie() -> None:
            data, peer = liar.recvfrom(512)
            wrong = struct.pack("!H", (struct.unpack("!H", data[:2])[0] + 1) % 65536)
            liar.sendto(wrong + data[2:], peer)

        threading.Thread(target=lie, daemon=True).start()
        with pytest.raises(OSError):
            send.query_a("collector.fleetpulse.invalid", liar.getsockname(), 0.3)


NOT_HTTP = {
    "a close before any answer": (
        b"",
        "no HTTP answer (Remote end closed connection without response)",
    ),
    "another protocol": (b"SSH-2.0-OpenSSH_9.2\r\n", "no HTTP answer (SSH-2.0-OpenSSH_9.2)"),
}


@pytest.mark.parametrize("peer", NOT_HTTP)
def test_a_peer_that_does_not_answer_in_http_is_an_http_error(peer) -> None:
    raw, reason = NOT_HTTP[peer]

    def handle(conn: socket.socket, done: threading.Event) -> None:
        read_request(conn)
        conn.sendall(raw)

    with serving(handle) as port, pytest.raises(SendError) as err:
        request("POST", f"http://127.0.0.1:{port}/", b"x", {}, cfg(read_timeout=5))
    assert (err.value.step, err.value.reason) == ("http", reason)


@pytest.mark.parametrize(
    ("scheme", "host", "port", "header"),
    [
        ("https", "collector.example", 443, "Host: collector.example"),
        ("http", "collector.example", 80, "Host: collector.example"),
        ("https", "collector.example", 8443, "Host: collector.example:8443"),
        ("http", "::1", 80, "Host: [::1]"),
    ],
)
def test_the_host_header_leaves_out_the_schemes_default_port(scheme, host, port, header) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        answered = []

        def collector() -> None:
            answered.append(read_request(theirs).decode().split("\r\n"))
            theirs.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

        thread = threading.Thread(target=collector, daemon=True)
        thread.start()
        wire = send.Wire(ours, 5, None)
        response = send.exchange(wire, "GET", send.Target(scheme, host, port, "/"), b"", {})
        thread.join(5)
    assert response.status == 204
    assert header in answered[0][1:]
