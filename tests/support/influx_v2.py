"""A local stand-in for InfluxDB's write API that checks every request as InfluxDB 2.x would.

Debian's InfluxDB (1.6) serves only the v1 API, so the v2 request shapes
are checked here: path, org/bucket/precision parameters, the token header,
gzip, and that the body is line protocol with millisecond timestamps.
What it answers is scripted per request (a status, headers, a body, a
delay), or decided by a policy function that sees the lines.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.core.line_protocol import LineError, logical_lines, parse_line


@dataclass
class Reply:
    status: int = 204
    body: Any = None  # a dict is sent as JSON
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (a hung server)


@dataclass
class Seen:
    """One request as received: decoded query, headers, and the lines of the body."""

    path: str
    params: dict[str, str]
    headers: dict[str, str]
    lines: list[str]
    gzipped: bool


Policy = Callable[[Seen], Reply]


class InfluxWriteServer:
    def __init__(
        self,
        *,
        api: str = "v2",
        token: str = "s3cret-token",
        org: str = "acme",
        bucket: str = "metrics",
    ) -> None:
        self.api = api
        self.token = token
        self.org = org
        self.bucket = bucket
        self.database = bucket
        self.username: str | None = None  # v1: expect basic auth with this user
        self.requests: list[Seen] = []
        self.problems: list[str] = []  # what a real InfluxDB would have refused
        self.replies: list[Reply] = []  # consumed in order; then `policy`, then 204
        self.policy: Policy | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def lines(self) -> list[str]:
        """Every line of every request, in order."""
        return [line for seen in self.requests for line in seen.lines]

    def start(self) -> InfluxWriteServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- checking

    def check(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Seen | str:
        """The request as seen, or what is wrong with it."""
        split = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        if method != "POST":
            return f"method {method}, not POST"
        if self.api == "v2":
            if split.path != "/api/v2/write":
                return f"path {split.path}, not /api/v2/write"
            expected = {"org": self.org, "bucket": self.bucket, "precision": "ms"}
            if query != expected:
                return f"query {query}, expected {expected}"
            if headers.get("authorization") != f"Token {self.token}":
                return "no 'Authorization: Token <token>' header with the right token"
        else:
            if split.path != "/write":
                return f"path {split.path}, not /write"
            if query != {"db": self.database, "precision": "ms"}:
                return f"query {query}"
            expected_auth = (
                "Basic " + base64.b64encode(f"{self.username}:{self.token}".encode()).decode()
                if self.username
                else f"Token {self.token}"
            )
            if headers.get("authorization") != expected_auth:
                return f"authorization {headers.get('authorization')!r}, expected {expected_auth!r}"
        if not headers.get("content-type", "").startswith("text/plain"):
            return f"content-type {headers.get('content-type')!r}"
        gzipped = headers.get("content-encoding") == "gzip"
        if gzipped:
            try:
                body = gzip.decompress(body)
            except OSError as exc:
                return f"Content-Encoding gzip but the body is not gzip: {exc}"
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return "body is not UTF-8"
        lines = []
        for n, line in logical_lines(text):
            try:
                parsed = parse_line(line)
            except LineError as exc:
                return f"line {n}: {exc}"
            if parsed.timestamp is None or not 10**12 <= parsed.timestamp < 10**13:
                return f"line {n}: timestamp {parsed.timestamp} is not epoch milliseconds"
            lines.append(line)
        if not lines:
            return "empty body"
        return Seen(split.path, query, headers, lines, gzipped)

    def _reply_for(self, seen: Seen) -> Reply:
        with self._lock:
            self.requests.append(seen)
            if self.replies:
                return self.replies.pop(0)
        if self.policy is not None:
            return self.policy(seen)
        return Reply()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self._handle("POST")

            def do_GET(self) -> None:
                self._handle("GET")

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                seen = owner.check(method, self.path, headers, body)
                if isinstance(seen, str):
                    owner.problems.append(seen)
                    reply = Reply(400, {"code": "invalid", "message": seen})
                else:
                    reply = owner._reply_for(seen)
                if reply.delay:
                    time.sleep(reply.delay)
                payload = b""
                if reply.body is not None:
                    payload = (
                        json.dumps(reply.body).encode()
                        if isinstance(reply.body, dict)
                        else str(reply.body).encode()
                    )
                try:
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    if payload:
                        self.send_header("Content-Type", "application/json; charset=utf-8")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (a timeout test)

        return Handler


@pytest.fixture
def influx_v2() -> Iterator[InfluxWriteServer]:
    server = InfluxWriteServer().start()
    yield server
    server.stop()


@pytest.fixture
def influx_v1_shape() -> Iterator[InfluxWriteServer]:
    server = InfluxWriteServer(api="v1").start()
    yield server
    server.stop()
