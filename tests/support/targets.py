"""Real targets for checks on 127.0.0.1: HTTP(S) with minted certificates, TCP ports that
answer, refuse or stay silent, and a UDP DNS server that answers, fails or says nothing."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest


@dataclass
class Pki:
    """A test CA and leaf certificates it signs (or that nobody signs)."""

    root: Path
    ca_file: Path = field(init=False)

    def __post_init__(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self._x509, self._hashes, self._ser, self._ec, self._oid = (
            x509,
            hashes,
            serialization,
            ec,
            NameOID,
        )
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleetpulse test CA")])
        now = datetime.now(UTC)
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=30))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key()), critical=False
            )
            .sign(self.ca_key, hashes.SHA256())
        )
        self.ca_file = self.root / "ca.pem"
        self.ca_file.write_bytes(self.ca_cert.public_bytes(serialization.Encoding.PEM))

    def leaf(
        self,
        label: str,
        *,
        ip: str | None = "127.0.0.1",
        dns: str | None = None,
        not_after: timedelta = timedelta(days=90),
        not_before: timedelta = timedelta(days=-30),
        self_signed: bool = False,
    ) -> tuple[Path, Path]:
        """(cert file, key file) for a leaf valid from now+not_before to now+not_after."""
        import ipaddress

        x509, hashes, ser, ec = self._x509, self._hashes, self._ser, self._ec
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        sans: list[Any] = []
        if ip:
            sans.append(x509.IPAddress(ipaddress.ip_address(ip)))
        if dns:
            sans.append(x509.DNSName(dns))
        subject = x509.Name([x509.NameAttribute(self._oid.COMMON_NAME, label)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject if self_signed else self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + not_before)
            .not_valid_after(now + not_after)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if not self_signed:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                critical=False,
            )
        cert = builder.sign(key if self_signed else self.ca_key, hashes.SHA256())
        cert_file, key_file = self.root / f"{label}.pem", self.root / f"{label}.key"
        cert_file.write_bytes(cert.public_bytes(ser.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
        )
        return cert_file, key_file


class _Handler(BaseHTTPRequestHandler):
    server: WebServer

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        self.server.hit.set()
        if self.path.startswith("/hang"):
            watched = self.server.watch
            if watched is not None:
                # Did another target get its request while this one was held?
                self.server.saw_watched = watched.hit.wait(self.server.watch_for)
            self.server.release.wait(30)
            return
        status = self.server.status
        body = self.server.body
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class WebServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.status = 200
        self.body = b"status: ok\n"
        self.hits: list[str] = []
        self.hit = threading.Event()
        self.release = threading.Event()
        self.watch: WebServer | None = None
        self.watch_for = 0.0
        self.saw_watched: bool | None = None
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str = "/health", scheme: str | None = None) -> str:
        scheme = scheme or ("https" if isinstance(self.socket, ssl.SSLSocket) else "http")
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a probe that hangs up mid-handshake is not this server's news

    def stop(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


@pytest.fixture
def web() -> Iterator[WebServer]:
    server = WebServer()
    yield server
    server.stop()


@pytest.fixture
def trusted_ca(pki: Pki) -> Iterator[Pki]:
    """The probes trust the test CA (FLEETPULSE_CHECKS_CA_FILE's effect)."""
    from chalicelib.adapters import probes

    probes.use_ca_file(str(pki.ca_file))
    yield pki
    probes.use_ca_file(None)


class TcpPorts:
    """A listener that accepts, a port that refuses, and one that never completes a connect."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.open_port = self.listener.getsockname()[1]
        # Bound, not listening: the kernel answers a connect with RST (refused).
        self.closed = socket.socket()
        self.closed.bind(("127.0.0.1", 0))
        self.refused_port = self.closed.getsockname()[1]
        # Listening with a full backlog nobody accepts: further SYNs are dropped.
        self.full = socket.socket()
        self.full.bind(("127.0.0.1", 0))
        self.full.listen(0)
        self.silent_port = self.full.getsockname()[1]
        self._fillers: list[socket.socket] = []
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", self.silent_port))
            self._fillers.append(s)
        self._accepting = True
        self._accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.listener.settimeout(0.1)
        while self._accepting:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._accepted.append(conn)  # held open, silent: a TLS probe times out on it

    def close(self) -> None:
        self._accepting = False
        for s in [self.listener, self.closed, self.full, *self._fillers, *self._accepted]:
            s.close()


@pytest.fixture
def tcp_ports() -> Iterator[TcpPorts]:
    ports = TcpPorts()
    yield ports
    ports.close()


class DnsServer:
    """UDP DNS on 127.0.0.1: `<name>.test.` answers from `records`; `broken.test.` is
    SERVFAIL; `silent.test.` gets no reply; anything else is NXDOMAIN."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.records: dict[tuple[str, str], list[str]] = {
            ("ok.test.", "A"): ["192.0.2.10", "192.0.2.11"],
            ("mail.test.", "MX"): ["10 mx1.test."],
        }
        self.queries: list[str] = []
        self._running = True
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        import dns.message
        import dns.rcode
        import dns.rdatatype
        import dns.rrset

        self.sock.settimeout(0.1)
        while self._running:
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            query = dns.message.from_wire(data)
            question = query.question[0]
            name = question.name.to_text()
            rtype = dns.rdatatype.to_text(question.rdtype)
            self.queries.append(f"{name} {rtype}")
            if name == "silent.test.":
                continue
            response = dns.message.make_response(query)
            answers = self.records.get((name, rtype))
            if name == "broken.test.":
                response.set_rcode(dns.rcode.SERVFAIL)
            elif answers is not None:
                response.answer.append(dns.rrset.from_text_list(name, 60, "IN", rtype, answers))
            elif not any(n == name for n, _ in self.records):
                response.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(response.to_wire(), peer)

    def close(self) -> None:
        self._running = False
        self.sock.close()


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    server = DnsServer()
    yield server
    server.close()
