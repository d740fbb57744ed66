"""`make demo`: the scripted story runs end to end on the local stack (at a faster pace)."""

from __future__ import annotations

import json
import os
import threading

from fleetpulse.demo import FAST, run_demo


def test_the_demo_story_happens_step_by_step(tmp_path, monkeypatch):
    # The caller's own webhooks must not steal the demo's notifications.
    monkeypatch.setenv("FLEETPULSE_SLACK_WEBHOOK_URL", "http://127.0.0.1:9/nowhere")
    before = set(threading.enumerate())
    lines = []
    assert run_demo(state_dir=tmp_path, pace=FAST, out=lines.append) == 0, "\n".join(lines)
    timeline = "\n".join(lines)
    steps = [
        "ok  demo-web-1 is late",
        "ok  demo-web-1 is down",
        "ok  PagerDuty was paged (critical)",
        "ok  PagerDuty incident resolved",
        "ok  the alert is pending",
        "ok  the alert fires",
        "ok  Slack was told (warning)",
        "ok  the alert fires, silenced",
        "ok  nothing was sent while it is silenced",
        "ok  Slack is told now",
        "ok  both are retired",
        "ok  and nobody was paged",
    ]
    positions = [timeline.index(step) for step in steps]
    assert positions == sorted(positions), timeline
    assert "demo complete" in lines[-1]
    inbox = [json.loads(line) for line in (tmp_path / "inbox.jsonl").read_text().splitlines()]
    assert [r["channel"] for r in inbox].count("pagerduty") == 2
    assert len(inbox) == 8
    assert os.environ["FLEETPULSE_SLACK_WEBHOOK_URL"] == "http://127.0.0.1:9/nowhere"
    assert "FLEETPULSE_RULES" not in os.environ
    assert [t.name for t in threading.enumerate() if t not in before and t.is_alive()] == []
