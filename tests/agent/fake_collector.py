"""A real HTTP collector on 127.0.0.1 that validates Contract 1 with the collector's own code.

Every body goes through `chalicelib.core.ingest.parse_ingest` and, once
accepted, through the Timestream write planner, so a point the real collector
or store would refuse fails the test here. Accepted points are stored keyed
by (host, measurement, tags, time), the way the store dedupes: an identical
resend is counted as a duplicate post and stored once; a different value
under the same key is a conflict (a batch that was re-aggregated or
re-timestamped).

Tests script the answers: a queue of statuses (with headers), `"stall"` to
read the request and never answer, `"store-stall"` to store and then never
answer, or a `default` answer for everything else. An answer is framed by
Content-Length and followed by the close, or chunked, or on a connection the
collector keeps open whatever the request asked (as a proxy may).
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from chalicelib.core.errors import IngestError
from chalicelib.core.ingest import parse_ingest
from chalicelib.core.limits import Limits
from chalicelib.core.timestream import plan_writes

Key = tuple[str, str, tuple[tuple[str, str], ...], int]


@dataclass
class Answer:
    status: int | str = 202  # an HTTP status, "stall" or "store-stall"
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    chunked: bool = False  # Transfer-Encoding: chunked, in small chunks
    keep_alive: bool = False  # the connection stays open after the answer


@dataclass
class Post:
    status: int | str
    points: int
    events: int
    heartbeat: dict[str, Any] | None
    host: str
    at: float = field(default_factory=time.monotonic)  # when the answer was sent


class FakeCollector:
    def __init__(self, token: str = "secret-token", limits: Limits | None = None) -> None:
        self.token = token
        self.limits = limits or Limits()
        self.allowed_hosts: set[str] | None = None  # None: the token may post for any host
        self.default = Answer()
        self.script: list[Answer] = []
        self.lock = threading.Lock()
        self.stored: dict[Key, dict[str, Any]] = {}
        self.order: list[Key] = []  # keys in the order they were first stored
        self.events: list[dict[str, Any]] = []
        self.event_keys: set[tuple[str, str, int]] = set()
        self.duplicates = 0
        self.conflicts: list[Key] = []
        self.posts: list[Post] = []
        self.heartbeats: list[dict[str, Any]] = []
        self.release = threading.Event()  # ends every stall
        self.on_request: Callable[[], None] | None = None
        self.handler = self._handler()
        self.port = 0
        self.listening = False
        self._listen()
        self.url = f"http://127.0.0.1:{self.port}"

    def _listen(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self.handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    def __enter__(self) -> FakeCollector:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.down()

    def down(self) -> None:
        """Close the port: connecting is refused until up()."""
        if self.listening:
            self.server.shutdown()
            self.server.server_close()
            self.listening = False

    def up(self) -> None:
        if not self.listening:
            if self.server.socket.fileno() < 0:
                self._listen()
            threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
            self.listening = True

    # -- scripting

    def answer(self, *answers: Answer | int | str) -> None:
        """Queue answers for the next requests, in order."""
        with self.lock:
            for a in answers:
                self.script.append(a if isinstance(a, Answer) else Answer(a))

    def next_answer(self) -> Answer:
        with self.lock:
            return self.script.pop(0) if self.script else self.default

    # -- what arrived

    def series(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], list[int]]:
        """Times of each (measurement, tags) series, in the order they were stored."""
        out: dict[tuple[str, tuple[tuple[str, str], ...]], list[int]] = {}
        for _host, measurement, tags, t in self.order:
            out.setdefault((measurement, tags), []).append(t)
        return out

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate():
                    return True
            time.sleep(0.01)
        with self.lock:
            return predicate()

    # -- the server

    def _store(self, raw: bytes, headers: Any) -> tuple[int, dict[str, Any]]:
        now_ms = int(time.time() * 1000)
        parsed = parse_ingest(
            raw, headers.get("Content-Type"), headers.get("Content-Encoding"), self.limits, now_ms
        )
        plan = plan_writes(parsed.reports)
        assert not plan.rejected, f"the store would refuse: {plan.rejected}"
        report = parsed.reports[0]
        if self.allowed_hosts is not None and report.host not in self.allowed_hosts:
            return 403, {"error": f"token may not post for host {report.host}"}
        with self.lock:
            for p in report.points:
                key = (report.host, p.measurement, tuple(sorted(p.tags.items())), p.time_ms)
                if key in self.stored:
                    if self.stored[key] == p.fields:
                        self.duplicates += 1
                    else:
                        self.conflicts.append(key)
                    continue
                self.stored[key] = dict(p.fields)
                self.order.append(key)
            for e in report.events:
                ekey = (report.host, e.service, e.time_ms)
                if ekey in self.event_keys:
                    self.duplicates += 1
                    continue
                self.event_keys.add(ekey)
                self.events.append(
                    {
                        "host": report.host,
                        "service": e.service,
                        "status": e.status.value,
                        "ttl_ms": e.ttl_ms,
                        "time": e.time_ms,
                        "description": e.description,
                    }
                )
            self.heartbeats.append(
                {"host": report.host, "state": report.state.value, "interval": report.interval_s}
            )
        rejected = [r.as_json() for r in parsed.rejected]
        return 202, {
            "accepted": parsed.accepted_points + parsed.accepted_events,
            "rejected": rejected,
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, doc: dict[str, Any], answer: Answer) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if answer.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(len(body)))
                if not answer.keep_alive:
                    self.send_header("Connection", "close")
                for k, v in answer.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if answer.chunked:
                    for i in range(0, len(body), 16):
                        part = body[i : i + 16]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.wfile.write(body)
                self.close_connection = not answer.keep_alive

            def do_GET(self) -> None:
                self._reply(200, {"status": "ok"}, Answer())

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if collector.on_request:
                    collector.on_request()
                answer = collector.next_answer()
                status: int | str = answer.status
                doc: dict[str, Any] = answer.body or {}
                auth = self.headers.get("Authorization", "")
                if status == "stall":
                    collector.release.wait(60)
                    return
                if auth != f"Bearer {collector.token}":
                    status, doc = 401, {"error": "missing, unknown or revoked token"}
                elif status in (202, "store-stall"):
                    try:
                        code, doc = collector._store(raw, self.headers)
                    except IngestError as exc:
                        code, doc = exc.status, exc.as_json()
                    if status == "store-stall":
                        collector.release.wait(60)
                        return
                    status = code
                elif not doc:
                    doc = {"error": f"scripted {status}"}
                assert isinstance(status, int)
                try:
                    sent = json.loads(gzip.decompress(raw))
                except (OSError, ValueError):
                    sent = {}
                with collector.lock:
                    collector.posts.append(
                        Post(
                            status,
                            len(sent.get("points") or ()),
                            len(sent.get("events") or ()),
                            sent.get("heartbeat"),
                            sent.get("host", ""),
                        )
                    )
                self._reply(status, doc, answer)

        return Handler


def closed_port() -> int:
    """A local port nothing listens on: connecting is refused at once."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
