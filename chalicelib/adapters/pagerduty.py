"""PagerDutyNotifier: Events API v2 `trigger` and `resolve`, keyed by the alert's dedup_key."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from chalicelib.adapters.http import JsonPoster
from chalicelib.core.notify import Channel, Notification
from chalicelib.core.render import PAGERDUTY_EVENTS_URL, pagerduty_event


class PagerDutyNotifier:
    """Sends one event per notification; PagerDuty answers 202 when it accepted it.

    The routing key (the integration key of a PagerDuty service) is a secret,
    fetched through `routing_key` on first use and never logged.
    """

    channel = Channel.PAGERDUTY

    def __init__(
        self,
        routing_key: Callable[[], str],
        http: JsonPoster,
        url: str = PAGERDUTY_EVENTS_URL,
        status_page_url: str | None = None,
    ) -> None:
        self.routing_key = routing_key
        self.http = http
        self.url = url
        self.status_page_url = status_page_url

    def send(self, notification: Notification, budget: timedelta) -> int:
        key = self.routing_key()
        event = pagerduty_event(notification, key, self.status_page_url)
        return self.http.post(self.url, event, budget, "PagerDuty", secrets=(key,))
