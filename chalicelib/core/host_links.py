"""Where a host's history page lives, for links in alerts and on the status page."""

from __future__ import annotations

from urllib.parse import quote


def host_page_url(status_url: str, host: str) -> str:
    """`https://x/api/status` + `web-1` -> `https://x/api/status/hosts/web-1` (host quoted)."""
    return f"{status_url.rstrip('/')}/hosts/{quote(host, safe='')}"
