"""GET /status: who may read it, what it shows, and that user input cannot become markup."""

from __future__ import annotations

import json
import re

import pytest

from tests.support.status import (
    HOSTILE_COMMENT,
    HOSTILE_HOST,
    HOSTILE_MOUNT,
    HOSTILE_TAG,
    seed_fleet,
)


def chalice_send(stack):
    def send(method, path, payload, token):
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        body = json.dumps(payload) if payload is not None else ""
        response = getattr(stack.client.http, method.lower())(path, headers=headers, body=body)
        return response.status_code, response.json_body

    return send


def get(stack, path="/status", **headers):
    return stack.client.http.get(path, headers=headers)


def text(response):
    return response.body.decode() if isinstance(response.body, bytes) else response.body


def test_without_a_token_the_page_asks_for_one(alerting_stack):
    response = get(alerting_stack)
    assert response.status_code == 401
    assert response.headers["Content-Type"].startswith("text/html")
    page = text(response)
    assert "This page needs an admin token." in page
    assert '<input id="token" name="token" type="password"' in page


def test_a_token_in_the_address_is_moved_into_a_cookie(alerting_stack):
    stack = alerting_stack
    response = get(stack, f"/status?token={stack.admin_token}")
    assert response.status_code == 303
    assert response.headers["Location"] == "status"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"fleetpulse_status={stack.admin_token};")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http on 127.0.0.1
    behind_https = get(
        stack, f"/status?token={stack.admin_token}", **{"X-Forwarded-Proto": "https"}
    )
    assert "; Secure" in behind_https.headers["Set-Cookie"]
    page = get(stack, Cookie=f"other=1; fleetpulse_status={stack.admin_token}")
    assert page.status_code == 200
    assert '<h2 id="hosts-title">Hosts</h2>' in text(page)


def test_a_bearer_token_works_and_other_tokens_do_not(alerting_stack):
    stack = alerting_stack
    assert get(stack, Authorization=f"Bearer {stack.admin_token}").status_code == 200
    fleet = get(stack, f"/status?token={stack.fleet_token}")
    assert fleet.status_code == 403
    assert "not an admin token" in text(fleet)
    forged = get(stack, Cookie="fleetpulse_status=fp_aaaaaaaaaaaa_" + "b" * 43)
    assert forged.status_code == 401
    assert forged.headers["Set-Cookie"].startswith("fleetpulse_status=; Max-Age=0")


def test_the_page_can_be_made_public(alerting_stack):
    stack = alerting_stack
    stack.services.settings = type(stack.services.settings)(
        **{**stack.services.settings.__dict__, "status_public": True}
    )
    assert get(stack).status_code == 200


def test_the_page_shows_every_host_state_alerts_silences_and_escapes_user_input(alerting_stack):
    stack = alerting_stack
    seed_fleet(stack, chalice_send(stack))
    response = get(stack, Authorization=f"Bearer {stack.admin_token}")
    assert response.status_code == 200
    page = text(response)
    csp = response.headers["Content-Security-Policy"]
    nonce = re.search(r"script-src 'nonce-([^']+)'", csp).group(1)
    assert "default-src 'none'" in csp
    assert page.count("<script") == 1
    assert f'<script nonce="{nonce}">' in page
    assert response.headers["Cache-Control"] == "no-store"

    def row(host):
        match = re.search(
            r'<tr class="host"><th scope="row"><a class="name" href="status/hosts/[^"]+">'
            + re.escape(host)
            + r"</a>.*?</tr>",
            page,
            re.S,
        )
        assert match, host
        return match.group(0)

    assert 'class="state up">up<' in row("web-1")
    assert 'class="state up">up<' in row("db-1")
    assert 'class="state late">late<' in row("api-1")
    assert 'class="state down">down<' in row("web-2")
    assert 'class="state retired">retired<' in row("old-1")
    assert 'class="state paused">paused<' in row("batch-1")
    assert 'class="state new">new<' in row("new-1")
    assert ">1 min ago<" in row("api-1")  # 90 s
    assert ">0 s ago<" in row("web-1")
    # Down first, then late: what needs eyes comes first.
    order = re.findall(r'<a class="name" href="[^"]*">([^<]*)</a>', page)
    assert order[:2] == ["web-2", "api-1"]
    points = json.loads(
        re.search(r'data-points="([^"]*)"', row("db-1")).group(1).replace("&quot;", '"')
    )
    # 31 posts a minute apart: one point per 5-minute step, each step's newest.
    assert len(points) == 7
    assert len({p[0] // 300_000 for p in points}) == 7
    assert points[-1][1:] == [85.0, 82.0]
    assert "CPU 85%" in row("db-1")
    assert "mem 82%" in row("db-1")

    alerts = page[page.index('<table class="alerts">') : page.index('id="hosts-title"')]
    summaries = re.findall(
        r'<tr class="alert (\w+)"><td><span class="sev (\w+)">.*?<td>([^<]*)</td><td title',
        alerts,
        re.S,
    )
    # Firing first, the worst first, the oldest first.
    assert summaries == [
        ("firing", "critical", "web-2"),
        ("firing", "critical", "db-1"),
        ("firing", "critical", "web-1"),
        ("pending", "warning", "api-1"),
    ]
    assert "silenced" in alerts[alerts.index("db-1") - 400 : alerts.index("db-1") + 200]
    # User input is text, never markup; the page's own script is the only one.
    for hostile in (HOSTILE_HOST, HOSTILE_COMMENT, HOSTILE_TAG, HOSTILE_MOUNT):
        assert hostile not in page
    assert (
        '<a class="name" href="status/hosts/%3Cscript%3Ealert%281%29%3C%2Fscript%3E">'
        "&lt;script&gt;alert(1)&lt;/script&gt;</a>"
    ) in page
    assert "&lt;img src=x onerror=alert(1)&gt; kernel upgrade" in page
    assert "role=&lt;b&gt;web&lt;/b&gt;" in page
    assert "Disk /data&lt;i&gt;x&lt;/i&gt; at 97% on web-1" in page
    silences = page[page.index('<table class="silences">') :]
    assert "<code>host=db-1</code>" in silences
    assert "sat 02:00-04:00 UTC; starts" in silences
    assert "active" in silences
    assert "pending" in silences


def test_every_field_of_the_view_is_escaped():
    from datetime import UTC, datetime, timedelta

    from chalicelib.core.alert_message import Severity
    from chalicelib.core.alerts import AlertState
    from chalicelib.core.heartbeats import HostStatus
    from chalicelib.core.hosts import HistoryPoint
    from chalicelib.core.silences import SilenceState
    from chalicelib.core.status import AlertRow, HostRow, SilenceRow, StatusView
    from chalicelib.status_page import render_page

    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    evil = '"><script>alert(1)</script><x y="'
    view = StatusView(
        now,
        (
            HostRow(
                evil,
                HostStatus.UP,
                now,
                timedelta(seconds=60),
                {evil: evil},
                evil,
                (HistoryPoint(1, 1.0, 2.0),),
                1,
            ),
        ),
        (AlertRow(evil, evil, evil, AlertState.FIRING, Severity.CRITICAL, evil, now, True),),
        (SilenceRow(evil, {evil: evil}, SilenceState.ACTIVE, evil, None, None, evil, evil),),
    )
    page = render_page(view, "nonce")
    assert "<script>alert(1)" not in page
    assert page.count("<script") == 1
    assert page.count("&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;") >= 8


@pytest.mark.parametrize("path", ["/status", "/status?token="])
def test_an_empty_token_is_no_token(alerting_stack, path):
    assert get(alerting_stack, path).status_code == 401
