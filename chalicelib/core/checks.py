"""Remote checks: definitions, results as data, and their alerts, decided from stored state.

Pure: no network and no storage. A check is validated here (from the YAML
file or one PUT body: the same schema, the same messages naming the check and
the field); the probers (chalicelib.adapters.probes) run it; the use-case
(chalicelib.services.checks) stores each location's result and hands the
per-location state to `check_changes`, which decides the alert through the
same state machine as every other alert (core/alerts.py `step`).

An alert is pending while at least `quorum` locations saw a failure but fewer
than `quorum` saw `failures` in a row; it fires once they did, and resolves
on the first run that finds `quorum` locations good. Anything in between (too
few fresh results either way) keeps the alert as it is.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypedDict
from urllib.parse import urlsplit

from chalicelib.core.alert_message import AlertKind, Severity
from chalicelib.core.alerts import (
    SEVERITY_RANK,
    AlertChange,
    AlertRecord,
    Observation,
    StepContext,
    Timing,
    step,
)
from chalicelib.core.durations import format_duration
from chalicelib.core.models import FieldValue, HostReport, Point
from chalicelib.core.rules import RulesError, _Problems
from chalicelib.core.templates import Template
from chalicelib.core.text import clip

CHECK_MEASUREMENT = "check"
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}\Z")
LOCATION_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}\Z")
MIN_EVERY = timedelta(seconds=10)
MAX_EVERY = timedelta(hours=1)
MAX_TIMEOUT = timedelta(seconds=60)
MAX_LOCATIONS = 16
MAX_REASON = 300
MAX_BODY_MATCH = 1024
DEFAULT_SUMMARY = "{check} failing from {failing} of {locations}: {reason}"
DEFAULT_TEMPLATE = Template(DEFAULT_SUMMARY)
SUMMARY_NAMES: dict[str, Any] = {
    "check": "api-health",
    "failing": 2,
    "locations": 3,
    "failing_locations": "us-east-1, eu-west-1",
    "reason": "connection refused",
    "host": "api.example.com",
    "type": "http",
    "severity": "critical",
}
# A pending alert waits on the failure count, not on time: it never fires by waiting.
NEVER = timedelta(days=36500)
RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "NS", "TXT", "PTR", "SOA", "SRV", "CAA")
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")


class CheckType(enum.StrEnum):
    HTTP = "http"
    TCP = "tcp"
    DNS = "dns"
    TLS = "tls"


class ChecksError(RulesError):
    """A checks file or body is unusable; `problems` lists every (path, message)."""


@dataclass(frozen=True, slots=True)
class Check:
    """One check as validated. `source` says where it is defined: the file or the API."""

    name: str
    type: CheckType
    every: timedelta = timedelta(seconds=60)
    timeout: timedelta = timedelta(seconds=5)
    failures: int = 1
    severity: Severity = Severity.CRITICAL
    locations: tuple[str, ...] = ()
    quorum: int = 1
    labels: dict[str, str] = field(default_factory=dict)
    summary: Template = DEFAULT_TEMPLATE
    # http
    url: str | None = None
    method: str = "GET"
    expect_status: tuple[tuple[int, int], ...] = ((200, 399),)
    body_contains: str | None = None
    body_regex: str | None = None
    # tcp, tls
    host: str | None = None
    port: int | None = None
    # dns
    query: str | None = None
    record: str = "A"
    server: str | None = None  # host[:port]; None: the system's resolver
    expect: tuple[str, ...] = ()
    # tls
    warning_days: int | None = None
    critical_days: int | None = None
    source: str = "file"

    @property
    def target_host(self) -> str:
        """The host the alert is about (Contract 2 `host`)."""
        if self.type is CheckType.HTTP:
            assert self.url is not None
            return urlsplit(self.url).hostname or self.url
        if self.type is CheckType.DNS:
            assert self.query is not None
            return self.query
        assert self.host is not None
        return self.host

    def as_json(self) -> dict[str, Any]:
        """The check in its schema (what GET answers, what PUT and the file take)."""
        out: dict[str, Any] = {"name": self.name, "type": self.type.value}
        if self.type is CheckType.HTTP:
            out["url"] = self.url
            out["method"] = self.method
            out["expect_status"] = [a if a == b else f"{a}-{b}" for a, b in self.expect_status]
            if self.body_contains is not None:
                out["body_contains"] = self.body_contains
            if self.body_regex is not None:
                out["body_regex"] = self.body_regex
        elif self.type is CheckType.DNS:
            out["query"] = self.query
            out["record"] = self.record
            if self.server is not None:
                out["server"] = self.server
            if self.expect:
                out["expect"] = list(self.expect)
        else:
            out["host"] = self.host
            out["port"] = self.port
        if self.type is CheckType.TLS:
            if self.warning_days is not None:
                out["warning_days"] = self.warning_days
            if self.critical_days is not None:
                out["critical_days"] = self.critical_days
        out.update(
            every=format_duration(self.every),
            timeout=_short(self.timeout),
            failures=self.failures,
            severity=self.severity.value,
            locations=list(self.locations),
            quorum=self.quorum,
            labels=dict(self.labels),
            summary=self.summary.text,
        )
        return out


def _short(duration: timedelta) -> str:
    ms = int(duration.total_seconds() * 1000)
    return f"{ms}ms" if ms % 1000 else format_duration(duration)


_COMMON_KEYS = {
    "name",
    "type",
    "every",
    "timeout",
    "failures",
    "severity",
    "locations",
    "quorum",
    "labels",
    "summary",
}
_TYPE_KEYS = {
    CheckType.HTTP: {"url", "method", "expect_status", "body_contains", "body_regex"},
    CheckType.TCP: {"host", "port"},
    CheckType.DNS: {"query", "record", "server", "expect"},
    CheckType.TLS: {"host", "port", "warning_days", "critical_days"},
}


def parse_checks(data: object, default_location: str, source: str = "") -> tuple[Check, ...]:
    """Validate a checks document (`{"checks": [...]}`). Raises ChecksError naming each
    problem by check and field: `checks[1] (db-port).port: must be 1..65535`."""
    problems = _Problems()
    if data is None:
        return ()
    if not isinstance(data, Mapping):
        raise ChecksError(source, [("", "must be a mapping with a `checks` list")])
    problems.unknown_keys(data, {"checks"}, "")
    raw_checks = data.get("checks") or []
    if not isinstance(raw_checks, list):
        problems.add("checks", "must be a list")
        raw_checks = []
    checks: list[Check] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_checks):
        label = raw.get("name") if isinstance(raw, Mapping) else None
        path = f"checks[{i}]" + (f" ({label})" if isinstance(label, str) else "")
        check = _parse_one(raw, path, default_location, problems)
        if check is None:
            continue
        if check.name in seen:
            problems.add(f"{path}.name", f"duplicate check name {check.name!r}")
            continue
        seen.add(check.name)
        checks.append(check)
    if problems.items:
        raise ChecksError(source, problems.items)
    return tuple(checks)


def parse_check(raw: object, default_location: str, source: str = "api") -> Check:
    """Validate one check (a PUT body). Raises ChecksError with JSON paths (`port`, `url`)."""
    problems = _Problems()
    check = _parse_one(raw, "", default_location, problems, source)
    if problems.items or check is None:
        raise ChecksError("", problems.items or [("", "not a check")])
    return check


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _parse_one(
    raw: object, path: str, default_location: str, problems: _Problems, source: str = "file"
) -> Check | None:
    if not isinstance(raw, Mapping):
        problems.add(path, "must be a mapping")
        return None
    before = len(problems.items)
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        problems.add(
            _at(path, "name"),
            "must be 1 to 64 lowercase letters, digits, '.', '_' or '-'",
        )
    try:
        kind = CheckType(str(raw.get("type")))
    except ValueError:
        choices = ", ".join(t.value for t in CheckType)
        problems.add(_at(path, "type"), f"must be one of {choices}, got {raw.get('type')!r}")
        return None
    known = _COMMON_KEYS | _TYPE_KEYS[kind]
    for key in raw:
        if key not in known:
            problems.add(
                _at(path, str(key)),
                f"unknown key for a {kind.value} check (known: {', '.join(sorted(known))})",
            )
    every = problems.duration(raw, "every", path or "", timedelta(seconds=60))
    if not MIN_EVERY <= every <= MAX_EVERY:
        problems.add(_at(path, "every"), "must be between 10s and 1h")
    timeout = problems.duration(raw, "timeout", path or "", timedelta(seconds=5))
    if not timedelta(0) < timeout <= min(MAX_TIMEOUT, every):
        problems.add(_at(path, "timeout"), "must be above 0, at most 60s and at most `every`")
    failures = _integer(raw, "failures", path, problems, 1, 1, 100)
    severity = problems.severity(raw, "severity", path or "", Severity.CRITICAL)
    locations = _locations(raw, path, default_location, problems)
    majority = len(locations) // 2 + 1
    quorum = _integer(raw, "quorum", path, problems, majority, 1, max(len(locations), 1))
    labels = _labels(raw, path, problems)
    summary = problems.template(raw, "summary", path or "", SUMMARY_NAMES) or Template(
        DEFAULT_SUMMARY
    )
    if path == "":  # _Problems builds "path.key"; a PUT body's paths start at the key
        problems.items[before:] = [(p.lstrip("."), m) for p, m in problems.items[before:]]
    spec: dict[str, Any] = {}
    if kind is CheckType.HTTP:
        spec = _http(raw, path, problems)
    elif kind is CheckType.DNS:
        spec = _dns(raw, path, problems)
    else:
        spec = _host_port(raw, path, problems, kind)
    if len(problems.items) > before:
        return None
    assert isinstance(name, str)
    return Check(
        name=name,
        type=kind,
        every=every,
        timeout=timeout,
        failures=failures,
        severity=severity,
        locations=locations,
        quorum=quorum,
        labels=labels,
        summary=summary,
        source=source,
        **spec,
    )


def _integer(  # noqa: PLR0917
    raw: Mapping[str, Any],
    key: str,
    path: str,
    problems: _Problems,
    default: int,
    low: int,
    high: int,
) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.add(_at(path, key), f"must be a whole number from {low} to {high}, got {value!r}")
        return default
    return value


def _locations(
    raw: Mapping[str, Any], path: str, default_location: str, problems: _Problems
) -> tuple[str, ...]:
    value = raw.get("locations")
    if value is None:
        return (default_location,)
    if not isinstance(value, list) or not value or len(value) > MAX_LOCATIONS:
        problems.add(_at(path, "locations"), f"must be a list of 1 to {MAX_LOCATIONS} regions")
        return (default_location,)
    out: list[str] = []
    for i, loc in enumerate(value):
        if not isinstance(loc, str) or not LOCATION_RE.match(loc):
            problems.add(_at(path, f"locations[{i}]"), f"must be a region name, got {loc!r}")
        elif loc in out:
            problems.add(_at(path, f"locations[{i}]"), f"{loc} is listed twice")
        else:
            out.append(loc)
    return tuple(out) or (default_location,)


def _labels(raw: Mapping[str, Any], path: str, problems: _Problems) -> dict[str, str]:
    value = raw.get("labels") or {}
    if not isinstance(value, Mapping):
        problems.add(_at(path, "labels"), "must be a mapping of names to strings")
        return {}
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str | int | float) or isinstance(v, bool):
            problems.add(_at(path, f"labels.{k}"), "must be a string")
            continue
        out[k] = str(v)
    return out


def _text(raw: Mapping[str, Any], key: str, path: str, problems: _Problems) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_BODY_MATCH:
        problems.add(_at(path, key), f"must be a non-empty string of at most {MAX_BODY_MATCH}")
        return None
    return value


def _http(raw: Mapping[str, Any], path: str, problems: _Problems) -> dict[str, Any]:
    url = raw.get("url")
    split = urlsplit(url) if isinstance(url, str) else None
    if split is None or split.scheme not in ("http", "https") or not split.hostname:
        problems.add(_at(path, "url"), f"must be an http:// or https:// URL, got {url!r}")
    else:
        try:
            split.port  # noqa: B018 (raises on a bad port)
        except ValueError:
            problems.add(_at(path, "url"), "has a bad port")
    method = raw.get("method", "GET")
    if method not in METHODS:
        problems.add(_at(path, "method"), f"must be one of {', '.join(METHODS)}, got {method!r}")
    ranges = _status_ranges(raw.get("expect_status"), _at(path, "expect_status"), problems)
    body_contains = _text(raw, "body_contains", path, problems)
    body_regex = _text(raw, "body_regex", path, problems)
    if body_regex is not None:
        try:
            re.compile(body_regex)
        except re.error as exc:
            problems.add(_at(path, "body_regex"), f"not a valid regular expression: {exc}")
    return {
        "url": url,
        "method": method,
        "expect_status": ranges,
        "body_contains": body_contains,
        "body_regex": body_regex,
    }


def _status_ranges(value: object, at: str, problems: _Problems) -> tuple[tuple[int, int], ...]:
    if value is None:
        return ((200, 399),)
    items = value if isinstance(value, list) else [value]
    out: list[tuple[int, int]] = []
    for i, item in enumerate(items):
        low = high = None
        if isinstance(item, int) and not isinstance(item, bool):
            low = high = item
        elif isinstance(item, str) and re.fullmatch(r"\d{3}(-\d{3})?", item.strip()):
            a, _, b = item.strip().partition("-")
            low, high = int(a), int(b or a)
        if low is None or high is None or not 100 <= low <= high <= 599:
            problems.add(
                f"{at}[{i}]", f"must be a status 100-599 or a range like 200-299, got {item!r}"
            )
            continue
        out.append((low, high))
    if not out and not problems.items:
        problems.add(at, "must list at least one status")
    return tuple(out)


def _valid_host(value: object) -> bool:
    if not isinstance(value, str) or not value or len(value) > 253:
        return False
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return re.fullmatch(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?", value) is not None


def _host_port(
    raw: Mapping[str, Any], path: str, problems: _Problems, kind: CheckType
) -> dict[str, Any]:
    host = raw.get("host")
    if not _valid_host(host):
        problems.add(_at(path, "host"), f"must be a host name or address, got {host!r}")
    default_port = 443 if kind is CheckType.TLS else None
    port = raw.get("port", default_port)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        problems.add(_at(path, "port"), f"must be a port 1..65535, got {port!r}")
    spec: dict[str, Any] = {"host": host, "port": port}
    if kind is CheckType.TLS:
        warning = raw.get("warning_days", 21)
        critical = raw.get("critical_days", 7)
        for key, value in (("warning_days", warning), ("critical_days", critical)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 3650:
                problems.add(_at(path, key), f"must be a whole number of days, got {value!r}")
        if isinstance(warning, int) and isinstance(critical, int) and critical > warning:
            problems.add(_at(path, "critical_days"), "must be at most warning_days")
        spec.update(warning_days=warning, critical_days=critical)
    return spec


def _dns(raw: Mapping[str, Any], path: str, problems: _Problems) -> dict[str, Any]:
    query = raw.get("query")
    if not _valid_host(query):
        problems.add(_at(path, "query"), f"must be a domain name, got {query!r}")
    record = raw.get("record", "A")
    if record not in RECORD_TYPES:
        problems.add(
            _at(path, "record"), f"must be one of {', '.join(RECORD_TYPES)}, got {record!r}"
        )
    server = raw.get("server")
    if server is not None and (not isinstance(server, str) or split_server(server) is None):
        problems.add(_at(path, "server"), f"must be host or host:port, got {server!r}")
    expect = raw.get("expect") or []
    if not isinstance(expect, list) or not all(isinstance(e, str) and e for e in expect):
        problems.add(_at(path, "expect"), "must be a list of answers (strings)")
        expect = []
    return {"query": query, "record": record, "server": server, "expect": tuple(expect)}


def split_server(server: str) -> tuple[str, int] | None:
    """`10.0.0.2:53`, `[::1]:5353`, `ns1.example.com` -> (host, port); None when malformed."""
    text = server.strip()
    port = 53
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            return None
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                return None
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        if not p.isdigit():
            return None
        port = int(p)
    else:
        host = text
    if not _valid_host(host) or not 1 <= port <= 65535:
        return None
    return host, port


# -- results


class Phase(enum.StrEnum):
    DNS = "dns"
    CONNECT = "connect"
    TLS = "tls"
    REQUEST = "request"  # request sent, first byte back
    BODY = "body"
    QUERY = "query"  # a DNS check's query


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One run of one check from one location. `severity` is set when it failed."""

    check: str
    location: str
    at: datetime
    up: bool
    reason: str
    latency_ms: float
    severity: Severity | None = None
    phases: tuple[tuple[Phase, float], ...] = ()
    fields: dict[str, FieldValue] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "location": self.location,
            "time": _ms(self.at),
            "up": self.up,
            "reason": self.reason,
            "latency_ms": round(self.latency_ms, 3),
            "severity": self.severity.value if self.severity else None,
            "phases": {p.value: round(ms, 3) for p, ms in self.phases},
            "fields": dict(self.fields),
        }


def _ms(at: datetime) -> int:
    from chalicelib.core.instants import ms_of_instant

    return ms_of_instant(at)


def result_report(check: Check, result: ProbeResult) -> HostReport:
    """The run as a point of measurement `check`, under the target's host."""
    fields: dict[str, FieldValue] = {
        "up": 1 if result.up else 0,
        "latency_ms": round(result.latency_ms, 3),
    }
    fields.update(result.fields)
    if not result.up:
        fields["reason"] = clip(result.reason, MAX_REASON)
    tags = {"check": check.name, "type": check.type.value, "location": result.location}
    point = Point(CHECK_MEASUREMENT, _ms(result.at), tags, fields)
    return HostReport(host=check.target_host, points=[point])


_RESULT_KEYS = {"check", "location", "time", "up", "reason", "latency_ms", "severity"}
_RESULT_KEYS |= {"phases", "fields"}
MAX_RESULTS = 500


def parse_results(body: object, now: datetime) -> list[ProbeResult]:
    """A probe's results posted to the collector (`{"results": [...]}`), validated.
    Raises ChecksError with JSON paths (`results[2].up`)."""
    from chalicelib.core.instants import instant_of_ms

    if not isinstance(body, Mapping) or not isinstance(body.get("results"), list):
        raise ChecksError("", [("results", "must be a list of check results")])
    raw_results = body["results"]
    if len(raw_results) > MAX_RESULTS:
        raise ChecksError("", [("results", f"at most {MAX_RESULTS} results a request")])
    problems: list[tuple[str, str]] = []
    out: list[ProbeResult] = []
    for i, raw in enumerate(raw_results):
        at = f"results[{i}]"
        if not isinstance(raw, Mapping):
            problems.append((at, "must be an object"))
            continue
        bad = sorted(set(raw) - _RESULT_KEYS)
        if bad:
            problems.append((f"{at}.{bad[0]}", "unknown key"))
            continue
        name, location, t = raw.get("check"), raw.get("location"), raw.get("time")
        if not isinstance(name, str) or not NAME_RE.match(name):
            problems.append((f"{at}.check", "must be a check name"))
            continue
        if not isinstance(location, str) or not LOCATION_RE.match(location):
            problems.append((f"{at}.location", "must be a region name"))
            continue
        if isinstance(t, bool) or not isinstance(t, int) or t <= 0:
            problems.append((f"{at}.time", "must be epoch milliseconds"))
            continue
        when = instant_of_ms(t)
        if when > now + timedelta(minutes=5) or when < now - timedelta(hours=1):
            problems.append((f"{at}.time", "must be within the last hour"))
            continue
        up = raw.get("up")
        if not isinstance(up, bool):
            problems.append((f"{at}.up", "must be true or false"))
            continue
        latency = raw.get("latency_ms", 0.0)
        if isinstance(latency, bool) or not isinstance(latency, int | float) or latency < 0:
            problems.append((f"{at}.latency_ms", "must be a number of 0 or more"))
            continue
        severity = None
        if raw.get("severity") is not None:
            try:
                severity = Severity(raw["severity"])
            except ValueError:
                problems.append((f"{at}.severity", "must be critical, warning or info"))
                continue
        fields: dict[str, FieldValue] = {}
        raw_fields = raw.get("fields") or {}
        if not isinstance(raw_fields, Mapping):
            problems.append((f"{at}.fields", "must be an object"))
            continue
        for key in ("status_code", "cert_days_left", "answers"):
            value = raw_fields.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                problems.append((f"{at}.fields.{key}", "must be a number or a string"))
                break
            fields[key] = clip(value, MAX_REASON) if isinstance(value, str) else value
        reason = raw.get("reason", "")
        out.append(
            ProbeResult(
                check=name,
                location=location,
                at=when,
                up=up,
                reason=clip(reason if isinstance(reason, str) else "", MAX_REASON),
                latency_ms=float(latency),
                severity=None if up else (severity or Severity.CRITICAL),
                fields=fields,
            )
        )
    if problems:
        raise ChecksError("", problems)
    return out


# -- state per check and location


class LocationState(TypedDict):
    """What is stored per check and location: enough to count failures in a row."""

    at: int  # epoch ms of the run
    up: bool
    fails: int  # consecutive failed runs, this one included
    reason: str
    severity: str | None


def advance(previous: LocationState | None, result: ProbeResult) -> LocationState:
    """The location's state after `result`."""
    fails = 0 if result.up else (previous["fails"] if previous else 0) + 1
    return {
        "at": _ms(result.at),
        "up": result.up,
        "fails": fails,
        "reason": clip(result.reason, MAX_REASON),
        "severity": result.severity.value if result.severity else None,
    }


def stale_after(check: Check) -> timedelta:
    """A location's last result older than this says nothing any more."""
    return 3 * check.every + timedelta(minutes=2)


def check_alert_id(name: str) -> str:
    return f"check/{name}"


def observe(
    check: Check, states: Mapping[str, LocationState], now: datetime
) -> tuple[Observation | None, Timing, bool]:
    """(observation, timing, frozen) for the check's alert, from each location's state."""
    from chalicelib.core.instants import instant_of_ms

    fresh = {
        loc: s
        for loc in check.locations
        if (s := states.get(loc)) is not None and now - instant_of_ms(s["at"]) <= stale_after(check)
    }
    failing = sorted(loc for loc, s in fresh.items() if s["fails"] >= check.failures)
    trying = sorted(loc for loc, s in fresh.items() if s["fails"] >= 1)
    good = [loc for loc, s in fresh.items() if s["fails"] == 0]
    q = check.quorum
    if len(failing) >= q:
        ranks = sorted(
            (Severity(fresh[loc]["severity"] or check.severity) for loc in failing),
            key=lambda s: SEVERITY_RANK[s],
            reverse=True,
        )
        return _observation(check, fresh, failing, ranks[q - 1]), Timing(), False
    if len(trying) >= q:
        return _observation(check, fresh, trying, check.severity), Timing(hold=NEVER), False
    if len(good) >= q:
        return _observation(check, fresh, [], None), Timing(), False
    return None, Timing(), True


def _observation(
    check: Check,
    fresh: Mapping[str, LocationState],
    failing: Sequence[str],
    severity: Severity | None,
) -> Observation:
    reasons = [f"{loc}: {fresh[loc]['reason']}" for loc in failing]
    reason = fresh[failing[0]]["reason"] if failing else "ok"
    values = {
        "check": check.name,
        "failing": len(failing),
        "locations": len(check.locations),
        "failing_locations": ", ".join(failing),
        "reason": reason,
        "host": check.target_host,
        "type": check.type.value,
        "severity": severity.value if severity else "ok",
    }
    if severity is None:
        summary = f"{check.name} is up from {len(fresh)} of {len(check.locations)} locations"
    else:
        summary = check.summary.render(values)
    return Observation(
        alert_id=check_alert_id(check.name),
        kind=AlertKind.CHECK,
        host=check.target_host,
        rule=check.name,
        severity=severity,
        summary=summary,
        description="; ".join(reasons),
        value=float(len(failing)),
        threshold=float(check.quorum),
        labels={**check.labels, "check": check.name, "type": check.type.value},
    )


def check_changes(
    checks: Iterable[Check],
    states: Mapping[str, Mapping[str, LocationState]],
    alerts: Mapping[str, AlertRecord],
    silenced: Any,
    now: datetime,
    *,
    lease: timedelta = timedelta(seconds=30),
    retention: timedelta = timedelta(hours=24),
    status_url: str | None = None,
    only: frozenset[str] | None = None,
) -> list[AlertChange]:
    """Every change to `check` alerts: one per check whose alert moves, and the alerts of
    checks that no longer exist (they resolve). `alerts` holds the `check` alerts read;
    `only` limits the work to those check names (a runner deciding its own batch)."""
    changes: list[AlertChange] = []
    seen: set[str] = set()
    for check in checks:
        if only is not None and check.name not in only:
            continue
        alert_id = check_alert_id(check.name)
        seen.add(alert_id)
        obs, timing, frozen = observe(check, states.get(check.name, {}), now)
        ctx = StepContext(
            now=now,
            timing=timing,
            silenced=silenced,
            frozen=frozen,
            lease=lease,
            retention=retention,
            status_url=status_url,
        )
        change = step(alerts.get(alert_id), obs, ctx)
        if change is not None:
            changes.append(change)
    if only is None:
        for alert_id, record in alerts.items():
            if alert_id in seen or record.kind is not AlertKind.CHECK:
                continue
            ctx = StepContext(
                now=now,
                timing=Timing(),
                silenced=silenced,
                lease=lease,
                retention=retention,
                status_url=status_url,
            )
            change = step(record, None, ctx)
            if change is not None:
                changes.append(change)
    return changes


# -- scheduling


@dataclass(frozen=True, slots=True)
class Run:
    """One run to make: `check` from `location`, `offset` after the schedule's instant."""

    check: Check
    location: str
    offset: timedelta = timedelta(0)


def due_runs(
    checks: Iterable[Check],
    states: Mapping[str, Mapping[str, LocationState]],
    locations: frozenset[str] | None,
    now: datetime,
    window: timedelta = timedelta(minutes=1),
) -> list[Run]:
    """The runs this schedule owes in the window starting `now`, for the locations it runs
    (None: every location, the local stack's simulation). A run is due `every` after the
    last one recorded, at its offset in the window: a check due every 20 s runs at 0, 20
    and 40 s (sooner if its last run was longer ago); one due every 5 minutes runs at the
    start of the first window its last run is that old in (less a few seconds of slack:
    schedules are not punctual)."""
    from chalicelib.core.instants import instant_of_ms

    slack = min(timedelta(seconds=5), window / 4)
    runs: list[Run] = []
    for check in checks:
        for location in check.locations:
            if locations is not None and location not in locations:
                continue
            state = states.get(check.name, {}).get(location)
            offset = timedelta(0)
            if state is not None:
                offset = instant_of_ms(state["at"]) + check.every - now
                if offset <= slack:
                    offset = timedelta(0)
                elif check.every >= window:
                    continue  # the next window: a runner must not sleep most of a minute
            while offset < window:
                runs.append(Run(check, location, offset))
                offset += check.every
    return runs


def aligned_runs(
    checks: Iterable[Check],
    location: str,
    now: datetime,
    window: timedelta = timedelta(minutes=1),
) -> list[Run]:
    """The runs a stateless probe (a location away from home) owes in the window starting
    `now`: a check due every 5 minutes runs in the windows that start on a multiple of 5
    minutes since the epoch, so no state is kept to know when it last ran."""
    from chalicelib.core.instants import EPOCH

    since = now - EPOCH
    runs: list[Run] = []
    for check in checks:
        if location not in check.locations:
            continue
        if check.every >= window:
            start = since // window * window
            if start % check.every < window:
                runs.append(Run(check, location))
            continue
        offset = timedelta(0)
        while offset < window:
            runs.append(Run(check, location, offset))
            offset += check.every
    return runs


def batches(runs: Sequence[Run], size: int) -> list[list[Run]]:
    """Runs in batches of at most `size`, slow timeouts spread over the batches: a batch
    finishes when its slowest run does."""
    ordered = sorted(runs, key=lambda r: (r.offset, r.check.timeout), reverse=True)
    count = max(1, -(-len(ordered) // size))
    out: list[list[Run]] = [[] for _ in range(count)]
    for i, run in enumerate(ordered):
        out[i % count].append(run)
    return [b for b in out if b]


def run_json(run: Run) -> dict[str, Any]:
    return {
        "check": run.check.as_json(),
        "source": run.check.source,
        "location": run.location,
        "offset_ms": int(run.offset.total_seconds() * 1000),
    }


def run_of_json(raw: Mapping[str, Any], default_location: str) -> Run:
    check = parse_check(raw["check"], default_location, source=str(raw.get("source", "file")))
    return Run(check, str(raw["location"]), timedelta(milliseconds=int(raw.get("offset_ms", 0))))


class CheckStore(Protocol):
    """The checks table: API-defined checks and each check's state per location."""

    def scan(self) -> tuple[list[dict[str, Any]], dict[str, dict[str, LocationState]]]:
        """(API checks as JSON, state by check name and location): one Scan."""
        ...

    def get(self, name: str) -> dict[str, Any] | None: ...

    def put(self, name: str, spec: dict[str, Any], at: datetime) -> None: ...

    def delete(self, name: str) -> bool:
        """Remove the check and its state; False when there was none."""
        ...

    def state(self, name: str, location: str) -> LocationState | None: ...

    def record(
        self, name: str, location: str, state: LocationState, previous_at: int | None
    ) -> bool:
        """Store `state` if the stored one is still the run at `previous_at` (None: none
        stored yet). False: another run recorded first (the caller reads and retries)."""
        ...
