"""The alerting rules file, validated: threshold rules, heartbeat and service-event policy.

The file is code: it is read once per container, and a mistake fails the load
with every problem named by rule and key (`rules[2] (disk-full).critical: must
be a number`), never silently. This module validates a plain mapping; reading
YAML is the loader's job (chalicelib.adapters.rules_file).
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import timedelta
from typing import Any

from chalicelib.core.alert_message import Severity
from chalicelib.core.durations import parse_duration
from chalicelib.core.history_rules import (
    BASELINE_SUMMARY,
    FORECAST_SUMMARY,
    HISTORY_KEYS,
    HistorySpec,
    parse_history,
)
from chalicelib.core.matchers import Matcher, parse_matchers
from chalicelib.core.templates import Template, check_template

DEFAULT_REPEAT = timedelta(hours=4)
RULE_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}\Z")
# Built-in alerts use these rule names; a threshold rule may not.
HEARTBEAT_RULE = "heartbeat"
SERVICE_RULE = "service"
OUTAGE_RULE = "ingest-outage"
RESERVED_RULE_NAMES = frozenset({HEARTBEAT_RULE, SERVICE_RULE, OUTAGE_RULE})

# What a threshold rule's summary and description may use, with sample values
# the format specs are tried on at load.
THRESHOLD_TEMPLATE_NAMES: dict[str, Any] = {
    "host": "web-1",
    "value": 1.5,
    "threshold": 1.5,
    "rule": "rule",
    "severity": "warning",
    "measurement": "m",
    "field": "f",
    "op": ">",
    "tags": {},
    "labels": {},
}
HEARTBEAT_TEMPLATE_NAMES: dict[str, Any] = {
    "host": "web-1",
    "silent_for": "5m",
    "period": "1m",
    "grace": "2m",
    "last_seen_at": "2026-01-01T00:00:00+00:00",
    "tags": {},
}

DEFAULT_THRESHOLD_SUMMARY = (
    "{rule} on {host}: {measurement}.{field} is {value:.4g} ({op} {threshold:g})"
)
DEFAULT_HEARTBEAT_SUMMARY = (
    "{host} stopped reporting: silent for {silent_for} (expected every {period})"
)

DEFAULT_THRESHOLD_TEMPLATE = Template(DEFAULT_THRESHOLD_SUMMARY)
DEFAULT_HEARTBEAT_TEMPLATE = Template(DEFAULT_HEARTBEAT_SUMMARY)


class Op(enum.StrEnum):
    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="


class RulesError(ValueError):
    """The rules file is unusable. `problems` lists every (path, message) found."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{path}: {message}" if path else message for path, message in problems]
        head = f"{source}: " if source else ""
        if len(lines) == 1:
            text = head + lines[0]
        else:
            text = f"{head}{len(lines)} problems:\n  " + "\n  ".join(lines)
        super().__init__(text)


@dataclass(frozen=True, slots=True)
class ThresholdRule:
    """`measurement.field` (optionally divided by `divide_by`) compared with levels."""

    name: str
    measurement: str
    field: str
    op: Op
    warning: float | None
    critical: float | None
    recovery: float | None = None
    divide_by: str | None = None
    hold: timedelta = timedelta(0)  # `for`
    keep: timedelta = timedelta(0)  # `keep_firing_for`
    repeat: timedelta = DEFAULT_REPEAT
    matchers: tuple[Matcher, ...] = ()
    summary: Template = DEFAULT_THRESHOLD_TEMPLATE
    description: Template | None = None
    runbook: str | None = None
    labels: dict[str, str] = dc_field(default_factory=dict)
    history: HistorySpec | None = None  # window/baseline/forecast: core/history_rules.py

    def crosses(self, value: float, level: float) -> bool:
        op = self.op
        if op is Op.GT:
            return value > level
        if op is Op.GE:
            return value >= level
        if op is Op.LT:
            return value < level
        return value <= level

    def level(self, value: float, active: bool) -> tuple[Severity, float] | None:
        """The severity `value` calls for and the level it crossed; None when it is fine.

        `active` says the alert is already pending or firing: then a value
        that has not yet crossed back past `recovery` keeps it active.
        """
        if self.critical is not None and self.crosses(value, self.critical):
            return Severity.CRITICAL, self.critical
        if self.warning is not None and self.crosses(value, self.warning):
            return Severity.WARNING, self.warning
        if active and self.recovery is not None and self.crosses(value, self.recovery):
            if self.warning is not None:
                return Severity.WARNING, self.warning
            assert self.critical is not None
            return Severity.CRITICAL, self.critical
        return None


@dataclass(frozen=True, slots=True)
class GraceOverride:
    matchers: tuple[Matcher, ...]
    grace: timedelta


@dataclass(frozen=True, slots=True)
class HeartbeatPolicy:
    """Hosts are late after their interval and down after interval + grace."""

    grace: timedelta | None = None  # None: the deployment's FLEETPULSE_HEARTBEAT_GRACE
    overrides: tuple[GraceOverride, ...] = ()
    severity: Severity = Severity.CRITICAL
    repeat: timedelta = DEFAULT_REPEAT
    runbook: str | None = None
    summary: Template = DEFAULT_HEARTBEAT_TEMPLATE


@dataclass(frozen=True, slots=True)
class EventPolicy:
    """Service events: status warning/critical alerts; a ttl not refreshed in time alerts."""

    expired_severity: Severity = Severity.CRITICAL
    repeat: timedelta = DEFAULT_REPEAT
    runbook: str | None = None


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[ThresholdRule, ...] = ()
    heartbeat: HeartbeatPolicy = HeartbeatPolicy()
    events: EventPolicy = EventPolicy()
    by_measurement: dict[str, tuple[ThresholdRule, ...]] = dc_field(default_factory=dict)
    by_name: dict[str, ThresholdRule] = dc_field(default_factory=dict)

    @classmethod
    def of(
        cls,
        rules: tuple[ThresholdRule, ...] = (),
        heartbeat: HeartbeatPolicy | None = None,
        events: EventPolicy | None = None,
    ) -> RuleSet:
        by_measurement: dict[str, list[ThresholdRule]] = {}
        for rule in rules:
            if rule.history is not None:
                continue  # read from history, not from the latest values
            by_measurement.setdefault(rule.measurement, []).append(rule)
        return cls(
            rules,
            heartbeat or HeartbeatPolicy(),
            events or EventPolicy(),
            {m: tuple(rs) for m, rs in by_measurement.items()},
            {r.name: r for r in rules},
        )


_TOP_KEYS = {"rules", "heartbeat", "events", "defaults"}
_DEFAULT_KEYS = {"for", "keep_firing_for", "repeat_interval"}
_RULE_KEYS = {
    "name",
    "measurement",
    "field",
    "divide_by",
    "op",
    "warning",
    "critical",
    "recovery",
    "for",
    "keep_firing_for",
    "repeat_interval",
    "match",
    "summary",
    "description",
    "runbook",
    "labels",
    *HISTORY_KEYS,
}
_HEARTBEAT_KEYS = {"grace", "overrides", "severity", "repeat_interval", "runbook", "summary"}
_OVERRIDE_KEYS = {"match", "grace"}
_EVENT_KEYS = {"expired_severity", "repeat_interval", "runbook"}
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*\Z")  # the collector's measurement/field names


class _Problems:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.items.append((path, message))

    def unknown_keys(self, raw: Mapping[Any, Any], known: set[str], path: str) -> None:
        for key in raw:
            if key not in known:
                where = f"{path}.{key}" if path else str(key)
                self.add(where, f"unknown key (known: {', '.join(sorted(known))})")

    def duration(
        self, raw: Mapping[str, Any], key: str, path: str, default: timedelta
    ) -> timedelta:
        if key not in raw:
            return default
        try:
            return parse_duration(raw[key])
        except ValueError as exc:
            self.add(f"{path}.{key}", str(exc))
            return default

    def number(self, raw: Mapping[str, Any], key: str, path: str) -> float | None:
        value = raw.get(key)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            self.add(f"{path}.{key}", f"must be a number, got {value!r}")
            return None
        return float(value)

    def text(
        self, raw: Mapping[str, Any], key: str, path: str, required: bool = False
    ) -> str | None:
        value = raw.get(key)
        if value is None:
            if required:
                self.add(f"{path}.{key}", "is required")
            return None
        if not isinstance(value, str) or not value:
            self.add(f"{path}.{key}", f"must be a non-empty string, got {value!r}")
            return None
        return value

    def severity(self, raw: Mapping[str, Any], key: str, path: str, default: Severity) -> Severity:
        if key not in raw:
            return default
        try:
            return Severity(raw[key])
        except ValueError:
            choices = ", ".join(s.value for s in Severity)
            self.add(f"{path}.{key}", f"must be one of {choices}, got {raw[key]!r}")
            return default

    def template(
        self, raw: Mapping[str, Any], key: str, path: str, names: Mapping[str, Any]
    ) -> Template | None:
        if key not in raw:
            return None
        problem = check_template(raw[key], names)
        if problem:
            self.add(f"{path}.{key}", problem)
            return None
        return Template(raw[key])

    def url(self, raw: Mapping[str, Any], key: str, path: str) -> str | None:
        value = self.text(raw, key, path)
        if value is not None and not value.startswith(("https://", "http://")):
            self.add(f"{path}.{key}", "must be an http(s) URL")
            return None
        return value


def parse_rules(data: object, source: str = "") -> RuleSet:
    """Validate a rules document (the YAML, loaded). Raises RulesError naming every problem.

    An empty document is valid: no threshold rules, default heartbeat policy.
    """
    problems = _Problems()
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise RulesError(source, [("", "the rules file must be a mapping with a `rules:` list")])
    problems.unknown_keys(data, _TOP_KEYS, "")
    defaults_raw = data.get("defaults") or {}
    if not isinstance(defaults_raw, Mapping):
        problems.add("defaults", "must be a mapping")
        defaults_raw = {}
    problems.unknown_keys(defaults_raw, _DEFAULT_KEYS, "defaults")
    hold = problems.duration(defaults_raw, "for", "defaults", timedelta(0))
    keep = problems.duration(defaults_raw, "keep_firing_for", "defaults", timedelta(0))
    repeat = problems.duration(defaults_raw, "repeat_interval", "defaults", DEFAULT_REPEAT)

    rules: list[ThresholdRule] = []
    raw_rules = data.get("rules") or []
    if not isinstance(raw_rules, list):
        problems.add("rules", "must be a list of rules")
        raw_rules = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_rules):
        rule = _parse_rule(raw, i, hold=hold, keep=keep, repeat=repeat, problems=problems)
        if rule is None:
            continue
        if rule.name in seen:
            problems.add(f"rules[{i}] ({rule.name}).name", f"duplicates rules[{seen[rule.name]}]")
            continue
        seen[rule.name] = i
        rules.append(rule)
    heartbeat = _parse_heartbeat(data.get("heartbeat"), problems)
    events = _parse_events(data.get("events"), problems)
    if problems.items:
        raise RulesError(source, problems.items)
    return RuleSet.of(tuple(rules), heartbeat, events)


def _parse_rule(
    raw: object,
    index: int,
    *,
    hold: timedelta,
    keep: timedelta,
    repeat: timedelta,
    problems: _Problems,
) -> ThresholdRule | None:
    path = f"rules[{index}]"
    if not isinstance(raw, Mapping):
        problems.add(path, "must be a mapping")
        return None
    name = raw.get("name")
    if isinstance(name, str) and name:
        path = f"rules[{index}] ({name})"
    before = len(problems.items)
    problems.unknown_keys(raw, _RULE_KEYS, path)
    name = problems.text(raw, "name", path, required=True)
    if name is not None and not RULE_NAME_RE.match(name):
        problems.add(f"{path}.name", "must be lowercase letters, digits and _ . - (up to 64)")
    elif name in RESERVED_RULE_NAMES:
        problems.add(f"{path}.name", f"{name!r} is reserved for fleetpulse's own alerts")
    names: dict[str, str | None] = {}
    for key in ("measurement", "field", "divide_by"):
        value = problems.text(raw, key, path, required=key != "divide_by")
        if value is not None and not _NAME_RE.match(value):
            problems.add(f"{path}.{key}", f"is not a valid name: {value!r}")
        names[key] = value
    op_raw = raw.get("op", ">")
    try:
        op = Op(op_raw)
    except ValueError:
        problems.add(f"{path}.op", f'must be one of ">", ">=", "<", "<=", got {op_raw!r}')
        op = Op.GT
    history = parse_history(raw, path, problems.add)
    counted = len(problems.items)
    warning = problems.number(raw, "warning", path)
    if history is not None and history.baseline is not None:
        # A baseline rule's value is a ratio; its level defaults to the baseline's.
        if op is not Op.GT:
            problems.add(f"{path}.op", "a baseline rule compares a ratio with >")
        if warning is None and raw.get("critical") is None:
            warning = history.baseline.ratio
    if history is not None and names["divide_by"] is not None:
        problems.add(f"{path}.divide_by", "is not supported with window, baseline or forecast")
    critical = problems.number(raw, "critical", path)
    if warning is None and critical is None and len(problems.items) == counted:
        problems.add(f"{path}.warning", "a rule needs a warning or a critical level (or both)")
    recovery = problems.number(raw, "recovery", path)
    above = op in (Op.GT, Op.GE)
    if warning is not None and critical is not None:
        if above and critical < warning:
            problems.add(
                f"{path}.critical", f"must be at or above warning ({warning:g}) for op {op}"
            )
        if not above and critical > warning:
            problems.add(
                f"{path}.critical", f"must be at or below warning ({warning:g}) for op {op}"
            )
    levels = [v for v in (warning, critical) if v is not None]
    if recovery is not None and levels:
        first = min(levels) if above else max(levels)
        if (above and recovery >= first) or (not above and recovery <= first):
            side = "below" if above else "above"
            problems.add(
                f"{path}.recovery",
                f"must be {side} the first level ({first:g}): the alert clears once the value crosses it",
            )
    matchers: tuple[Matcher, ...] = ()
    if "match" in raw:
        matchers, found = parse_matchers(raw["match"], f"{path}.match")
        for where, message in found:
            problems.add(where, message)
    labels: dict[str, str] = {}
    raw_labels = raw.get("labels", {})
    if not isinstance(raw_labels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw_labels.items()
    ):
        problems.add(f"{path}.labels", "must be a mapping of strings")
    else:
        labels = dict(raw_labels)
    summary = problems.template(raw, "summary", path, THRESHOLD_TEMPLATE_NAMES)
    description = problems.template(raw, "description", path, THRESHOLD_TEMPLATE_NAMES)
    runbook = problems.url(raw, "runbook", path)
    rule_hold = problems.duration(raw, "for", path, hold)
    rule_keep = problems.duration(raw, "keep_firing_for", path, keep)
    rule_repeat = problems.duration(raw, "repeat_interval", path, repeat)
    if rule_repeat < timedelta(minutes=1):
        problems.add(f"{path}.repeat_interval", "must be at least 1m")
    if len(problems.items) > before:
        return None
    assert name is not None
    assert names["measurement"]
    assert names["field"]
    return ThresholdRule(
        name=name,
        measurement=names["measurement"],
        field=names["field"],
        op=op,
        warning=warning,
        critical=critical,
        recovery=recovery,
        divide_by=names["divide_by"],
        hold=rule_hold,
        keep=rule_keep,
        repeat=rule_repeat,
        matchers=matchers,
        summary=summary or Template(_default_summary(history)),
        description=description,
        runbook=runbook,
        labels=labels,
        history=history,
    )


def _default_summary(history: HistorySpec | None) -> str:
    if history is not None and history.baseline is not None:
        return BASELINE_SUMMARY
    if history is not None and history.forecast is not None:
        return FORECAST_SUMMARY
    return DEFAULT_THRESHOLD_SUMMARY


def _parse_heartbeat(raw: object, problems: _Problems) -> HeartbeatPolicy:
    if raw is None:
        return HeartbeatPolicy()
    path = "heartbeat"
    if not isinstance(raw, Mapping):
        problems.add(path, "must be a mapping")
        return HeartbeatPolicy()
    problems.unknown_keys(raw, _HEARTBEAT_KEYS, path)
    grace = problems.duration(raw, "grace", path, timedelta(0)) if "grace" in raw else None
    overrides: list[GraceOverride] = []
    raw_overrides = raw.get("overrides") or []
    if not isinstance(raw_overrides, list):
        problems.add(f"{path}.overrides", "must be a list of {match, grace}")
        raw_overrides = []
    for i, item in enumerate(raw_overrides):
        where = f"{path}.overrides[{i}]"
        if not isinstance(item, Mapping):
            problems.add(where, "must be a mapping with match and grace")
            continue
        problems.unknown_keys(item, _OVERRIDE_KEYS, where)
        if "grace" not in item:
            problems.add(f"{where}.grace", "is required")
        matchers, found = parse_matchers(item.get("match"), f"{where}.match")
        for p, m in found:
            problems.add(p, m)
        overrides.append(
            GraceOverride(matchers, problems.duration(item, "grace", where, timedelta(0)))
        )
    return HeartbeatPolicy(
        grace=grace,
        overrides=tuple(overrides),
        severity=problems.severity(raw, "severity", path, Severity.CRITICAL),
        repeat=problems.duration(raw, "repeat_interval", path, DEFAULT_REPEAT),
        runbook=problems.url(raw, "runbook", path),
        summary=problems.template(raw, "summary", path, HEARTBEAT_TEMPLATE_NAMES)
        or Template(DEFAULT_HEARTBEAT_SUMMARY),
    )


def _parse_events(raw: object, problems: _Problems) -> EventPolicy:
    if raw is None:
        return EventPolicy()
    path = "events"
    if not isinstance(raw, Mapping):
        problems.add(path, "must be a mapping")
        return EventPolicy()
    problems.unknown_keys(raw, _EVENT_KEYS, path)
    return EventPolicy(
        expired_severity=problems.severity(raw, "expired_severity", path, Severity.CRITICAL),
        repeat=problems.duration(raw, "repeat_interval", path, DEFAULT_REPEAT),
        runbook=problems.url(raw, "runbook", path),
    )
