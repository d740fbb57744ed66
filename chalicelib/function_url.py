"""The API function behind a Lambda function URL as well as behind API Gateway.

A function URL invokes the function with the HTTP API's payload format 2.0 and
charges nothing per request; chalice routes only API Gateway's REST (1.0)
events. `rest_event` turns one into the other, routing the path against the
app's own routes as API Gateway would, and `url_response` turns chalice's
answer into what a function URL expects (cookies apart, one value per header).
Authentication is the app's own bearer-token check either way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from chalice import Chalice  # type: ignore[attr-defined]

_PARAM = re.compile(r"\{(\w+)\+?\}")


def is_url_event(event: Any) -> bool:
    """True for a function URL's (HTTP API 2.0) event."""
    return (
        isinstance(event, dict)
        and event.get("version") == "2.0"
        and isinstance(event.get("requestContext", {}).get("http"), dict)
    )


@lru_cache(maxsize=8)
def _patterns(routes: tuple[str, ...]) -> list[tuple[re.Pattern[str], str]]:
    out = []
    # Literal routes first, as API Gateway prefers them over a parameter.
    for route in sorted(routes, key=lambda r: (r.count("{"), -len(r))):
        regex = ""
        last = 0
        for m in _PARAM.finditer(route):
            regex += re.escape(route[last : m.start()])
            regex += (
                f"(?P<{m.group(1)}>.+)" if m.group(0).endswith("+}") else f"(?P<{m.group(1)}>[^/]+)"
            )
            last = m.end()
        regex += re.escape(route[last:])
        out.append((re.compile(f"^{regex}$"), route))
    return out


def _route(path: str, routes: Iterable[str]) -> tuple[str, dict[str, str] | None]:
    from urllib.parse import unquote

    for pattern, route in _patterns(tuple(routes)):
        m = pattern.match(path)
        if m:
            params = {k: unquote(v) for k, v in m.groupdict().items()}
            return route, params or None
    return path, None


def rest_event(event: dict[str, Any], routes: Iterable[str]) -> dict[str, Any]:
    """The REST API (1.0) event API Gateway would have sent for this function URL event."""
    from urllib.parse import parse_qs

    http = event["requestContext"]["http"]
    path = event.get("rawPath") or http.get("path") or "/"
    resource, path_params = _route(path, routes)
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    cookies = event.get("cookies")
    if cookies:
        headers["cookie"] = "; ".join(cookies)
    multi: dict[str, list[str]] | None = None
    raw_query = event.get("rawQueryString") or ""
    if raw_query:
        multi = parse_qs(raw_query, keep_blank_values=True)
    return {
        "resource": resource,
        "path": path,
        "httpMethod": http["method"].upper(),
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in multi.items()} if multi else None,
        "multiValueQueryStringParameters": multi,
        "pathParameters": path_params,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": http["method"].upper(),
            "path": path,
            "requestId": event["requestContext"].get("requestId", ""),
            "identity": {"sourceIp": http.get("sourceIp", "")},
        },
        "body": event.get("body"),
        "isBase64Encoded": bool(event.get("isBase64Encoded")),
    }


def url_response(response: dict[str, Any]) -> dict[str, Any]:
    """Chalice's REST answer as a function URL answer: multi-value headers folded into
    one value each, and Set-Cookie moved to `cookies` (a URL answer has no list headers)."""
    headers = dict(response.get("headers") or {})
    cookies: list[str] = []
    for name, values in (response.get("multiValueHeaders") or {}).items():
        if name.lower() == "set-cookie":
            cookies.extend(values)
        else:
            headers[name] = ", ".join(values)
    for name in [k for k in headers if k.lower() == "set-cookie"]:
        cookies.append(headers.pop(name))
    out = {
        "statusCode": response.get("statusCode", 200),
        "headers": headers,
        "body": response.get("body", ""),
        "isBase64Encoded": bool(response.get("isBase64Encoded")),
    }
    if cookies:
        out["cookies"] = cookies
    return out


class UrlAwareChalice(Chalice):
    """chalice's app, answering a function URL's events as well as API Gateway's."""

    def __call__(self, event: Any, context: Any) -> Any:
        if not is_url_event(event):
            return super().__call__(event, context)
        rest = rest_event(event, self.routes)
        if rest["resource"] not in self.routes:
            return {
                "statusCode": 404,
                "headers": {"Content-Type": "application/json"},
                "body": json.dumps({"error": f"no route {rest['path']}"}),
                "isBase64Encoded": False,
            }
        return url_response(super().__call__(rest, context))
