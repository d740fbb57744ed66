"""The IAM policies grant exactly the DynamoDB and SNS actions the alerting code calls."""

from __future__ import annotations

import fnmatch
import json
from datetime import timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MINE = {"Hosts", "Alerts", "Silences", "AlertsTopic"}


def exercise(stack) -> set[tuple[str, str]]:
    """Every (action, resource name) the app calls through a scenario touching every path."""
    calls: set[tuple[str, str]] = set()

    def record(service, params, model, **_):
        target = params.get("TableName") or params.get("TopicArn", "").rsplit(":", 1)[-1]
        calls.add((f"{service}:{model.name}", target))

    for service in ("dynamodb", "sns"):
        client = stack.services.clients.get(service)
        client.meta.events.register(
            f"provide-client-params.{service}.*",
            lambda params, model, service=service, **kw: record(service, params, model),
        )
    minute = timedelta(minutes=1)
    stack.post("web-1", disk=97.0, events=[{"service": "backup", "status": "ok", "ttl": 60000}])
    stack.post("db-1", heartbeat={"state": "shutdown"})
    for _ in range(5):
        stack.clock.advance(minute)
        stack.post("web-1", disk=97.0)
        stack.evaluate()
    stack.post("web-2", disk=97.0)
    stack.evaluate()  # pending
    stack.post("web-2", disk=10.0)
    stack.evaluate()  # cleared before `for`: the record goes
    silence = stack.request("POST", "/v1/silences", {"matchers": {"host": "*"}, "duration": "1h"})
    stack.request("GET", "/v1/silences")
    stack.request("DELETE", f"/v1/silences/{silence.json_body['silence_id']}")
    stack.request("POST", "/v1/hosts/web-1/pause")
    stack.request("DELETE", "/v1/hosts/web-1/pause")
    stack.request("DELETE", "/v1/hosts/web-1/pause")  # not paused: a read says it exists
    stack.request("GET", "/v1/hosts")
    stack.request("GET", "/v1/alerts")
    stack.clock.advance(timedelta(days=8))  # web-1 down, stale values pruned, db-1 forgotten
    stack.evaluate()
    return calls


@pytest.mark.parametrize("stage", ["dev"])
def test_policy_allows_every_call_and_nothing_unused(alerting_stack, stage):
    calls = exercise(alerting_stack)
    policy = json.loads((ROOT / ".chalice" / f"policy-{stage}.json").read_text())
    granted = [
        (statement["Sid"], action, resource.rsplit("/", 1)[-1].rsplit(":", 1)[-1])
        for statement in policy["Statement"]
        for action in statement["Action"]
        for resource in (
            [statement["Resource"]]
            if isinstance(statement["Resource"], str)
            else statement["Resource"]
        )
    ]
    stage_names = {target.replace("dev", stage) for _, target in calls}
    for action, target in calls:
        name = target.replace("dev", stage)
        assert any(
            fnmatch.fnmatch(action.lower(), a.lower()) and fnmatch.fnmatch(name, r)
            for _, a, r in granted
        ), f"{action} on {name} is not granted"
    used = {(a.lower(), t.replace("dev", stage)) for a, t in calls}
    for sid, action, resource in granted:
        if sid in MINE:
            assert (action.lower(), resource) in used, f"{sid} grants {action} but nothing calls it"
    assert f"fleetpulse-{stage}-alerts" in stage_names


def test_both_stages_configure_the_alerting_resources():
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    for stage in ("dev", "prod"):
        env = config["stages"][stage]["environment_variables"]
        assert env["FLEETPULSE_ALERTS_TABLE"] == f"fleetpulse-{stage}-alerts"
        assert env["FLEETPULSE_SILENCES_TABLE"] == f"fleetpulse-{stage}-silences"
        assert env["FLEETPULSE_ALERTS_TOPIC_ARN"].endswith(f":fleetpulse-{stage}-alerts")
        prod = json.loads((ROOT / ".chalice" / f"policy-{stage}.json").read_text())
        dev = json.loads((ROOT / ".chalice" / "policy-dev.json").read_text())
        assert json.dumps(prod).replace(stage, "dev") == json.dumps(dev)
