"""GET /status: the fleet on one HTML page that refreshes itself.

Who may read it: an admin token, given once as `?token=` (answered with a redirect that
drops it from the address and keeps it in an HttpOnly cookie) or as `Authorization:
Bearer`; or anyone, with FLEETPULSE_STATUS_PUBLIC=true. Everything shown is escaped
(host names, summaries, tags and comments are user input), and the Content-Security-
Policy lets only this response's own script and style run, so an escaping slip still
could not run anything. No external asset: the charts are a few lines of script
drawing inline SVG from the host's CPU and memory ring.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from datetime import datetime
from html import escape
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING
from urllib.parse import quote

from chalice import Response  # type: ignore[attr-defined]
from chalice.app import Request

from chalicelib.core.alerts import AlertState
from chalicelib.core.errors import Forbidden, Unauthorized
from chalicelib.core.hosts import HISTORY_STEP_MS, HistoryPoint
from chalicelib.core.instants import iso, ms_of_instant
from chalicelib.core.silences import SilenceState
from chalicelib.core.status import (
    AlertRow,
    HostRow,
    SilenceRow,
    StatusView,
    ago,
    clock_text,
    span,
)
from chalicelib.services.auth import require_admin
from chalicelib.web import header, query_param

if TYPE_CHECKING:
    from chalicelib.wiring import Services

COOKIE = "fleetpulse_status"
COOKIE_MAX_AGE_S = 7 * 86400
REFRESH_S = 10


class Html(str):
    """Markup that is already safe; anything else put into a template is escaped."""

    __slots__ = ()


def html(template: str, **values: object) -> Html:
    """`template` (a constant) with every value escaped, unless it is Html already."""
    return Html(
        template.format_map(
            {k: v if isinstance(v, Html) else escape(str(v), quote=True) for k, v in values.items()}
        )
    )


def join(parts: Iterable[Html], sep: str = "") -> Html:
    return Html(sep.join(parts))


# -- the request


def status_response(request: Request, svc: Services) -> Response:
    """The page, a redirect that stores a `?token=` in a cookie, or a page that asks for one."""
    https = (header(request, "x-forwarded-proto") or "").lower() == "https"
    token = query_param(request, "token")
    if token is not None:
        refused = _refusal(svc, f"Bearer {token}")
        if refused is not None:
            return refused
        # Relative: behind API Gateway the page lives under the stage (/api/status).
        return Response(
            body="",
            status_code=303,
            headers={
                "Location": "status",
                "Content-Type": "text/plain; charset=utf-8",
                "Set-Cookie": _cookie(token, COOKIE_MAX_AGE_S, https),
                "Cache-Control": "no-store",
                "Referrer-Policy": "no-referrer",
            },
        )
    if not svc.settings.status_public:
        from_cookie = _cookie_token(header(request, "cookie"))
        authorization = header(request, "authorization") or (
            f"Bearer {from_cookie}" if from_cookie else None
        )
        refused = _refusal(svc, authorization)
        if refused is not None:
            if from_cookie:
                refused.headers["Set-Cookie"] = _cookie("", 0, https)
            return refused
    nonce = secrets.token_urlsafe(16)
    view = svc.alerting.status(svc.clock())
    return Response(body=render_page(view, nonce), status_code=200, headers=_headers(nonce))


def _refusal(svc: Services, authorization: str | None) -> Response | None:
    """None when `authorization` carries an admin token; else the page asking for one."""
    try:
        require_admin(svc.authenticator.authenticate(authorization))
    except Unauthorized as exc:
        said = exc.error.capitalize() + "." if authorization else "This page needs an admin token."
        return _ask_for_token(said, 401)
    except Forbidden:
        return _ask_for_token("That token is not an admin token.", 403)
    return None


def _cookie(token: str, max_age_s: int, https: bool) -> str:
    # HttpOnly: the page's own script never needs it. SameSite=Lax: other sites cannot
    # make a browser send it along with their requests, yet the "Status page" link in a
    # Slack message or a PagerDuty incident opens the page (the cookie reads, and only
    # on GET /status: it changes nothing). No Path: it defaults to the page's directory,
    # which is right locally (/) and behind API Gateway (/api).
    value = f"{COOKIE}={token}; Max-Age={max_age_s}; HttpOnly; SameSite=Lax"
    return value + "; Secure" if https else value


def _cookie_token(header: str | None) -> str | None:
    if not header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


def _headers(nonce: str) -> dict[str, str | list[str]]:
    return {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
        ),
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
    }


def _ask_for_token(problem: str, status: int) -> Response:
    nonce = secrets.token_urlsafe(16)
    body = html(
        LOGIN_TEMPLATE,
        style=Html(STYLE),
        nonce=nonce,
        problem=problem,
    )
    return Response(body=body, status_code=status, headers=_headers(nonce))


# -- the page


def render_page(view: StatusView, nonce: str) -> str:
    """The whole page for `view`; `nonce` is the CSP nonce of its script and style."""
    return html(
        PAGE_TEMPLATE,
        nonce=nonce,
        style=Html(STYLE),
        script=Html(SCRIPT),
        main=render_main(view),
    )


def render_main(view: StatusView) -> Html:
    now = view.now
    return html(
        MAIN_TEMPLATE,
        now_ms=ms_of_instant(now),
        refresh=REFRESH_S,
        updated=clock_text(now, now),
        updated_iso=iso(now),
        summary=_summary(view),
        alerts=_alerts(view.alerts, now),
        hosts=_hosts(view.hosts, now),
        silences=_silences(view.silences, now),
    )


def _summary(view: StatusView) -> Html:
    counts = view.host_counts()
    shown = [
        html('<span class="state {s}">{n} {s}</span>', s=status.value, n=n)
        for status, n in counts.items()
        if n
    ]
    hosts = html(
        "{n} host{plural}{colon}{states}",
        n=len(view.hosts),
        plural="" if len(view.hosts) == 1 else "s",
        colon=": " if shown else "",
        states=join(shown, " "),
    )
    alerts = view.alert_counts()
    active = sum(1 for s in view.silences if s.state is SilenceState.ACTIVE)
    return html(
        "{hosts} &middot; {firing} firing, {pending} pending &middot; {silences} active silence{s}",
        hosts=hosts,
        firing=alerts[AlertState.FIRING],
        pending=alerts[AlertState.PENDING],
        silences=active,
        s="" if active == 1 else "s",
    )


def _alerts(rows: tuple[AlertRow, ...], now: datetime) -> Html:
    if not rows:
        return Html('<p class="empty">No alert is firing or pending.</p>')
    body = join(
        html(
            ALERT_ROW,
            severity=a.severity.value,
            state=a.state.value,
            summary=a.summary,
            rule=a.rule,
            host=a.host,
            since=span(now - a.since),
            since_at=clock_text(a.since, now),
            note=Html('<span class="silenced">silenced</span>') if a.silenced else "",
        )
        for a in rows
    )
    return html(ALERTS_TABLE, rows=body)


def _hosts(rows: tuple[HostRow, ...], now: datetime) -> Html:
    if not rows:
        return Html('<p class="empty">No host has reported yet.</p>')
    body = join(_host_row(h, now) for h in rows)
    return html(HOSTS_TABLE, rows=body)


def _host_row(h: HostRow, now: datetime) -> Html:
    latest = h.history[-1] if h.history else None
    tags = ", ".join(f"{k}={v}" for k, v in sorted(h.tags.items()))
    details = [x for x in (tags, h.agent) if x]
    return html(
        HOST_ROW,
        host=h.host,
        host_q=quote(h.host, safe=""),
        details=join((html('<span class="detail">{d}</span>', d=d) for d in details), " "),
        state=h.status.value,
        alerts=html(' <span class="count">{n} open</span>', n=h.open_alerts)
        if h.open_alerts
        else "",
        seen=ago(h.last_seen_at, now),
        seen_at=clock_text(h.last_seen_at, now),
        every=span(h.interval),
        points=_points(h.history),
        label=_chart_label(h.host, h.history),
        now_text=_now_text(latest),
    )


def _points(history: tuple[HistoryPoint, ...]) -> str:
    return json.dumps([[p.time_ms, p.cpu, p.mem] for p in history], separators=(",", ":"))


def _chart_label(host: str, history: tuple[HistoryPoint, ...]) -> str:
    if not history:
        return f"No CPU or memory data for {host} in the last hour"
    # One point per HISTORY_STEP_MS (core/hosts.py): the newest values of that step.
    steps = "1 step" if len(history) == 1 else f"{len(history)} steps"
    minutes = HISTORY_STEP_MS // 60_000
    return f"CPU and memory of {host}, last hour ({steps} of {minutes} minutes with data)"


def _now_text(latest: HistoryPoint | None) -> Html:
    if latest is None:
        return Html('<span class="muted">no data</span>')
    parts = []
    if latest.cpu is not None:
        parts.append(html('<span class="cpu-text">CPU {v}%</span>', v=f"{latest.cpu:.0f}"))
    if latest.mem is not None:
        parts.append(html('<span class="mem-text">mem {v}%</span>', v=f"{latest.mem:.0f}"))
    return join(parts, "<br>")


def _silences(rows: tuple[SilenceRow, ...], now: datetime) -> Html:
    if not rows:
        return Html('<p class="empty">No silence is active or planned.</p>')
    body = join(
        html(
            SILENCE_ROW,
            matchers=", ".join(f"{k}={v}" for k, v in s.matchers.items()),
            state=s.state.value,
            when=_silence_when(s, now),
            comment=s.comment or "",
            by=s.created_by or "",
        )
        for s in rows
    )
    return html(SILENCES_TABLE, rows=body)


def _silence_when(s: SilenceRow, now: datetime) -> Html:
    parts: list[Html] = []
    if s.schedule:
        parts.append(html("{schedule}", schedule=s.schedule))
    if s.starts_at is not None:
        parts.append(
            html(
                "starts {at} ({rel})",
                at=clock_text(s.starts_at, now),
                rel=ago(s.starts_at, now),
            )
        )
    if s.ends_at is not None:
        parts.append(
            html("ends {at} ({rel})", at=clock_text(s.ends_at, now), rel=ago(s.ends_at, now))
        )
    elif not s.schedule:
        parts.append(Html("no end"))
    return join(parts, "; ")


# -- templates: constants; every {placeholder} is filled through html()

PAGE_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fleetpulse status</title>
<noscript><meta http-equiv="refresh" content="30"></noscript>
<style nonce="{nonce}">{style}</style>
</head>
<body>
<header><h1>fleetpulse <span class="muted">status</span></h1>
<p id="refresh-note" class="muted" aria-live="polite"></p></header>
{main}
<script nonce="{nonce}">{script}</script>
</body>
</html>
"""

MAIN_TEMPLATE = """<main data-now="{now_ms}" data-refresh="{refresh}">
<p class="updated">Updated <time datetime="{updated_iso}">{updated}</time>; refreshes every {refresh} s.</p>
<p class="summary">{summary}</p>
<section aria-labelledby="alerts-title"><h2 id="alerts-title">Alerts</h2>{alerts}</section>
<section aria-labelledby="hosts-title"><h2 id="hosts-title">Hosts</h2>{hosts}</section>
<section aria-labelledby="silences-title"><h2 id="silences-title">Silences</h2>{silences}</section>
</main>"""

ALERTS_TABLE = """<table class="alerts">
<thead><tr><th scope="col">Severity</th><th scope="col">State</th><th scope="col">Alert</th>\
<th scope="col">Host</th><th scope="col">For</th><th scope="col"><span class="sr-only">Note</span></th></tr></thead>
<tbody>{rows}</tbody>
</table>"""

ALERT_ROW = """<tr class="alert {state}"><td><span class="sev {severity}">{severity}</span></td>\
<td>{state}</td><td>{summary}<br><span class="detail">{rule}</span></td><td>{host}</td>\
<td title="since {since_at}">{since}</td><td>{note}</td></tr>
"""

HOSTS_TABLE = """<table class="hosts">
<thead><tr><th scope="col">Host</th><th scope="col">State</th><th scope="col">Last seen</th>\
<th scope="col">Last hour: <span class="key cpu-key">CPU busy</span> \
<span class="key mem-key">memory used</span></th><th scope="col">Latest</th></tr></thead>
<tbody>{rows}</tbody>
</table>"""

HOST_ROW = """<tr class="host"><th scope="row"><a class="name" href="status/hosts/{host_q}">{host}</a>\
{alerts}<br>{details}</th>\
<td><span class="state {state}">{state}</span></td>\
<td title="{seen_at}, every {every}">{seen}</td>\
<td><svg class="spark" viewBox="0 0 120 32" width="240" height="64" role="img" aria-label="{label}" \
data-points="{points}"></svg></td><td class="now">{now_text}</td></tr>
"""

SILENCES_TABLE = """<table class="silences">
<thead><tr><th scope="col">Matches</th><th scope="col">State</th><th scope="col">When</th>\
<th scope="col">Comment</th><th scope="col">By</th></tr></thead>
<tbody>{rows}</tbody>
</table>"""

SILENCE_ROW = """<tr class="silence"><td><code>{matchers}</code></td><td>{state}</td>\
<td>{when}</td><td>{comment}</td><td>{by}</td></tr>
"""

LOGIN_TEMPLATE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>fleetpulse status: token needed</title><style nonce="{nonce}">{style}</style></head>
<body><main>
<h1>fleetpulse <span class="muted">status</span></h1>
<p>{problem}</p>
<form method="get" action="status">
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="off" required>
<button type="submit">Show the status</button>
</form>
<p class="muted">The token is kept in a cookie for this site only. <code>fleetpulse local up</code>
prints a link that carries it; an operator can also set FLEETPULSE_STATUS_PUBLIC=true.</p>
</main></body></html>
"""

STYLE = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1f24;
  background: #f6f7f9; margin: 0 auto; max-width: 1200px; padding: 1rem 1.5rem 3rem; }
h1 { font-size: 1.5rem; margin: .2rem 0; } h2 { font-size: 1.1rem; margin: 1.6rem 0 .5rem; }
.muted, .detail { color: #57606a; } .detail { font-size: .85em; font-weight: normal; }
.updated { margin: .2rem 0; color: #57606a; } .summary { font-size: 1.05rem; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid #d0d7de; }
th, td { text-align: left; vertical-align: middle; padding: .45rem .6rem;
  border-bottom: 1px solid #d8dee4; }
thead th { background: #eef1f4; font-size: .85rem; color: #32383f; }
tbody th { font-weight: 600; }
.state, .sev { display: inline-block; padding: .05rem .5rem; border-radius: 1rem; font-size: .85rem;
  font-weight: 600; border: 1px solid transparent; }
.state.up { background: #dafbe1; color: #0a4a1c; border-color: #8ed4a0; }
.state.new { background: #ddf4ff; color: #0a3069; border-color: #80ccff; }
.state.late { background: #fff8c5; color: #5c3b00; border-color: #e6c33f; }
.state.down { background: #ffebe9; color: #82071e; border-color: #ff8182; }
.state.retired { background: #eaeef2; color: #32383f; border-color: #afb8c1; }
.state.paused { background: #fbefff; color: #512a97; border-color: #d8b9ff; }
.sev.critical { background: #82071e; color: #fff; } .sev.warning { background: #9a6700; color: #fff; }
.sev.info { background: #0550ae; color: #fff; }
.silenced { color: #512a97; font-weight: 600; } .count { color: #82071e; font-size: .85em; }
tr.pending td { color: #32383f; } .empty { background: #fff; border: 1px solid #d0d7de; padding: .7rem; }
svg.spark { display: block; background: #fbfcfd; }
svg.spark .frame { fill: none; stroke: #d0d7de; stroke-width: .5; }
svg.spark .mid { stroke: #eaeef2; stroke-width: .5; }
svg.spark .cpu, svg.spark .mem { fill: none; stroke-width: 1.2; stroke-linejoin: round; }
svg.spark .cpu { stroke: #0550ae; } svg.spark .mem { stroke: #bc4c00; }
svg.spark circle.cpu { fill: #0550ae; } svg.spark circle.mem { fill: #bc4c00; }
.cpu-text { color: #0550ae; } .mem-text { color: #953800; } .now { white-space: nowrap; }
.key::before { content: ""; display: inline-block; width: .9rem; height: .2rem; margin: 0 .3rem .2rem 0;
  vertical-align: middle; } .cpu-key::before { background: #0550ae; } .mem-key::before { background: #bc4c00; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
code { font: .9em ui-monospace, SFMono-Regular, Menlo, monospace; }
form { margin: 1rem 0; } input { font: inherit; padding: .3rem; margin: 0 .5rem; }
"""

# Draws each host's chart from its data-points (time, CPU, memory), refetches the page
# every data-refresh seconds and swaps its <main>. Text only ever goes in through
# setAttribute and the parsed (server-escaped) page; nothing is built from strings.
SCRIPT = """
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg", HOUR = 3600000, W = 120, H = 32;
  function node(name, attrs) {
    var n = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { n.setAttribute(k, String(attrs[k])); });
    return n;
  }
  function draw() {
    var main = document.querySelector("main");
    var now = Number(main.getAttribute("data-now"));
    main.querySelectorAll("svg.spark").forEach(function (svg) {
      var points = [];
      try { points = JSON.parse(svg.getAttribute("data-points") || "[]"); } catch (e) { points = []; }
      svg.replaceChildren(
        node("rect", {x: 0, y: 0, width: W, height: H, "class": "frame"}),
        node("line", {x1: 0, y1: H / 2, x2: W, y2: H / 2, "class": "mid"}));
      [["cpu", 1], ["mem", 2]].forEach(function (series) {
        var xy = points.filter(function (p) { return typeof p[series[1]] === "number"; })
          .map(function (p) {
            var x = Math.max(0, Math.min(W, (p[0] - (now - HOUR)) / HOUR * W));
            return [x, H - Math.max(0, Math.min(100, p[series[1]])) / 100 * H];
          });
        if (xy.length === 1) {
          svg.appendChild(node("circle", {cx: xy[0][0], cy: xy[0][1], r: 1.6, "class": series[0]}));
        } else if (xy.length > 1) {
          svg.appendChild(node("polyline", {
            points: xy.map(function (p) { return p[0].toFixed(1) + "," + p[1].toFixed(1); }).join(" "),
            "class": series[0]}));
        }
      });
    });
  }
  function refresh() {
    var note = document.getElementById("refresh-note");
    fetch(window.location.pathname, {credentials: "same-origin", cache: "no-store"})
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.text();
      })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html").querySelector("main");
        if (!fresh) { throw new Error("no content"); }
        document.querySelector("main").replaceWith(document.adoptNode(fresh));
        note.textContent = "";
        draw();
      })
      .catch(function (e) { note.textContent = "Refresh failed (" + e.message + "); trying again."; });
  }
  draw();
  var every = Number(document.querySelector("main").getAttribute("data-refresh")) || 10;
  window.setInterval(refresh, every * 1000);
})();
"""
