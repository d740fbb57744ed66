"""JSON over HTTPS for the notifiers: bounded timeouts, statuses and failures as DeliveryError.

`requests` is imported on first use, never at import (cold start).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from chalicelib.core.notify import DeliveryError, SecretUnavailable, classify_status
from chalicelib.core.retry import parse_retry_after

if TYPE_CHECKING:
    import requests

USER_AGENT = "fleetpulse-notifier/1"
ERROR_BODY_MAX = 300


def redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


class JsonPoster:
    """POSTs JSON and returns the HTTP status of a 2xx reply; raises DeliveryError otherwise.

    Each attempt is bounded by a connect and a read timeout, both also cut to
    the `budget` the caller has left, so a server that hangs costs at most
    the budget. Redirects are not followed: a webhook that moved is a
    configuration problem, and following it would turn the POST into a GET.
    """

    def __init__(
        self,
        connect_timeout: timedelta = timedelta(seconds=3.05),
        read_timeout: timedelta = timedelta(seconds=5),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.clock = clock
        self._session: requests.Session | None = None

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            import requests

            # urllib3 logs each request line, URL path included, at DEBUG: for
            # a Slack webhook the path is the secret.
            logging.getLogger("urllib3").setLevel(logging.INFO)
            self._session = requests.Session()
            self._session.headers["User-Agent"] = USER_AGENT
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def post(
        self,
        url: str,
        body: dict[str, Any],
        budget: timedelta,
        service: str,
        secrets: Sequence[str] = (),
    ) -> int:
        """POST `body` to `url`. Nothing in a raised error's reason contains `url` or `secrets`."""
        import requests

        secrets = (url, *secrets)
        seconds = max(budget.total_seconds(), 0.001)
        timeout = (
            min(self.connect_timeout.total_seconds(), seconds),
            min(self.read_timeout.total_seconds(), seconds),
        )
        try:
            response = self.session.post(url, json=body, timeout=timeout, allow_redirects=False)
        except requests.Timeout as exc:
            connecting = isinstance(exc, requests.ConnectTimeout)
            phase, limit = ("connecting", timeout[0]) if connecting else ("for a reply", timeout[1])
            raise DeliveryError(f"{service}: timed out {phase} ({limit:g} s)") from None
        except (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
        ):
            raise SecretUnavailable(
                f"{service}: the configured URL is not a valid http(s) URL"
            ) from None
        except requests.RequestException as exc:
            # The exception's text names the URL: only its type is safe to keep.
            raise DeliveryError(f"{service}: {type(exc).__name__} (no reply)") from None
        status = response.status_code
        permanent = classify_status(status)
        if permanent is None:
            return status
        detail = " ".join(response.text[:ERROR_BODY_MAX].split())
        raise DeliveryError(
            redact(f"{service} answered HTTP {status}: {detail or '(empty body)'}", secrets),
            permanent=permanent,
            status=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After"), self.clock()),
        )
