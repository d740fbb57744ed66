"""A probe in another location speaks to the home collector: it reads the checks that run
from its location and posts its results, with a fleet token, like any agent."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from chalicelib.core.checks import ProbeResult
from chalicelib.core.ports import BackendUnavailable

TIMEOUT = (3.05, 10.0)


class HttpCheckHome:
    def __init__(self, url: str, token: Callable[[], str]) -> None:
        self.url = url.rstrip("/")
        self._token = token

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import requests

        try:
            response = requests.request(
                method,
                self.url + path,
                headers={"Authorization": f"Bearer {self._token()}"},
                timeout=TIMEOUT,
                **kwargs,
            )
        except requests.RequestException as exc:
            raise BackendUnavailable(f"home collector: {type(exc).__name__}") from exc
        if response.status_code >= 300:
            # A 4xx here is this deployment's mistake (token, location), not the target's:
            # it is logged by the caller and the runs are retried next minute.
            raise BackendUnavailable(
                f"home collector: HTTP {response.status_code} {response.text[:300]}"
            )
        return response.json()

    def checks(self, location: str) -> list[dict[str, Any]]:
        """The checks that run from `location`, as the home deployment defines them."""
        found = self._call("GET", "/v1/checks", params={"location": location})["checks"]
        return [{k: v for k, v in c.items() if k != "source"} for c in found]

    def post(self, results: Sequence[ProbeResult]) -> None:
        body = {"results": [r.as_json() for r in results]}
        for r in body["results"]:
            r.pop("phases", None)
        self._call("POST", "/v1/check-results", json=body)
