"""The status page in a real headless Chromium: it loads through the token redirect, its
script draws every host's chart, it refreshes itself, and hostile text stays text.

The screenshot lands in tests/artifacts/status.png for a person to look at.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import requests

from tests.support.programs import require_program
from tests.support.status import HOSTILE_COMMENT, HOSTILE_HOST, seed_fleet

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def chromium_path() -> str:
    return require_program("chromium", "chromium", aliases=("chromium-browser",))


@pytest.fixture(autouse=True)
def _needs_chromium() -> None:
    chromium_path()  # before the stack is set up: skip (or fail under CI=true) at once


@pytest.fixture
def served(alerting_stack):
    """The app over real HTTP on a free port, as the local stack serves it."""
    import app
    from fleetpulse.stack import LocalApi, free_port

    port = free_port()
    api = LocalApi(app.app, "127.0.0.1", port)
    api.start()
    yield alerting_stack, f"http://127.0.0.1:{port}"
    api.close()


def http_send(url):
    def send(method, path, payload, token):
        response = requests.request(
            method,
            url + path,
            json=payload,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        return response.status_code, response.json() if response.content else None

    return send


def chromium(tmp_path, url, *args, budget_ms):
    command = [
        chromium_path(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--virtual-time-budget={budget_ms}",
        "--window-size=1280,900",
        *args,
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_status_page_in_a_real_browser(served, tmp_path, monkeypatch):
    stack, url = served
    seed_fleet(stack, http_send(url))
    renders = []
    status = stack.services.alerting.status
    monkeypatch.setattr(
        stack.services.alerting, "status", lambda now: renders.append(now) or status(now)
    )
    page = f"{url}/status?token={stack.admin_token}"

    # 25 s of virtual time: the first load, then the script's refreshes every 10 s.
    dom = chromium(tmp_path, page, "--dump-dom", budget_ms=25_000)
    assert len(renders) >= 2, "the page did not refresh itself"
    assert "<title>fleetpulse status</title>" in dom  # the cookie got it past the token page
    charts = re.findall(r'<svg class="spark".*?</svg>', dom, re.S)
    assert len(charts) == 8
    drawn = [c for c in charts if "<polyline" in c]
    assert len(drawn) == 4  # web-1, db-1, web-2, api-1: an hour of CPU and memory each
    assert all('class="cpu"' in c and 'class="mem"' in c for c in drawn)
    assert "CPU 85%" in dom
    assert 'class="state late">late<' in dom
    # Hostile text is text: the only script is the page's own.
    assert dom.count("<script") == 1
    assert HOSTILE_HOST not in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert HOSTILE_COMMENT not in dom
    assert "<img" not in dom

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "status.png"
    shot.unlink(missing_ok=True)
    chromium(tmp_path, page, f"--screenshot={shot}", "--window-size=1280,1500", budget_ms=3_000)
    assert shot.stat().st_size > 10_000
    print(f"status page screenshot: {shot}")
