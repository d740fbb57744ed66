"""The fleetpulse HTTP API, as the operator command speaks to it (with an admin token)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from fleetpulse.cli import CommandError

DEFAULT_TIMEOUT = 15.0


def add_api_arguments(parser: argparse.ArgumentParser, nested: bool = False) -> None:
    """--url, --token, --json. `nested`: the parser is an action under a command that
    has them too, and must not reset what was given before the action's name."""
    default: dict[str, Any] = {"default": argparse.SUPPRESS} if nested else {}
    parser.add_argument("--url", help="the API's base URL (default: $FLEETPULSE_URL)", **default)
    parser.add_argument(
        "--token", help="an admin token (default: $FLEETPULSE_ADMIN_TOKEN)", **default
    )
    parser.add_argument(
        "--json", action="store_true", help="print JSON (one object a line)", **default
    )


class ApiClient:
    """A few verbs over `requests`; every failure becomes one readable CommandError."""

    def __init__(self, url: str, token: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ApiClient:
        url = getattr(args, "url", None) or os.environ.get("FLEETPULSE_URL")
        token = getattr(args, "token", None) or os.environ.get("FLEETPULSE_ADMIN_TOKEN")
        if not url:
            raise CommandError("no API URL: pass --url or set FLEETPULSE_URL")
        if not token:
            raise CommandError("no admin token: pass --token or set FLEETPULSE_ADMIN_TOKEN")
        return cls(url, token)

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        return self._call("GET", path, params={k: v for k, v in (params or {}).items() if v})

    def post(self, path: str, body: Any = None) -> Any:
        return self._call("POST", path, json=body)

    def put(self, path: str, body: Any = None) -> Any:
        return self._call("PUT", path, json=body)

    def delete(self, path: str) -> Any:
        return self._call("DELETE", path)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import requests

        try:
            response = requests.request(
                method,
                self.url + path,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=self.timeout,
                **kwargs,
            )
        except requests.RequestException as exc:
            raise CommandError(f"cannot reach {self.url}: {type(exc).__name__}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            raise CommandError(_error_line(response.status_code, body, response.reason))
        return body


def _error_line(status: int, body: Any, reason: str) -> str:
    if not isinstance(body, dict) or "error" not in body:
        return f"HTTP {status} {reason}"
    line = f"{body['error']} (HTTP {status})"
    details = body.get("details") or []
    if details:
        parts = [f"{d.get('path') or '-'}: {d.get('message')}" for d in details[:5]]
        line += ": " + "; ".join(parts)
    return line
