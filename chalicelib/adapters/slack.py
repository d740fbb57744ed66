"""SlackNotifier: Block Kit messages to an incoming webhook."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlsplit

from chalicelib.adapters.http import JsonPoster
from chalicelib.core.notify import Channel, Notification
from chalicelib.core.render import slack_message


class SlackNotifier:
    """Posts one message per notification. The webhook URL is a secret (it is the
    credential): it is fetched through `webhook_url` on first use and never logged."""

    channel = Channel.SLACK

    def __init__(
        self,
        webhook_url: Callable[[], str],
        http: JsonPoster,
        status_page_url: str | None = None,
    ) -> None:
        self.webhook_url = webhook_url
        self.http = http
        self.status_page_url = status_page_url

    def send(self, notification: Notification, budget: timedelta) -> int:
        body = slack_message(notification, self.status_page_url)
        url = self.webhook_url()
        # The path (/services/T…/B…/token) is the credential; a reply may echo it.
        path = urlsplit(url).path
        return self.http.post(url, body, budget, "Slack", secrets=(path,) if len(path) > 1 else ())
