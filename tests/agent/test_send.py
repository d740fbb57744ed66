"""The transport on real sockets: fallback DNS, TLS checked against the real name, timeouts."""

from __future__ import annotations

import datetime
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
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


def test_a_peer_that_accepts_and_never_answers_times_out_on_the_idle_timeout() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(SendError) as err:
            request("POST", f"http://127.0.0.1:{port}/v1/ingest", b"{}", {}, cfg(read_timeout=0.3))
        assert 0.3 <= time.monotonic() - started < 2
        assert err.value.reason == "no answer for 0.3s"


def test_keepalive_probes_are_tuned_on_the_socket() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        sock, tuned = send.connect([(socket.AF_INET, listener.getsockname())], 1.0)
        with sock:
            assert tuned
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3


def test_without_keepalive_tuning_a_large_cap_bounds_the_whole_request(monkeypatch) -> None:
    monkeypatch.setattr(send, "KEEPALIVE", (("TCP_NO_SUCH_OPTION", 1),))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with pytest.raises(SendError) as err:
            request(
                "POST",
                f"http://127.0.0.1:{listener.getsockname()[1]}/",
                b"x",
                {},
                cfg(read_timeout=30, request_cap=0.3),
            )
        assert "in time" in err.value.reason or "no answer" in err.value.reason


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


def test_tls_to_a_certificate_for_another_name_is_refused(dns, tls_collector, tmp_path) -> None:
    collector, cert = tls_collector
    dns.records["impostor.fleetpulse.invalid"] = "127.0.0.1"
    url = f"https://impostor.fleetpulse.invalid:{collector.port}/v1/health"
    with pytest.raises(SendError) as err:
        request("GET", url, b"", {}, cfg(dns_fallback=[dns.address], ca_file=str(cert)))
    assert err.value.step == "tls"
    assert "certificate" in err.value.reason.lower() or "hostname" in err.value.reason.lower()


def test_a_tls_handshake_that_never_comes_times_out() -> None:
    with socket.socket() as listener:  # accepts TCP, never speaks TLS
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        started = time.monotonic()
        with pytest.raises(SendError) as err:
            request(
                "GET",
                f"https://127.0.0.1:{listener.getsockname()[1]}/",
                b"",
                {},
                cfg(tls_timeout=0.3),
            )
        assert err.value.step == "tls"
        assert time.monotonic() - started < 2


def test_answers_are_read_to_their_length_or_to_the_close() -> None:
    answers = [
        b"HTTP/1.0 202 Accepted\r\n\r\nhello world",
        b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\nRetry-After: 7\r\n\r\nbusyEXTRA",
    ]
    for raw in answers:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()

            def serve(raw: bytes = raw) -> None:
                conn, _ = listener.accept()
                with conn:
                    conn.recv(65536)
                    conn.sendall(raw)

            threading.Thread(target=serve, daemon=True).start()
            response = request(
                "POST", f"http://127.0.0.1:{listener.getsockname()[1]}/", b"x", {}, cfg()
            )
        if response.status == 202:
            assert response.body == b"hello world"
        else:
            assert (response.body, response.headers["retry-after"]) == (b"busy", "7")


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = 1_763_700_000.0
    assert retry_after("30", now) == 30
    assert retry_after("Fri, 21 Nov 2025 04:41:00 GMT", now) == pytest.approx(1_763_700_060 - now)
    assert retry_after("Fri, 21 Nov 2025 04:39:00 GMT", now) == 0  # already past
    assert retry_after("soon", now) is None
    assert retry_after(None, now) is None


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
