"""GET /status/hosts/{host}: every series of one host as charts over 1 h, 24 h or 7 d.

The server sends the list of the host's series (from its series catalog) and a
script; the browser fetches each chart's buckets from /v1/series and draws
them as inline SVG: the average as a line, the min-max band behind it, the
same window a week earlier dashed. Rendering in the browser keeps a wall of
dashboards from loading the collector (the istatd lesson). Who may read it is
the status page's rule (chalicelib/status_page.py); the same cookie lets the
script read /v1/series. The CSP is the status page's: only this response's
own script and style run, and fetches go to this origin only.
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING
from urllib.parse import quote

from chalice import Response  # type: ignore[attr-defined]
from chalice.app import Request

from chalicelib.core.errors import NotFound
from chalicelib.core.hosts import SeriesEntry
from chalicelib.core.instants import ms_of_instant
from chalicelib.status_page import (
    COOKIE,
    COOKIE_MAX_AGE_S,
    STYLE,
    Html,
    _cookie_token,
    _headers,
    _refusal,
    html,
    join,
)
from chalicelib.web import header, query_param

if TYPE_CHECKING:
    from chalicelib.wiring import Services

# Fields the agent derives from a gauge: drawn with it (band), never on their own.
DERIVED_SUFFIXES = ("_min", "_max", "_count", "_stddev", "_last")
RANGES = ("1h", "24h", "7d")
MAX_CHARTS = 120


def host_page_response(request: Request, svc: Services, host: str) -> Response:
    """The host's page, a redirect that stores `?token=` in a cookie, or a token form."""
    https = (header(request, "x-forwarded-proto") or "").lower() == "https"
    token = query_param(request, "token")
    if token is not None:
        refused = _refusal(svc, f"Bearer {token}")
        if refused is not None:
            return _for_host(refused, host)
        cookie = f"{COOKIE}={token}; Max-Age={COOKIE_MAX_AGE_S}; HttpOnly; SameSite=Lax"
        cookie += f"; Path={_site_root(request, host)}" + ("; Secure" if https else "")
        return Response(
            body="",
            status_code=303,
            headers={
                "Location": quote(host, safe="") + _range_query(query_param(request, "range")),
                "Content-Type": "text/plain; charset=utf-8",
                "Set-Cookie": cookie,
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
            return _for_host(refused, host)
    series = svc.host_store.catalog(host)
    if not series and svc.host_store.snapshot(host) is None:
        raise NotFound(f"no host {host!r}")
    nonce = secrets.token_urlsafe(16)
    chosen = query_param(request, "range")
    now_ms = ms_of_instant(svc.clock())
    body = render_host_page(host, series, nonce, now_ms, chosen)
    return Response(body=body, status_code=200, headers=_headers(nonce))


def _range_query(chosen: str | None) -> str:
    return f"?range={chosen}" if chosen in RANGES else ""


def series_authorization(request: Request) -> str | None:
    """`Authorization`, or the status page's cookie as a bearer token (the charts' fetches)."""
    given = header(request, "authorization")
    if given:
        return given
    from_cookie = _cookie_token(header(request, "cookie"))
    return f"Bearer {from_cookie}" if from_cookie else None


def _site_root(request: Request, host: str) -> str:
    # Behind API Gateway the page lives under the stage (/api/status/hosts/H): the
    # cookie must reach /api/status and /api/v1/series too.
    path = str((request.context or {}).get("path") or "")
    tail = "/status/hosts/"
    root = path[: path.rfind(tail)] if tail in path else ""
    return (root or "") + "/"


def _for_host(refused: Response, host: str) -> Response:
    """The token form, posting back to this host's page (the status page's posts to /status)."""
    refused.body = str(refused.body).replace(
        'action="status"', html('action="{h}"', h=quote(host, safe=""))
    )
    return refused


def chart_specs(series: list[SeriesEntry]) -> list[dict[str, object]]:
    """One chart per numeric field of each series, derived fields left to their gauge."""
    specs: list[dict[str, object]] = []
    for s in sorted(series, key=lambda s: (s.measurement, sorted(s.tags.items()))):
        names = set(s.fields)
        for name in sorted(names):
            if name.endswith(DERIVED_SUFFIXES):
                continue
            specs.append(
                {
                    "measurement": s.measurement,
                    "field": name,
                    "tags": dict(sorted(s.tags.items())),
                    # The agent's in-interval swing, when it sends one.
                    "lo": f"{name}_min" if f"{name}_min" in names else name,
                    "hi": f"{name}_max" if f"{name}_max" in names else name,
                }
            )
    return specs[:MAX_CHARTS]


def render_host_page(
    host: str, series: list[SeriesEntry], nonce: str, now_ms: int, chosen: str | None = None
) -> str:
    """The page; `now_ms` is the server's clock, the charts' right edge."""
    specs = chart_specs(series)
    selected = chosen if chosen in RANGES else "1h"
    figures = join(
        html(
            FIGURE,
            n=i,
            title=_title(spec),
            spec=json.dumps(spec, separators=(",", ":")),
        )
        for i, spec in enumerate(specs)
    )
    buttons = join(
        html(
            '<button type="button" data-range="{r}" aria-pressed="{p}">{label}</button>',
            r=r,
            p="true" if r == selected else "false",
            label={"1h": "1 hour", "24h": "24 hours", "7d": "7 days"}[r],
        )
        for r in RANGES
    )
    return html(
        PAGE,
        nonce=nonce,
        style=Html(STYLE + EXTRA_STYLE),
        script=Html(SCRIPT),
        host=host,
        host_q=quote(host, safe=""),
        range=selected,
        now_ms=now_ms,
        buttons=buttons,
        figures=figures or Html('<p class="empty">No series from this host yet.</p>'),
        count=len(specs),
    )


def _title(spec: dict[str, object]) -> str:
    tags = spec["tags"]
    assert isinstance(tags, dict)
    where = ", ".join(f"{k}={v}" for k, v in tags.items())
    return f"{spec['measurement']}.{spec['field']}" + (f" ({where})" if where else "")


FIGURE = """<figure class="chart" data-spec="{spec}">
<figcaption id="cap-{n}">{title}</figcaption>
<svg class="history" viewBox="0 0 600 150" role="img" aria-labelledby="cap-{n} sum-{n}"></svg>
<p class="chart-summary" id="sum-{n}" aria-live="polite">Loading…</p>
</figure>
"""

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{host}: fleetpulse</title><style nonce="{nonce}">{style}</style></head>
<body><main data-host="{host}" data-range="{range}" data-now="{now_ms}">
<p><a href="../../status">← all hosts</a></p>
<h1>{host} <span class="muted">history</span></h1>
<div class="ranges" role="group" aria-label="Time range">{buttons}</div>
<p class="legend"><span class="key avg-key"></span> average
<span class="key band-key"></span> lowest to highest
<span class="key week-key"></span> same time a week earlier</p>
<p class="muted" id="status" role="status">{count} charts</p>
<div class="charts">{figures}</div>
</main>
<script nonce="{nonce}">{script}</script>
</body></html>
"""

EXTRA_STYLE = """
.ranges button { font: inherit; padding: .3rem .8rem; margin-right: .3rem; border: 1px solid #8c959f;
  background: #fff; border-radius: 4px; cursor: pointer; }
.ranges button[aria-pressed="true"] { background: #0969da; color: #fff; border-color: #0969da; }
.ranges button:focus-visible { outline: 3px solid #fb8c00; outline-offset: 2px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 1rem; }
figure.chart { margin: 0; background: #fff; border: 1px solid #d0d7de; padding: .5rem .7rem; }
figcaption { font-weight: 600; } .chart-summary { margin: .2rem 0 0; font-size: .85em; color: #57606a; }
svg.history { width: 100%; height: auto; display: block; }
svg.history .band { fill: #54aeff; fill-opacity: .25; stroke: none; }
svg.history .avg { fill: none; stroke: #0969da; stroke-width: 1.6; }
svg.history .week { fill: none; stroke: #6e7781; stroke-width: 1.3; stroke-dasharray: 5 4; }
svg.history .axis { stroke: #d0d7de; } svg.history text { font-size: 11px; fill: #57606a; }
.legend .key { display: inline-block; width: 1.6em; height: .6em; margin: 0 .2em 0 .8em; vertical-align: middle; }
.avg-key { border-top: 2px solid #0969da; } .band-key { background: #54aeff66; }
.week-key { border-top: 2px dashed #6e7781; }
"""

SCRIPT = """
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg", W = 600, H = 150, PAD = 28;
  var RANGES = {"1h": [3600000, "1m", "hour"], "24h": [86400000, "5m", "24 hours"],
                "7d": [604800000, "1h", "7 days"]};
  var main = document.querySelector("main"), host = main.getAttribute("data-host");
  var base = new URL("../../v1/series", window.location.href);
  var generation = 0, serverNow = Number(main.getAttribute("data-now")), loadedAt = Date.now();
  function node(name, attrs) {
    var n = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { n.setAttribute(k, String(attrs[k])); });
    return n;
  }
  function fetchSeries(spec, field, stat, range, offset) {
    var url = new URL(base.href), r = RANGES[range];
    url.searchParams.set("host", host);
    url.searchParams.set("measurement", spec.measurement);
    url.searchParams.set("field", field);
    url.searchParams.set("from", "-" + range);
    url.searchParams.set("step", r[1]);
    url.searchParams.set("stat", stat);
    if (offset) { url.searchParams.set("offset", offset); }
    Object.keys(spec.tags).forEach(function (k) { url.searchParams.set("tag." + k, spec.tags[k]); });
    return fetch(url.href, {credentials: "same-origin", cache: "no-store"}).then(function (resp) {
      if (!resp.ok) { throw new Error("HTTP " + resp.status); }
      return resp.json();
    }).then(function (body) {
      var points = [];
      body.series.forEach(function (s) { points = points.concat(s.points); });
      return points.sort(function (a, b) { return a[0] - b[0]; });
    });
  }
  function fmt(v) { return Math.abs(v) >= 1000 ? v.toExponential(2) : String(Math.round(v * 100) / 100); }
  function draw(fig, range, avg, lo, hi, week) {
    var svg = fig.querySelector("svg"), span = RANGES[range][0];
    var now = serverNow + (Date.now() - loadedAt);
    var all = avg.concat(lo, hi, week).map(function (p) { return p[1]; });
    var summary = fig.querySelector(".chart-summary");
    svg.replaceChildren();
    if (!avg.length) {
      summary.textContent = "No data in the last " + RANGES[range][2] + ".";
      return;
    }
    var min = Math.min.apply(null, all), max = Math.max.apply(null, all);
    if (max === min) { max += 1; min -= 1; }
    function x(t) { return PAD + Math.max(0, Math.min(1, (t - (now - span)) / span)) * (W - PAD - 4); }
    function y(v) { return 6 + (1 - (v - min) / (max - min)) * (H - 24); }
    function line(points, cls) {
      return node("polyline", {"class": cls, points: points.map(function (p) {
        return x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1); }).join(" ")});
    }
    svg.appendChild(node("line", {"class": "axis", x1: PAD, y1: H - 18, x2: W, y2: H - 18}));
    svg.appendChild(node("text", {x: 0, y: 12})).textContent = fmt(max);
    svg.appendChild(node("text", {x: 0, y: H - 20})).textContent = fmt(min);
    if (lo.length && hi.length) {
      var top = hi.map(function (p) { return x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1); });
      var bottom = lo.slice().reverse().map(function (p) { return x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1); });
      svg.appendChild(node("polygon", {"class": "band", points: top.concat(bottom).join(" ")}));
    }
    if (week.length) {
      // Drawn where it would have been: a week later, over this window.
      svg.appendChild(line(week.map(function (p) { return [p[0] + 604800000, p[1]]; }), "week"));
    }
    svg.appendChild(line(avg, "avg"));
    var values = avg.map(function (p) { return p[1]; });
    var mean = values.reduce(function (a, b) { return a + b; }, 0) / values.length;
    var text = "Last " + RANGES[range][2] + ": average " + fmt(mean) + ", lowest " +
      fmt(Math.min.apply(null, lo.length ? lo.map(function (p) { return p[1]; }) : values)) +
      ", highest " + fmt(Math.max.apply(null, hi.length ? hi.map(function (p) { return p[1]; }) : values)) +
      ", latest " + fmt(values[values.length - 1]) + ".";
    if (week.length) {
      var w = week.map(function (p) { return p[1]; });
      text += " A week earlier: average " + fmt(w.reduce(function (a, b) { return a + b; }, 0) / w.length) + ".";
    } else {
      text += " No data from a week earlier.";
    }
    summary.textContent = text;
    svg.setAttribute("data-points", String(avg.length));
  }
  function load(range) {
    var mine = ++generation, figures = Array.prototype.slice.call(main.querySelectorAll("figure.chart"));
    main.setAttribute("data-range", range);
    // The address names the range: a reload or a shared link shows the same view.
    window.history.replaceState(null, "", window.location.pathname + "?range=" + range);
    main.querySelectorAll(".ranges button").forEach(function (b) {
      b.setAttribute("aria-pressed", b.getAttribute("data-range") === range ? "true" : "false");
    });
    var status = document.getElementById("status"), done = 0, failed = 0;
    status.textContent = "Loading " + figures.length + " charts for the last " + RANGES[range][2] + "…";
    function next() {
      var fig = figures.shift();
      if (!fig || mine !== generation) { return Promise.resolve(); }
      var spec = JSON.parse(fig.getAttribute("data-spec"));
      return Promise.all([
        fetchSeries(spec, spec.field, "avg", range),
        fetchSeries(spec, spec.lo, "min", range),
        fetchSeries(spec, spec.hi, "max", range),
        fetchSeries(spec, spec.field, "avg", range, "7d")
      ]).then(function (r) {
        if (mine === generation) { draw(fig, range, r[0], r[1], r[2], r[3]); }
      }, function (e) {
        failed += 1;
        fig.querySelector(".chart-summary").textContent = "Could not load (" + e.message + ").";
      }).then(function () { done += 1; return next(); });
    }
    // A few at a time: a host has dozens of series, each chart four small queries.
    Promise.all([next(), next(), next(), next()]).then(function () {
      if (mine === generation) {
        main.setAttribute("data-drawn", range);
        status.textContent = done + " charts for the last " + RANGES[range][2] +
          (failed ? " (" + failed + " could not load)" : "") + ".";
      }
    });
  }
  main.querySelectorAll(".ranges button").forEach(function (b) {
    b.addEventListener("click", function () { load(b.getAttribute("data-range")); });
  });
  load(main.getAttribute("data-range") || "1h");
})();
"""
