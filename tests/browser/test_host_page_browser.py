"""A host's history page in a real headless Chromium, over a real influxd fed through the
collector: the charts are drawn from /v1/series, the range switches, the week-ago overlay
appears, and the token stays in an HttpOnly cookie.

Screenshots land in tests/artifacts/host-24h.png and host-7d.png for a person to look at.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

import pytest
import requests

from chalicelib.core.instants import ms_of_instant
from chalicelib.wiring import use
from tests.browser.test_status_page_browser import ARTIFACTS, chromium, chromium_path
from tests.support.history import HISTORY_NOW, Clock, influx_services
from tests.support.http import add_token

STEP = timedelta(minutes=5)


@pytest.fixture(autouse=True)
def _needs_chromium() -> None:
    chromium_path()


@pytest.fixture
def served(influxd):
    """The app on real HTTP, storing into and reading from its own influxd database."""
    import app
    from fleetpulse.stack import LocalApi, free_port

    clock = Clock(HISTORY_NOW)
    services = influx_services(influxd, influxd.new_database(), clock)
    use(services)
    port = free_port()
    api = LocalApi(app.app, "127.0.0.1", port)
    api.start()
    yield services, clock, f"http://127.0.0.1:{port}"
    api.close()


def post_history(services, clock, url) -> None:
    """Eight days of CPU (a daily wave, three times higher this week) and six hours of disk."""
    token = add_token(services, "fleet")
    n_points = 8 * 24 * 12
    values = []
    for n in range(n_points, 0, -1):
        at = HISTORY_NOW - n * STEP
        level = 30.0 if HISTORY_NOW - at <= timedelta(days=1) else 10.0
        v = level + 5 * math.sin(2 * math.pi * n / 288)
        values.append((at, {"user": v, "user_min": v - 3, "user_max": v + 4}))
    for start in range(0, len(values), 200):
        chunk = values[start : start + 200]
        clock.at = chunk[-1][0] + timedelta(seconds=30)
        points = [
            {"measurement": "cpu", "time": ms_of_instant(at), "tags": {"cpu": "total"}, "fields": f}
            for at, f in chunk
        ]
        if start + 200 >= len(values):
            points += [
                {
                    "measurement": "disk",
                    "time": ms_of_instant(HISTORY_NOW - k * STEP),
                    "tags": {"mount": "/"},
                    "fields": {"used_percent": 80 - k * 5 / 12},
                }
                for k in range(1, 72)
            ]
        response = requests.post(
            f"{url}/v1/ingest",
            json={"host": "web-1", "points": points},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        assert response.json()["rejected"] == []
    clock.at = HISTORY_NOW


def figures(dom: str) -> list[str]:
    return re.findall(r'<figure class="chart".*?</figure>', dom, re.S)


def avg_points(figure: str) -> int:
    line = re.search(r'<polyline class="avg" points="([^"]*)"', figure)
    assert line, figure[:500]
    return len(line.group(1).split())


def test_the_host_page_draws_history_switches_range_and_overlays_last_week(served, tmp_path):
    services, clock, url = served
    post_history(services, clock, url)
    admin = add_token(services, "admin")
    page = f"{url}/status/hosts/web-1?token={admin}"

    dom = chromium(tmp_path, page + "&range=24h", "--dump-dom", budget_ms=20_000)
    assert "<title>web-1: fleetpulse</title>" in dom  # the cookie got it past the token page
    assert 'data-drawn="24h"' in dom
    charts = figures(dom)
    assert [re.search(r"<figcaption[^>]*>([^<]*)<", f).group(1) for f in charts] == [
        "cpu.user (cpu=total)",
        "disk.used_percent (mount=/)",
    ]
    cpu, disk = charts
    assert avg_points(cpu) == 288  # 24 h in 5-minute buckets
    assert '<polygon class="band"' in cpu
    assert '<polyline class="week"' in cpu  # the dashed overlay: last week's data exists
    assert "A week earlier: average 10" in cpu
    assert "No data from a week earlier." in disk
    assert 'aria-pressed="true">24 hours<' in dom
    assert dom.count("<script") == 1

    hour = chromium(tmp_path, page + "&range=1h", "--dump-dom", budget_ms=20_000)
    assert 'data-drawn="1h"' in hour
    assert avg_points(figures(hour)[0]) == 12  # 5-minute points in 1-minute buckets
    assert 'aria-pressed="true">1 hour<' in hour

    week = chromium(tmp_path, page + "&range=7d", "--dump-dom", budget_ms=20_000)
    assert 'data-drawn="7d"' in week
    assert avg_points(figures(week)[0]) == 168  # 7 days in 1-hour buckets

    ARTIFACTS.mkdir(exist_ok=True)
    for name, suffix in (("host-24h.png", "&range=24h"), ("host-7d.png", "&range=7d")):
        shot = ARTIFACTS / name
        shot.unlink(missing_ok=True)
        chromium(
            tmp_path,
            page + suffix,
            f"--screenshot={shot}",
            "--window-size=1280,900",
            budget_ms=20_000,
        )
        assert shot.stat().st_size > 10_000
        print(f"host page screenshot: {shot}")


def test_the_host_page_needs_an_admin_token_and_series_take_the_cookie(served):
    services, _, url = served
    add_token(services, "fleet")
    assert requests.get(f"{url}/status/hosts/web-1", timeout=10).status_code == 401
    admin = add_token(services, "admin")
    session = requests.Session()
    session.trust_env = False
    first = session.get(
        f"{url}/status/hosts/web-1?token={admin}", allow_redirects=False, timeout=10
    )
    assert first.status_code == 303
    assert first.headers["Location"] == "web-1"
    assert "HttpOnly" in first.headers["Set-Cookie"]
    assert "Path=/" in first.headers["Set-Cookie"]
    series = session.get(
        f"{url}/v1/series",
        params={"host": "web-1", "measurement": "cpu", "field": "user"},
        timeout=10,
    )
    assert series.status_code == 200, series.text
    assert session.get(f"{url}/status/hosts/nobody", timeout=10).status_code == 404
