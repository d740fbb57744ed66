"""The rules file: every mistake named by rule and key; templates safe to render."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.core.alert_message import Severity
from chalicelib.core.durations import format_duration, parse_duration
from chalicelib.core.rules import Op, RulesError, parse_rules
from chalicelib.core.templates import Template

DISK_RULE = {
    "name": "disk-full",
    "measurement": "disk",
    "field": "used_percent",
    "op": ">",
    "warning": 85,
    "critical": 95,
    "for": "5m",
    "summary": "Disk {tags[mount]} at {value:.0f}% on {host}",
}


def rule(**changes):
    r = dict(DISK_RULE)
    r.update(changes)
    return {k: v for k, v in r.items() if v is not None}


def error_of(document) -> str:
    with pytest.raises(RulesError) as caught:
        parse_rules(document, source="rules.yaml")
    return str(caught.value)


def test_a_full_rule_is_read_with_its_defaults():
    ruleset = parse_rules(
        {
            "defaults": {"repeat_interval": "2h"},
            "rules": [rule(keep_firing_for="5m", match={"host": "web-*", "role": "web"})],
        }
    )
    [disk] = ruleset.rules
    assert disk.op is Op.GT
    assert (disk.warning, disk.critical, disk.recovery) == (85.0, 95.0, None)
    assert (disk.hold, disk.keep, disk.repeat) == (
        timedelta(minutes=5),
        timedelta(minutes=5),
        timedelta(hours=2),
    )
    assert [m.label for m in disk.matchers] == ["host", "role"]
    assert ruleset.by_measurement == {"disk": (disk,)}
    assert ruleset.heartbeat.severity is Severity.CRITICAL
    assert parse_rules(None).rules == ()  # an empty file: heartbeats only


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"rules": [rule(name="a"), rule(name="b"), rule(critical="high")]},
            "rules.yaml: rules[2] (disk-full).critical: must be a number, got 'high'",
        ),
        ({"rules": [rule(threshold=3)]}, "rules[0] (disk-full).threshold: unknown key"),
        ({"rules": [rule(measurement=None)]}, "rules[0] (disk-full).measurement: is required"),
        ({"rules": [rule(name=None)]}, "rules[0].name: is required"),
        ({"rules": [rule(op="=>")]}, 'rules[0] (disk-full).op: must be one of ">"'),
        (
            {"rules": [rule(warning=None, critical=None)]},
            "rules[0] (disk-full).warning: a rule needs a warning or a critical level",
        ),
        (
            {"rules": [rule(warning=95, critical=85)]},
            "rules[0] (disk-full).critical: must be at or above warning (95) for op >",
        ),
        (
            {"rules": [rule(recovery=90)]},
            "rules[0] (disk-full).recovery: must be below the first level (85)",
        ),
        ({"rules": [rule(), rule()]}, "rules[1] (disk-full).name: duplicates rules[0]"),
        ({"rules": [rule(name="heartbeat")]}, "'heartbeat' is reserved"),
        ({"rules": [rule(name="Disk Full")]}, "rules[0] (Disk Full).name: must be lowercase"),
        ({"rules": [rule(**{"for": "5 minutes"})]}, "rules[0] (disk-full).for: must be a duration"),
        ({"rules": [rule(match=["host"])]}, "rules[0] (disk-full).match: must be a mapping"),
        ({"rules": [rule(runbook="wiki/disk")]}, "rules[0] (disk-full).runbook: must be an http"),
        ({"rules": [rule(summary="Disk {value:.0q}")]}, "summary: invalid template: {value:.0q}"),
        (
            {"rules": [rule(summary="Disk {hots}")]},
            "summary: invalid template: unknown name {hots}",
        ),
        ({"rules": [rule(summary="{value.__class__}")]}, "attribute access is not allowed"),
        ({"rules": [rule(summary="Disk {tags[mount]")]}, "summary: invalid template: expected '}'"),
        ({"rules": [rule(summary="{}")]}, "placeholders must be named"),
        ({"rules": [rule(repeat_interval="10s")]}, "repeat_interval: must be at least 1m"),
        ({"rules": {"disk": 1}}, "rules: must be a list of rules"),
        ({"rule": []}, "rule: unknown key"),
        (
            {"heartbeat": {"overrides": [{"match": {"role": "batch"}, "grace": "soon"}]}},
            "heartbeat.overrides[0].grace: must be a duration",
        ),
        ({"heartbeat": {"severity": "page"}}, "heartbeat.severity: must be one of critical"),
        ({"events": {"expired_severity": "loud"}}, "events.expired_severity: must be one of"),
        ([1, 2], "the rules file must be a mapping"),
    ],
)
def test_a_bad_rules_file_fails_loudly_naming_rule_and_key(document, message):
    assert message in error_of(document)


def test_every_problem_is_listed_not_just_the_first():
    text = error_of({"rules": [rule(critical="x"), rule(name="b", op="!")]})
    assert "2 problems" in text
    assert "rules[0] (disk-full).critical" in text
    assert "rules[1] (b).op" in text


def test_levels_with_hysteresis():
    [r] = parse_rules({"rules": [rule(recovery=80)]}).rules
    assert r.level(96, active=False) == (Severity.CRITICAL, 95.0)
    assert r.level(90, active=False) == (Severity.WARNING, 85.0)
    assert r.level(82, active=False) is None
    assert r.level(82, active=True) == (Severity.WARNING, 85.0)  # not yet back below 80
    assert r.level(79, active=True) is None
    [low] = parse_rules(
        {"rules": [rule(op="<", warning=10, critical=3, recovery=20, field="idle")]}
    ).rules
    assert low.level(2, active=False) == (Severity.CRITICAL, 3.0)
    assert low.level(15, active=True) == (Severity.WARNING, 10.0)
    assert low.level(21, active=True) is None


def test_a_template_missing_a_key_renders_a_readable_fallback():
    template = Template("Disk {tags[mount]} at {value:.0f}% on {host}")
    assert template.render({"tags": {}, "value": 97.2, "host": "web-1"}) == (
        "Disk <no tags[mount]> at 97% on web-1"
    )
    assert template.render({"tags": {"mount": "/"}, "value": "n/a", "host": "h"}) == (
        "Disk / at n/a% on h"
    )
    assert Template("{{literal}}").render({}) == "{literal}"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("4h", 14400), ("1d", 86400), ("1h30m", 5400), ("90", 90), (45, 45)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5 m", "m5", "-1", -3, True, "5mm", None])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_duration_format():
    assert format_duration(timedelta(seconds=90)) == "1m30s"
    assert format_duration(timedelta(days=1, minutes=2)) == "1d2m"
    assert format_duration(timedelta(0)) == "0s"
