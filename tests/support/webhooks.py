"""Real HTTP servers on 127.0.0.1 that play Slack and PagerDuty.

Each answers from a script (a queue of replies, then a default) and records
every request it received: path, headers and JSON body.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Reply:
    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    hang: float = 0.0  # seconds to wait before answering (a server that hangs)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class ScriptedServer:
    def __init__(self, default: Reply) -> None:
        self.default = default
        self.replies: deque[Reply] = deque()
        self.received: list[Received] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with server._lock:
                    server.received.append(Received(self.path, dict(self.headers), body))
                    reply = server.replies.popleft() if server.replies else server.default
                if reply.hang:
                    server._stopping.wait(reply.hang)
                data = reply.body.encode()
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up waiting

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def bodies(self) -> list[Any]:
        return [r.json for r in self.received]

    def stop(self) -> None:
        self._stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def slack() -> Iterator[ScriptedServer]:
    """Plays a Slack incoming webhook: 200 `ok` unless scripted otherwise."""
    server = ScriptedServer(Reply(200, "ok", {"Content-Type": "text/plain"}))
    yield server
    server.stop()


@pytest.fixture
def pagerduty() -> Iterator[ScriptedServer]:
    """Plays the PagerDuty Events API v2: 202 unless scripted otherwise."""
    accepted = json.dumps({"status": "success", "message": "Event processed", "dedup_key": "x"})
    server = ScriptedServer(Reply(202, accepted, {"Content-Type": "application/json"}))
    yield server
    server.stop()


# What the real services answer, for scripting.
SLACK_INVALID_PAYLOAD = Reply(400, "invalid_payload")
SLACK_NO_CHANNEL = Reply(404, "channel_not_found")
SLACK_RATE_LIMITED = Reply(429, "rate_limited", {"Retry-After": "2"})
SERVER_ERROR = Reply(500, "internal error")
PAGERDUTY_INVALID = Reply(
    400,
    json.dumps({"status": "invalid event", "message": "Event object is invalid", "errors": ["x"]}),
    {"Content-Type": "application/json"},
)
PAGERDUTY_THROTTLED = Reply(429, json.dumps({"status": "throttle event"}))
