"""The local inbox: one HTTP server on 127.0.0.1 that plays a Slack incoming webhook and the
PagerDuty Events API v2 for the local stack.

It accepts what the real services accept and answers as they do (Slack `200 ok`,
PagerDuty `202 {"status": "success", ...}`; a malformed body gets their 400), so the
notifiers run exactly the code they run in AWS. Each notification is printed on one
line and appended to `inbox.jsonl` as `{"channel", "received_at", "body"}`.
"""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SLACK_PATH = "/slack/services/LOCAL/INBOX/"
PAGERDUTY_PATH = "/pagerduty/v2/enqueue"
MAX_BODY = 1024 * 1024
PAGERDUTY_ACTIONS = ("trigger", "acknowledge", "resolve")
PAGERDUTY_SEVERITIES = ("critical", "error", "warning", "info")
_SLACK_STATE = re.compile(r"\[([A-Z]+)(?:, still firing)?\]")
_SLACK_WAS = re.compile(r"\(was (critical|warning|info)\)")


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification the inbox accepted, with what a reader wants to see of it."""

    channel: str  # slack | pagerduty
    received_at: datetime
    body: dict[str, Any]
    status: str  # firing | resolved | acknowledged
    severity: str
    summary: str
    host: str

    def line(self) -> str:
        action = {
            ("pagerduty", "firing"): "trigger",
            ("pagerduty", "resolved"): "resolve",
            ("pagerduty", "acknowledged"): "acknowledge",
        }.get((self.channel, self.status), self.status)
        text = f"{self.channel:<9} {action:<8} {self.severity or '-':<8} {self.summary}"
        if self.host and self.host not in self.summary:
            text += f"  [{self.host}]"
        # Summaries carry host names and event text: no terminal control sequences.
        return "".join(c if c.isprintable() else "?" for c in text)


def slack_notice(body: dict[str, Any], at: datetime) -> Notice:
    """What a Block Kit webhook body says: the state label, the summary and the Host field."""
    text = html.unescape(str(body.get("text", "")))
    state = _SLACK_STATE.match(text)
    label = state.group(1).lower() if state else ""
    summary = text[state.end() :].strip() if state else text
    host = ""
    severity = label if label in ("critical", "warning", "info") else ""
    for block in body.get("blocks") or []:
        if not isinstance(block, dict):
            continue
        for field in block.get("fields") or []:
            title, _, value = str(field.get("text", "")).partition("\n")
            if title == "*Host*":
                host = html.unescape(value)
        section = block.get("text")
        if not severity and isinstance(section, dict):
            was = _SLACK_WAS.search(str(section.get("text", "")))
            if was:
                severity = was.group(1)
    if host and summary.endswith(f" ({host})"):
        summary = summary[: -len(host) - 3]
    status = "resolved" if label == "resolved" else "firing"
    return Notice("slack", at, body, status, severity, summary, host)


def slack_problem(body: Any) -> str | None:
    """Slack's answer to a body it cannot post, or None."""
    if not isinstance(body, dict):
        return "invalid_payload"
    if not body.get("text") and not body.get("blocks"):
        return "no_text"
    return None


def pagerduty_problems(body: Any) -> list[str]:
    """What the Events API would refuse in `body` (it answers 400 with these)."""
    if not isinstance(body, dict):
        return ["Event object is not a JSON object"]
    problems = []
    if not isinstance(body.get("routing_key"), str) or not body["routing_key"]:
        problems.append("'routing_key' is missing or blank")
    action = body.get("event_action")
    if action not in PAGERDUTY_ACTIONS:
        problems.append("'event_action' must be one of trigger, acknowledge, resolve")
    dedup = body.get("dedup_key")
    if action != "trigger" and not dedup:
        problems.append("'dedup_key' is required for acknowledge and resolve")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        problems.append("'dedup_key' must be a string of at most 255 characters")
    if action == "trigger":
        payload = body.get("payload")
        if not isinstance(payload, dict):
            problems.append("'payload' is missing")
        else:
            for key in ("summary", "source"):
                if not isinstance(payload.get(key), str) or not payload[key]:
                    problems.append(f"'payload.{key}' is missing or blank")
            if payload.get("severity") not in PAGERDUTY_SEVERITIES:
                problems.append("'payload.severity' must be critical, error, warning or info")
            if len(str(payload.get("summary", ""))) > 1024:
                problems.append("'payload.summary' is longer than 1024 characters")
    return problems


class LocalInbox:
    """Slack and PagerDuty on one local port. `notices` is what arrived, in order."""

    def __init__(
        self,
        jsonl: Path,
        out: Callable[[str], None] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.jsonl = jsonl
        self.out = out
        self.notices: list[Notice] = []
        self._triggers: dict[str, tuple[str, str, str]] = {}  # dedup_key -> severity, summary, host
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.0: one request per connection, so no handler thread outlives a reply.
            protocol_version = "HTTP/1.0"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._reply(413, "text/plain", "request_too_large")
                    return
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                if self.path.startswith(SLACK_PATH):
                    problem = slack_problem(body)
                    if problem:
                        self._reply(400, "text/plain", problem)
                        return
                    inbox.accept(slack_notice(body, datetime.now(UTC)))
                    self._reply(200, "text/html", "ok")
                elif self.path == PAGERDUTY_PATH:
                    problems = pagerduty_problems(body)
                    if problems:
                        refusal: dict[str, Any] = {
                            "status": "invalid event",
                            "message": "Event object is invalid",
                            "errors": problems,
                        }
                        self._reply(400, "application/json", json.dumps(refusal))
                        return
                    notice = inbox.pagerduty_notice(body, datetime.now(UTC))
                    inbox.accept(notice)
                    accepted = {
                        "status": "success",
                        "message": "Event processed",
                        "dedup_key": notice.body.get("dedup_key"),
                    }
                    self._reply(202, "application/json", json.dumps(accepted))
                else:
                    self._reply(404, "text/plain", "no_service")

            def _reply(self, status: int, content_type: str, text: str) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def slack_url(self) -> str:
        return self.url + SLACK_PATH + "local"

    @property
    def pagerduty_url(self) -> str:
        return self.url + PAGERDUTY_PATH

    def start(self) -> None:
        self.jsonl.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.1,), name="fleetpulse-inbox", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def pagerduty_notice(self, body: dict[str, Any], at: datetime) -> Notice:
        """A PagerDuty event; a resolve carries only its dedup_key, so the trigger it
        closes lends it its summary."""
        action = body["event_action"]
        dedup = str(body.get("dedup_key") or "")
        if action == "trigger":
            payload = body["payload"]
            seen = (str(payload["severity"]), str(payload["summary"]), str(payload["source"]))
            with self._lock:
                self._triggers[dedup] = seen
            return Notice("pagerduty", at, body, "firing", *seen)
        with self._lock:
            severity, summary, host = self._triggers.get(dedup, ("", dedup, ""))
        status = "resolved" if action == "resolve" else "acknowledged"
        return Notice("pagerduty", at, body, status, severity, summary, host)

    def accept(self, notice: Notice) -> None:
        record = {
            "channel": notice.channel,
            "received_at": notice.received_at.isoformat(timespec="milliseconds"),
            "body": notice.body,
        }
        with self._arrived:
            with self.jsonl.open("a") as f:
                f.write(json.dumps(record, separators=(",", ":")) + "\n")
            self.notices.append(notice)
            self._arrived.notify_all()
        if self.out is not None:
            self.out("inbox  " + notice.line())

    def wait_for(
        self, predicate: Callable[[Notice], bool], timeout: float, start: int = 0
    ) -> Notice | None:
        """The first notice from index `start` on that `predicate` accepts, waiting up to
        `timeout` seconds for it to arrive."""
        found: list[Notice] = []

        def match() -> bool:
            found[:] = [n for n in self.notices[start:] if predicate(n)][:1]
            return bool(found)

        with self._arrived:
            self._arrived.wait_for(match, timeout)
        return found[0] if found else None
