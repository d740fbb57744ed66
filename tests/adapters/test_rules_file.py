"""The rules file on disk: the shipped default, FLEETPULSE_RULES, and loud failures."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.adapters.rules_file import DEFAULT_RULES, load_policy, load_rules, rules_path
from chalicelib.core.rules import RulesError
from chalicelib.settings import Settings, SettingsError


def test_the_shipped_default_has_good_host_rules():
    rules = load_rules(DEFAULT_RULES)
    names = {r.name for r in rules.rules}
    assert {"cpu-busy", "memory-high", "disk-full", "load-per-core", "swap-high"} <= names
    assert rules.by_name["load-per-core"].divide_by == "n_cpus"
    assert all(r.summary.text for r in rules.rules)


def test_fleetpulse_rules_points_at_another_file(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n"
        "  - name: disk-full\n"
        "    measurement: disk\n"
        "    field: used_percent\n"
        '    op: ">"\n'
        "    critical: 95\n"
        "    for: 5m\n"
        "    match: {host: 'web-*', role: web}\n"
    )
    settings = Settings.from_env(
        {
            "FLEETPULSE_RULES": str(path),
            "FLEETPULSE_HEARTBEAT_GRACE": "90",
            "FLEETPULSE_OUTAGE_SHARE": "0.5",
            "FLEETPULSE_RETIRED_RETENTION": "3d",
            "FLEETPULSE_STATUS_URL": "https://status.example",
        }
    )
    policy = load_policy(settings)
    assert [r.name for r in policy.rules.rules] == ["disk-full"]
    assert policy.default_grace == timedelta(seconds=90)
    assert policy.outage_share == 0.5
    assert policy.retired_retention == timedelta(days=3)
    assert policy.status_url == "https://status.example"
    assert rules_path("chalicelib/rules/default.yaml") == DEFAULT_RULES
    assert rules_path(None) == DEFAULT_RULES


def test_a_bad_file_names_the_file_rule_and_key(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n  - name: disk-full\n    measurement: disk\n    field: x\n    critical: high\n"
    )
    with pytest.raises(
        RulesError, match=r"rules.yaml: rules\[0\] \(disk-full\).critical: must be a number"
    ):
        load_rules(path)
    path.write_text("rules:\n  - name: [unclosed\n")
    with pytest.raises(RulesError, match="line 3: not valid YAML"):
        load_rules(path)
    with pytest.raises(RulesError, match="cannot read the rules file"):
        load_rules(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"FLEETPULSE_HEARTBEAT_GRACE": "soon"}, "FLEETPULSE_HEARTBEAT_GRACE must be a duration"),
        ({"FLEETPULSE_OUTAGE_SHARE": "2"}, "FLEETPULSE_OUTAGE_SHARE must be above 0"),
        ({"FLEETPULSE_OUTAGE_MIN_HOSTS": "x"}, "FLEETPULSE_OUTAGE_SHARE/MIN_HOSTS"),
    ],
)
def test_alerting_settings_are_checked(env, complaint):
    with pytest.raises(SettingsError, match=complaint):
        Settings.from_env(env)
