"""How `chalice deploy` sees the notifier Lambdas: each stage's own topic, its timeout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Loads the app the way `chalice deploy --stage <stage>` does: the stage's
# environment variables are set before app.py is imported.
LOAD = """
import json, os, sys
from chalice.cli.factory import CLIFactory
factory = CLIFactory(project_dir=".", environ=os.environ)  # as the `chalice` command makes it
config = factory.create_config_obj(chalice_stage_name=sys.argv[1])
app = config.chalice_app
print(json.dumps({
    "topics": sorted([s.name, s.topic] for s in app.event_sources if hasattr(s, "topic")),
    "timeouts": {n: config.scope(sys.argv[1], n).lambda_timeout
                 for n in ("notify_slack", "notify_pagerduty", "api_handler")},
}))
"""


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_each_stage_subscribes_its_notifiers_to_its_own_topic(stage):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETPULSE_")}
    out = subprocess.run(
        [sys.executable, "-c", LOAD, stage],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(out.stdout)
    topic = f"fleetpulse-{stage}-alerts"
    assert seen["topics"] == [["notify_pagerduty", topic], ["notify_slack", topic]]
    # The delivery deadline (20 s) plus the ledger must fit in the timeout.
    assert seen["timeouts"] == {"notify_slack": 30, "notify_pagerduty": 30, "api_handler": 25}
