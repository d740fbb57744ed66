"""The probers against real servers on 127.0.0.1: every verdict and its precise reason."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.adapters.probes import probe
from chalicelib.core.alert_message import Severity
from chalicelib.core.checks import Phase, parse_check
from tests.support.targets import WebServer, tls_context


def check(**spec):
    return parse_check({"name": "t", **spec}, "us-east-1")


def phases(result):
    return [p for p, _ in result.phases]


def test_http_up_with_each_phase_timed(web):
    result = probe(check(type="http", url=web.url(), body_contains="ok"), "us-east-1")
    assert result.up, result.reason
    assert result.fields["status_code"] == 200
    assert phases(result) == [Phase.DNS, Phase.CONNECT, Phase.REQUEST, Phase.BODY]
    assert all(ms >= 0 for _, ms in result.phases)
    assert result.latency_ms >= sum(ms for _, ms in result.phases) * 0.99
    assert web.hits == ["/health"]


def test_http_unexpected_status_and_body_mismatch(web):
    web.status = 503
    down = probe(check(type="http", url=web.url()), "us-east-1")
    assert not down.up
    assert down.reason == "unexpected status 503 (expected 200-399)"
    assert down.fields["status_code"] == 503
    assert down.severity is Severity.CRITICAL
    web.status = 200
    body = probe(check(type="http", url=web.url(), body_regex=r"status: \d+"), "us-east-1")
    assert body.reason == r"body mismatch: /status: \d+/ does not match"
    web.status = 503
    accepted = probe(check(type="http", url=web.url(), expect_status=["500-503"]), "us-east-1")
    assert accepted.up


def test_http_request_timeout_names_the_phase(web):
    result = probe(check(type="http", url=web.url("/hang"), timeout="1s"), "us-east-1")
    assert result.reason == "request: timeout after 1s"
    assert phases(result)[-1] is Phase.REQUEST


def test_connection_refused_and_connect_timeout(tcp_ports):
    refused = probe(check(type="tcp", host="127.0.0.1", port=tcp_ports.refused_port), "x")
    assert refused.reason == f"connect: connection refused (127.0.0.1:{tcp_ports.refused_port})"
    silent = probe(
        check(type="tcp", host="127.0.0.1", port=tcp_ports.silent_port, timeout="1s"), "x"
    )
    assert silent.reason == f"connect: timeout after 1s (127.0.0.1:{tcp_ports.silent_port})"
    up = probe(check(type="tcp", host="127.0.0.1", port=tcp_ports.open_port), "x")
    assert up.up
    assert phases(up) == [Phase.DNS, Phase.CONNECT]


def test_an_unknown_host_is_nxdomain():
    result = probe(check(type="tcp", host="no-such-host.invalid", port=80), "x")
    assert result.reason == "dns: no-such-host.invalid: no such host (NXDOMAIN)"
    assert phases(result) == [Phase.DNS]


def test_tls_handshake_timeout_on_a_silent_listener(tcp_ports, trusted_ca):
    result = probe(check(type="tls", host="127.0.0.1", port=tcp_ports.open_port, timeout="1s"), "x")
    assert result.reason == "tls: timeout after 1s"


@pytest.fixture
def https(trusted_ca):
    servers = []

    def serve(label, **leaf):
        server = WebServer(tls_context(*trusted_ca.leaf(label, **leaf)))
        servers.append(server)
        return server

    yield serve
    for server in servers:
        server.stop()


def test_https_with_a_valid_certificate_reports_its_days_left(https):
    server = https("valid")
    result = probe(check(type="http", url=server.url()), "x")
    assert result.up, result.reason
    assert phases(result) == [Phase.DNS, Phase.CONNECT, Phase.TLS, Phase.REQUEST, Phase.BODY]
    assert 89 < result.fields["cert_days_left"] <= 90


def test_tls_certificate_expiring_in_3_days_warns_then_goes_critical(https):
    server = https("soon", not_after=timedelta(days=3))
    warn = probe(check(type="tls", host="127.0.0.1", port=server.port, critical_days=2), "x")
    assert not warn.up
    assert warn.severity is Severity.WARNING
    assert warn.reason.startswith("tls: certificate expires in 3.0 days (warning under 21)")
    crit = probe(check(type="tls", host="127.0.0.1", port=server.port), "x")
    assert crit.severity is Severity.CRITICAL
    assert "critical under 7" in crit.reason
    assert 2.9 < crit.fields["cert_days_left"] <= 3


@pytest.mark.parametrize(
    ("leaf", "reason"),
    [
        ({"not_after": timedelta(days=-1)}, "tls: certificate expired"),
        ({"ip": None, "dns": "other.example"}, "tls: wrong name: "),
        ({"self_signed": True}, "tls: untrusted chain: "),
    ],
)
def test_https_certificate_problems_are_named(https, leaf, reason):
    server = https("bad", **leaf)
    for spec in (
        {"type": "http", "url": server.url()},
        {"type": "tls", "host": "127.0.0.1", "port": server.port},
    ):
        result = probe(check(**spec), "x")
        assert not result.up
        assert result.reason.startswith(reason), result.reason
        assert phases(result)[-1] is Phase.TLS


def test_dns_answers_match_what_is_expected(dns_server):
    ok = probe(
        check(
            type="dns",
            query="ok.test",
            server=dns_server.server,
            expect=["192.0.2.10"],
        ),
        "x",
    )
    assert ok.up, ok.reason
    assert ok.fields["answers"] == "192.0.2.10,192.0.2.11"
    mx = probe(check(type="dns", query="mail.test", record="MX", server=dns_server.server), "x")
    assert mx.fields["answers"] == "10 mx1.test"
    wrong = probe(
        check(type="dns", query="ok.test", server=dns_server.server, expect=["192.0.2.99"]), "x"
    )
    assert wrong.reason == ("dns: ok.test A: got 192.0.2.10, 192.0.2.11; expected 192.0.2.99")
    assert dns_server.queries[:1] == ["ok.test. A"]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("missing.test", "dns: missing.test A: NXDOMAIN"),
        ("broken.test", "dns: broken.test A: SERVFAIL"),
        ("mail.test", "dns: mail.test A: no answer"),
    ],
)
def test_dns_failures_are_named(dns_server, query, reason):
    result = probe(check(type="dns", query=query, server=dns_server.server), "x")
    assert result.reason == reason
    assert not result.up


def test_a_silent_dns_server_is_a_query_timeout(dns_server):
    result = probe(
        check(type="dns", query="silent.test", server=dns_server.server, timeout="1s"), "x"
    )
    assert result.reason == f"query: timeout after 1s ({dns_server.server})"
    assert phases(result) == [Phase.QUERY]
