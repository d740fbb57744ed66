"""Deploying a stage: how the CloudFormation stack's outputs become the chalice stage's
environment variables."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHALICE_DIR = ROOT / ".chalice"

# Stack output -> the environment variable of the chalice stage it sets.
OUTPUT_VARIABLES: dict[str, str] = {
    "Stage": "FLEETPULSE_STAGE",
    "Store": "FLEETPULSE_STORE",
    "TokensTable": "FLEETPULSE_TOKENS_TABLE",
    "HostsTable": "FLEETPULSE_HOSTS_TABLE",
    "AlertsTable": "FLEETPULSE_ALERTS_TABLE",
    "SilencesTable": "FLEETPULSE_SILENCES_TABLE",
    "LedgerTable": "FLEETPULSE_LEDGER_TABLE",
    "AlertsTopicArn": "FLEETPULSE_ALERTS_TOPIC_ARN",
    "AlertsTopicName": "FLEETPULSE_ALERTS_TOPIC",
    "TimestreamDatabase": "FLEETPULSE_TIMESTREAM_DATABASE",
    "TimestreamTable": "FLEETPULSE_TIMESTREAM_TABLE",
    "MemoryStoreRetentionHours": "FLEETPULSE_MEMORY_RETENTION_HOURS",
    "NotifyFailureQueueName": "FLEETPULSE_NOTIFY_FAILURE_QUEUE",
    "SlackWebhookParameter": "FLEETPULSE_SLACK_WEBHOOK_PARAM",
    "PagerDutyRoutingKeyParameter": "FLEETPULSE_PAGERDUTY_ROUTING_KEY_PARAM",
    "AlertEmail": "FLEETPULSE_ALERT_EMAILS",
    "EmailSeverities": "FLEETPULSE_ROUTE_EMAIL",
    "InfluxUrl": "FLEETPULSE_INFLUX_URL",
    "InfluxApi": "FLEETPULSE_INFLUX_API",
    "InfluxOrg": "FLEETPULSE_INFLUX_ORG",
    "InfluxBucket": "FLEETPULSE_INFLUX_BUCKET",
    "InfluxDatabase": "FLEETPULSE_INFLUX_DB",
    "InfluxUsername": "FLEETPULSE_INFLUX_USERNAME",
    "InfluxTokenParameter": "FLEETPULSE_INFLUX_TOKEN_PARAM",
}
# Outputs that only exist under a condition, and whose variable must then be emptied (an
# email address or InfluxDB URL left over from an earlier setting would be used). The
# Timestream names are left alone when the store is InfluxDB: nothing reads them.
CLEARED_WHEN_ABSENT = frozenset(
    {
        "AlertEmail",
        "InfluxUrl",
        "InfluxOrg",
        "InfluxBucket",
        "InfluxDatabase",
        "InfluxUsername",
        "InfluxTokenParameter",
    }
)
# Outputs the deploy steps read themselves.
STEP_OUTPUTS = frozenset({"NotifyFailureQueueArn"})


class DeployError(Exception):
    """A deploy step cannot go on; the message says why and what to do."""


def stack_name(stage: str) -> str:
    return f"fleetpulse-{stage}"


# -- JSON files written back as people wrote them ----------------------------------------


def dump_json(value: Any, width: int = 100) -> str:
    """JSON indented by two, with a list of plain values on one line when it fits in
    `width` (how .chalice/*.json are written by hand), and a final newline."""

    def render(v: Any, indent: int, prefix: int) -> str:
        pad = " " * (indent + 2)
        if isinstance(v, dict) and v:
            items = [
                f"{pad}{json.dumps(k)}: {render(x, indent + 2, len(pad) + len(json.dumps(k)) + 2)}"
                for k, x in v.items()
            ]
            return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
        if isinstance(v, list) and v:
            if all(not isinstance(x, dict | list) for x in v):
                inline = "[" + ", ".join(json.dumps(x) for x in v) + "]"
                if prefix + len(inline) + 1 <= width:
                    return inline
            return (
                "[\n"
                + ",\n".join(pad + render(x, indent + 2, len(pad)) for x in v)
                + "\n"
                + " " * indent
                + "]"
            )
        return json.dumps(v)

    return render(value, 0, 0) + "\n"


# -- stack outputs -> .chalice/config.json --------------------------------------------------


@dataclass(frozen=True)
class Change:
    variable: str
    before: str | None  # None: was not set for the stage
    after: str

    def __str__(self) -> str:
        if self.before is None:
            return f"+ {self.variable}={self.after}"
        return f"~ {self.variable}: {self.before} -> {self.after}"


def stage_environment(config: Mapping[str, Any], stage: str) -> dict[str, str]:
    """The environment chalice gives the stage's functions: the top level, then the stage's."""
    stages = config.get("stages", {})
    if stage not in stages:
        raise DeployError(f".chalice/config.json has no stage {stage!r}")
    return {
        **config.get("environment_variables", {}),
        **stages[stage].get("environment_variables", {}),
    }


def configure_stage(config: dict[str, Any], stage: str, outputs: Mapping[str, str]) -> list[Change]:
    """Set the stage's environment variables from the stack's outputs, in place; return what
    changed. A value the stage already gets (from its own or the top-level variables) is
    not repeated; everything else in the file stays as it is."""
    unmapped = sorted(set(outputs) - set(OUTPUT_VARIABLES) - STEP_OUTPUTS)
    if unmapped:
        raise DeployError(f"the stack has outputs no setting takes: {', '.join(unmapped)}")
    if outputs.get("Stage", stage) != stage:
        raise DeployError(f"the stack is for stage {outputs['Stage']!r}, not {stage!r}")
    effective = stage_environment(config, stage)
    env = config["stages"][stage].setdefault("environment_variables", {})
    changes = []
    for output, variable in OUTPUT_VARIABLES.items():
        if output in outputs:
            value = outputs[output]
        elif output in CLEARED_WHEN_ABSENT and effective.get(variable):
            value = ""
        else:
            continue
        if effective.get(variable) != value:
            changes.append(Change(variable, env.get(variable), value))
            env[variable] = value
    return changes


def iam_pattern_matches(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    """IAM's wildcard match: `*` any run of characters, `?` one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    flags = 0 if case_sensitive else re.IGNORECASE
    return re.fullmatch(regex, value, flags) is not None
