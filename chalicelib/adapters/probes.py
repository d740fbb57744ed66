"""The probers: one function per protocol, each timing its phases and naming why it failed.

Shaped like blackbox_exporter's probers: resolve, connect, TLS handshake,
request, then a verdict. Every phase runs under what is left of the check's
timeout, so a timeout names its phase. HTTP goes through http.client (one
request, no retries, no redirects followed: a redirect is a status to judge);
DNS through dnspython, imported when a DNS check first runs.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from chalicelib.core.alert_message import Severity
from chalicelib.core.checks import Check, CheckType, Phase, ProbeResult, split_server
from chalicelib.core.models import FieldValue
from chalicelib.core.text import clip

MAX_BODY = 1024 * 1024  # read at most this much of a body to match it
USER_AGENT = "fleetpulse-check/1"


class ProbeFailed(Exception):
    """A run failed with a reason fit for an alert (`connect: connection refused`)."""

    def __init__(self, reason: str, severity: Severity | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.severity = severity


@dataclass
class Timer:
    """The check's deadline, and each phase's duration."""

    timeout: float
    started: float = field(default_factory=time.perf_counter)
    phases: list[tuple[Phase, float]] = field(default_factory=list)
    fields: dict[str, FieldValue] = field(default_factory=dict)
    _phase_started: float = 0.0
    phase: Phase = Phase.DNS

    def left(self) -> float:
        left = self.timeout - (time.perf_counter() - self.started)
        if left <= 0:
            raise ProbeFailed(f"{self.phase.value}: timeout after {self.timeout:g}s")
        return left

    def begin(self, phase: Phase) -> float:
        self.phase = phase
        self._phase_started = time.perf_counter()
        return self.left()

    def end(self) -> None:
        self.phases.append((self.phase, (time.perf_counter() - self._phase_started) * 1000))

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000


def probe(check: Check, location: str, now: datetime | None = None) -> ProbeResult:
    """Run `check` once. Never raises for what the target does: a failure is a result."""
    at = now or datetime.now(UTC)
    timer = Timer(check.timeout.total_seconds())
    try:
        PROBERS[check.type](check, timer)
    except ProbeFailed as exc:
        if not timer.phases or timer.phases[-1][0] is not timer.phase:
            timer.end()
        return _result(check, location, at, timer, exc.reason, exc.severity or check.severity)
    except Exception as exc:  # a prober bug must not take the batch down
        return _result(
            check,
            location,
            at,
            timer,
            f"{timer.phase.value}: {type(exc).__name__}: {exc}",
            check.severity,
        )
    return _result(check, location, at, timer, "ok", None)


def _result(  # noqa: PLR0917
    check: Check,
    location: str,
    at: datetime,
    timer: Timer,
    reason: str,
    severity: Severity | None,
) -> ProbeResult:
    return ProbeResult(
        check=check.name,
        location=location,
        at=at,
        up=severity is None,
        reason=clip(reason, 300),
        latency_ms=timer.elapsed_ms(),
        severity=severity,
        phases=tuple(timer.phases),
        fields=timer.fields,
    )


def _resolve(host: str, port: int, timer: Timer) -> tuple[Any, ...]:
    timer.begin(Phase.DNS)
    try:
        # getaddrinfo has no timeout of its own; the system resolver's applies.
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)):
            raise ProbeFailed(f"dns: {host}: no such host (NXDOMAIN)") from None
        raise ProbeFailed(f"dns: {host}: {exc.strerror}") from None
    timer.end()
    timer.left()
    return infos[0]


def _connect(host: str, port: int, timer: Timer) -> socket.socket:
    family, kind, proto, _, address = _resolve(host, port, timer)
    timer.begin(Phase.CONNECT)
    sock = socket.socket(family, kind, proto)
    sock.settimeout(timer.left())
    try:
        sock.connect(address)
    except TimeoutError:
        sock.close()
        raise ProbeFailed(f"connect: timeout after {timer.timeout:g}s ({host}:{port})") from None
    except ConnectionRefusedError:
        sock.close()
        raise ProbeFailed(f"connect: connection refused ({host}:{port})") from None
    except OSError as exc:
        sock.close()
        raise ProbeFailed(f"connect: {exc.strerror or exc} ({host}:{port})") from None
    timer.end()
    return sock


def _tls(sock: socket.socket, host: str, timer: Timer, verify: bool = True) -> ssl.SSLSocket:
    timer.begin(Phase.TLS)
    context = ssl.create_default_context(cafile=_CA_FILE[0]) if verify else _unverified()
    sock.settimeout(timer.left())
    try:
        tls = context.wrap_socket(sock, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        sock.close()
        raise ProbeFailed(f"tls: {_verify_reason(exc)}") from None
    except TimeoutError:
        sock.close()
        raise ProbeFailed(f"tls: timeout after {timer.timeout:g}s") from None
    except (ssl.SSLError, OSError) as exc:
        sock.close()
        raise ProbeFailed(f"tls: handshake failed: {getattr(exc, 'reason', None) or exc}") from None
    timer.end()
    return tls


# Tests and private CAs: FLEETPULSE_CHECKS_CA_FILE adds a bundle (None: the system's).
_CA_FILE: list[str | None] = [None]


def use_ca_file(path: str | None) -> None:
    _CA_FILE[0] = path


def _unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _verify_reason(exc: ssl.SSLCertVerificationError) -> str:
    message = exc.verify_message or str(exc)
    code = exc.verify_code
    if code == 10:  # X509_V_ERR_CERT_HAS_EXPIRED
        return "certificate expired"
    if code == 9:  # X509_V_ERR_CERT_NOT_YET_VALID
        return "certificate not yet valid"
    if code in (62, 64) or "mismatch" in message.lower() or "doesn't match" in message:
        return f"wrong name: {message}"
    if code in (18, 19, 20, 21):  # self-signed, self-signed in chain, no issuer
        return f"untrusted chain: {message}"
    return f"certificate rejected: {message}"


def _cert_days_left(tls: ssl.SSLSocket, timer: Timer) -> float:
    cert = tls.getpeercert()
    not_after = cert.get("notAfter") if cert else None
    if not isinstance(not_after, str):
        raise ProbeFailed("tls: the server sent no certificate")
    expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), UTC)
    days = (expires - datetime.now(UTC)) / timedelta(days=1)
    timer.fields["cert_days_left"] = round(days, 2)
    return days


def probe_tcp(check: Check, timer: Timer) -> None:
    assert check.host is not None
    assert check.port is not None
    _connect(check.host, check.port, timer).close()


def probe_tls(check: Check, timer: Timer) -> None:
    assert check.host is not None
    assert check.port is not None
    sock = _connect(check.host, check.port, timer)
    tls = _tls(sock, check.host, timer)
    try:
        days = _cert_days_left(tls, timer)
    finally:
        tls.close()
    critical = check.critical_days or 0
    warning = check.warning_days or 0
    if days < critical:
        raise ProbeFailed(
            f"tls: certificate expires in {days:.1f} days (critical under {critical})",
            Severity.CRITICAL,
        )
    if days < warning:
        raise ProbeFailed(
            f"tls: certificate expires in {days:.1f} days (warning under {warning})",
            Severity.WARNING,
        )


def probe_http(check: Check, timer: Timer) -> None:
    assert check.url is not None
    url = urlsplit(check.url)
    host = url.hostname or ""
    secure = url.scheme == "https"
    port = url.port or (443 if secure else 80)
    sock: socket.socket = _connect(host, port, timer)
    if secure:
        sock = _tls(sock, host, timer)
        _cert_days_left(sock, timer)
    timer.begin(Phase.REQUEST)
    conn = http.client.HTTPConnection(host, port, timeout=timer.left())
    conn.sock = sock
    target = (url.path or "/") + (f"?{url.query}" if url.query else "")
    header_host = host if url.port is None else f"{host}:{url.port}"
    try:
        conn.request(
            check.method,
            target,
            headers={"Host": header_host, "User-Agent": USER_AGENT, "Connection": "close"},
        )
        response = conn.getresponse()
        timer.end()
        timer.begin(Phase.BODY)
        sock.settimeout(timer.left())
        body = response.read(MAX_BODY) if check.method != "HEAD" else b""
        timer.end()
    except TimeoutError:
        raise ProbeFailed(f"{timer.phase.value}: timeout after {timer.timeout:g}s") from None
    except (http.client.HTTPException, OSError) as exc:
        raise ProbeFailed(f"{timer.phase.value}: {type(exc).__name__}: {exc}") from None
    finally:
        conn.close()
    status = response.status
    timer.fields["status_code"] = status
    if not any(low <= status <= high for low, high in check.expect_status):
        wanted = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in check.expect_status)
        raise ProbeFailed(f"unexpected status {status} (expected {wanted})")
    text = body.decode("utf-8", "replace")
    if check.body_contains is not None and check.body_contains not in text:
        raise ProbeFailed(f"body mismatch: {check.body_contains!r} not found")
    if check.body_regex is not None and re.search(check.body_regex, text) is None:
        raise ProbeFailed(f"body mismatch: /{check.body_regex}/ does not match")


def probe_dns(check: Check, timer: Timer) -> None:
    import dns.exception
    import dns.flags
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype
    import dns.resolver

    assert check.query is not None
    timer.begin(Phase.QUERY)
    if check.server is not None:
        server = split_server(check.server)
        assert server is not None
        address = _server_address(server[0], timer)
        timer.begin(Phase.QUERY)
        query = dns.message.make_query(check.query, check.record)
        try:
            response = dns.query.udp(query, address, timeout=timer.left(), port=server[1])
            if response.flags & dns.flags.TC:
                response = dns.query.tcp(query, address, timeout=timer.left(), port=server[1])
        except dns.exception.Timeout:
            raise ProbeFailed(f"query: timeout after {timer.timeout:g}s ({check.server})") from None
        except OSError as exc:
            raise ProbeFailed(f"query: {exc.strerror or exc} ({check.server})") from None
        except dns.exception.DNSException as exc:
            raise ProbeFailed(f"query: {exc}") from None
        timer.end()
        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR:
            raise ProbeFailed(f"dns: {check.query} {check.record}: {dns.rcode.to_text(rcode)}")
        wanted = dns.rdatatype.from_text(check.record)
        answers = sorted(
            _answer_text(rdata)
            for rrset in response.answer
            if rrset.rdtype == wanted
            for rdata in rrset
        )
    else:
        resolver = dns.resolver.Resolver()
        resolver.lifetime = timer.left()
        try:
            found = resolver.resolve(check.query, check.record)
        except dns.resolver.NXDOMAIN:
            raise ProbeFailed(f"dns: {check.query} {check.record}: NXDOMAIN") from None
        except dns.resolver.NoAnswer:
            found = None
        except dns.resolver.LifetimeTimeout:
            raise ProbeFailed(f"query: timeout after {timer.timeout:g}s") from None
        except dns.resolver.NoNameservers as exc:
            raise ProbeFailed(f"dns: {check.query} {check.record}: SERVFAIL ({exc})") from None
        timer.end()
        answers = sorted(_answer_text(r) for r in found) if found is not None else []
    timer.fields["answers"] = clip(",".join(answers), 300)
    if not answers:
        raise ProbeFailed(f"dns: {check.query} {check.record}: no answer")
    if check.expect:
        missing = sorted(set(check.expect) - set(answers))
        if missing:
            raise ProbeFailed(
                f"dns: {check.query} {check.record}: got {', '.join(answers)}; "
                f"expected {', '.join(check.expect)}"
            )


def _server_address(host: str, timer: Timer) -> str:
    try:
        import ipaddress

        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    address = _resolve(host, 53, timer)[4]
    return str(address[0])


def _answer_text(rdata: Any) -> str:
    text = rdata.to_text()
    if text.startswith('"') and text.endswith('"'):
        text = text[1:-1]
    return str(text).rstrip(".") if not text.endswith("..") else str(text)


PROBERS = {
    CheckType.HTTP: probe_http,
    CheckType.TCP: probe_tcp,
    CheckType.DNS: probe_dns,
    CheckType.TLS: probe_tls,
}
