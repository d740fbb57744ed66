"""Delivery: spooled batches to the collector, oldest first, until the spool is empty.

What each answer does (docs/AGENT.md has the table):
2xx the batch is done (items the collector rejected are logged, never resent);
400, 415 and other 4xx go to dead letters; 413 splits the request in halves;
401, 403 and 404 are a configuration mistake: keep everything, retry slowly;
408, 429, 5xx and network failures: keep, back off exponentially with jitter,
honouring Retry-After. A resent batch is the same points with the same
timestamps, so the store's dedup makes a retry harmless.

A job's ping (`exec`, fleetpulse_agent/jobs.py) is spooled as a batch of its
own and sent alone, in order, to /ping/<ping_key>/<job>: 429, 5xx and network
failures keep it like any batch; any other refusal (404: unknown job or key,
400) dead-letters it rather than hold the host's metrics back.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
import zlib

from fleetpulse_agent import AGENT_NAME, __version__
from fleetpulse_agent.config import ingest_url
from fleetpulse_agent.log import log
from fleetpulse_agent.send import Response, SendError, random_fraction, request, retry_after
from fleetpulse_agent.spool import Item, Spool, read_json, write_json

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations stay strings at run time (PEP 563): typing is never loaded
    from typing import Any, Callable, Dict, List, Optional, Tuple


MAX_POINTS = 1000  # per request; the collector allows 5000
MAX_EVENTS = 1000
MAX_GZIP_BYTES = 512 * 1024  # per request when coalescing; the collector allows 1 MiB
DONE, DEAD, CONFIG, TOO_LARGE, RETRY = "done", "dead", "config", "too-large", "retry"


def classify(status: int) -> str:
    """What an HTTP status means for the batch that got it."""
    if 200 <= status < 300:
        return DONE
    if status == 413:
        return TOO_LARGE
    if status in (408, 429) or status >= 500:
        return RETRY
    if status in (401, 403, 404) or status < 200 or 300 <= status < 400:
        # A bad token, a host the token may not post for, a wrong URL, a redirect:
        # fixed by the operator, after which the backlog must still arrive.
        return CONFIG
    return DEAD


def encode(doc: Dict[str, Any]) -> bytes:
    """A request body as stored and sent: compact JSON, gzipped (fixed mtime: same doc, same bytes)."""
    raw = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: a gzip stream, header time 0
    return packer.compress(raw) + packer.flush()


def decode(body: bytes) -> Dict[str, Any]:
    """The document in a stored body; raises ValueError when it is truncated or corrupt."""
    try:
        unpacker = zlib.decompressobj(31)
        raw = unpacker.decompress(body)
        if not unpacker.eof:
            raise ValueError("truncated")
        doc = json.loads(raw)
    except (zlib.error, ValueError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("host"), str):
        raise ValueError("not a batch document")
    return doc


def envelope(
    host: str, tags: Dict[str, str], interval: float, state: Optional[str]
) -> Dict[str, Any]:
    """The fields every request carries; `state` None leaves the heartbeat out."""
    doc: Dict[str, Any] = {"host": host, "agent": {"name": AGENT_NAME, "version": __version__}}
    if tags:
        doc["tags"] = tags
    if state:
        doc["heartbeat"] = {"interval": max(1, min(86400, round(interval))), "state": state}
    return doc


class Sender:
    """Empties the spool into the collector. Safe to call from any thread; one pass at a time."""

    def __init__(
        self,
        cfg: Any,
        spool: Spool,
        post: Optional[Callable[[bytes], Response]] = None,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random_fraction,
    ) -> None:
        self.cfg = cfg
        self.spool = spool
        self.url = ingest_url(cfg)
        self.post = post or self._post
        self.post_ping = self._post_ping
        self.clock = clock
        self.rand = rand
        self.lock = threading.Lock()
        self.state_path = os.path.join(cfg.spool_dir, "state.json")
        saved = read_json(self.state_path)
        self.failures = 0
        self.not_before = 0.0  # our own backoff starts afresh with each process (a fixed token
        # must not wait out the old one); the collector's Retry-After outlives restarts
        self.retry_after_until = float(saved.get("retry_after_until", 0) or 0)
        self.state: Dict[str, Any] = {
            k: saved.get(k)
            for k in ("last_success_at", "last_status", "last_error", "last_error_at")
        }
        self.request_deadline: Optional[float] = None
        self.sent_batches = 0
        self.sent_points = 0
        self.send_errors = 0
        self.rejected = 0

    def _post(self, body: bytes) -> Response:
        headers = {
            "Authorization": "Bearer " + self.cfg.token,
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": "%s/%s" % (AGENT_NAME, __version__),
        }
        return request("POST", self.url, body, headers, self.cfg, deadline=self.request_deadline)

    def _post_ping(self, doc: Dict[str, Any]) -> Response:
        from fleetpulse_agent.jobs import ping_request

        path, body = ping_request(self.cfg, doc)
        headers = {
            "Content-Type": "text/plain; charset=utf-8",
            "User-Agent": "%s/%s" % (AGENT_NAME, __version__),
        }
        return request(
            "POST", self.cfg.url + path, body, headers, self.cfg, deadline=self.request_deadline
        )

    # -- one pass

    def send_pending(
        self, deadline: Optional[float] = None, lock_wait: float = 0.0, urgent: bool = False
    ) -> float:
        """Deliver what is spooled, oldest first. Never raises.

        Returns 0 when the spool is empty (or `deadline`, a clock() instant, has
        passed), else the seconds to wait before the next pass. A pass during a
        backoff returns at once, unless `urgent` (shutting down): then only a
        collector's own Retry-After still holds it back.
        """
        if not self.lock.acquire(timeout=max(lock_wait, 0.001)):
            return self.cfg.retry_base
        try:
            hold = (
                self.retry_after_until if urgent else max(self.not_before, self.retry_after_until)
            )
            wait = hold - self.clock()
            if wait > 0:
                return wait
            fd = self._flock(lock_wait)
            if fd is None:  # another process (`event`, `once`) is sending right now
                return self.cfg.retry_base
            try:
                if deadline is not None:
                    self.request_deadline = time.monotonic() + deadline - self.clock()
                return self._pass(deadline)
            finally:
                if fd >= 0:
                    os.close(fd)  # closing releases the flock
        except Exception as exc:  # a bug here must not stop the agent: log, count, retry later
            log.exception("send pass failed: %s", exc)
            self.send_errors += 1
            return self._backoff()
        finally:
            self.request_deadline = None
            self._save()
            self.lock.release()

    def _flock(self, wait: float) -> Optional[int]:
        """The spool's flock, so two processes never send one batch at the same time.

        None when another process holds it for longer than `wait` seconds; -1
        when the spool has no room for a lock file (memory batches need none).
        """
        try:
            fd = os.open(os.path.join(self.spool.path, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return -1
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except OSError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return None
                time.sleep(0.05)

    def _pass(self, deadline: Optional[float]) -> float:
        limit = 0  # batches per request; 0: as many as the caps allow
        while deadline is None or self.clock() < deadline:
            items = self.spool.pending()
            if not items:
                self.failures = 0
                return 0.0
            group, docs, body = self._group(items, limit)
            if not group:
                continue  # everything read was corrupt and is now quarantined
            points = sum(len(d.get("points") or ()) for d in docs)
            if len(group) > 1:
                body = encode(_merge(docs))
            ping = "ping" in docs[0]
            if ping and not self.cfg.ping_key:
                self.spool.dead_letter(group[0], "no ping_key")
                continue
            try:
                response = self.post_ping(docs[0]) if ping else self.post(body)
            except SendError as exc:
                return self._failed(str(exc), self._backoff())
            outcome = classify(response.status)
            if ping and outcome in (CONFIG, TOO_LARGE):
                outcome = DEAD
            if outcome == DONE:
                for item in group:
                    self.spool.done(item)
                self._delivered(response, len(group), points)
                continue
            what = "%d %s" % (response.status, _error_text(response))
            if outcome == TOO_LARGE and len(group) > 1:
                limit = max(1, len(group) // 2)
                log.info("collector refused %d batches at once (%s); halving", len(group), what)
            elif outcome == TOO_LARGE:
                halves = _halves(docs[0])
                if halves:
                    self.spool.replace(group[0], [encode(h) for h in halves])
                    log.info("collector refused batch %s as too large; split it", group[0].name)
                else:
                    self.spool.dead_letter(group[0], what)
            elif outcome == DEAD and len(group) > 1:
                limit = 1  # resend one by one to find the batch the collector refuses
            elif outcome == DEAD:
                self.spool.dead_letter(group[0], what)
            elif outcome == CONFIG:
                log.error(
                    "collector says %s: check url and token (%s); keeping %d batches, "
                    "retrying slowly",
                    what,
                    self.url,
                    len(items),
                )
                return self._failed(what, self._backoff(config=True), response.status)
            else:
                ra = retry_after(response.headers.get("retry-after"), self.clock())
                return self._failed(what, self._backoff(ra), response.status)
        return 0.0

    def _group(
        self, items: List[Item], limit: int
    ) -> Tuple[List[Item], List[Dict[str, Any]], bytes]:
        """The oldest batches that fit in one request together, their documents, and the
        first one's stored bytes (sent as they are when it goes alone).
        """
        group: List[Item] = []
        docs: List[Dict[str, Any]] = []
        first = b""
        points = events = size = 0
        for item in items:
            body = self.spool.read(item)
            if body is None:
                continue
            try:
                doc = decode(body)
            except ValueError as exc:
                self.spool.quarantine(item, str(exc))
                continue
            n_points, n_events = len(doc.get("points") or ()), len(doc.get("events") or ())
            if "ping" in doc or (group and "ping" in docs[0]):
                if not group:  # a ping goes alone, and where it stands in the order
                    return [item], [doc], body
                break
            if group and (
                points + n_points > MAX_POINTS
                or events + n_events > MAX_EVENTS
                or size + len(body) > MAX_GZIP_BYTES
                or _key(doc) != _key(docs[0])
            ):
                break
            group.append(item)
            docs.append(doc)
            first = first or body
            points, events, size = points + n_points, events + n_events, size + len(body)
            if (limit and len(group) >= limit) or _state(doc) == "shutdown":
                break  # a shutdown heartbeat is the last word of its request
        return group, docs, first

    # -- bookkeeping

    def _delivered(self, response: Response, batches: int, points: int) -> None:
        self.sent_batches += batches
        self.sent_points += points
        self.failures = 0
        self.not_before = self.retry_after_until = 0.0
        self.state["last_success_at"] = self.clock()
        self.state["last_status"] = response.status
        try:
            rejected = json.loads(response.body or b"{}").get("rejected") or []
        except (ValueError, AttributeError):
            rejected = []
        if rejected:
            self.rejected += len(rejected)
            reasons = "; ".join(str(r.get("reason", r))[:200] for r in rejected[:3])
            log.warning(
                "collector stored the batch but rejected %d item(s), not resent: %s",
                len(rejected),
                reasons,
            )

    def _failed(self, what: str, wait: float, status: Optional[int] = None) -> float:
        self.send_errors += 1
        self.state["last_error"] = what
        self.state["last_error_at"] = self.clock()
        self.state["last_status"] = status
        log.warning("send failed (%s); next try in %.1fs", what, wait)
        return wait

    def _backoff(self, after: Optional[float] = None, config: bool = False) -> float:
        """Seconds to wait: exponential with jitter, at least what Retry-After asked."""
        self.failures += 1
        base = self.cfg.retry_base * (30 if config else 1)
        cap = self.cfg.auth_backoff if config else self.cfg.max_backoff
        wait = min(cap, base * 2 ** min(self.failures - 1, 30))
        wait = wait / 2 + wait / 2 * self.rand()  # jitter: hosts hit by one outage spread out
        if after is not None:
            wait = max(wait, min(after, 3600.0) * (1 + 0.1 * self.rand()))
            self.retry_after_until = self.clock() + wait
        self.not_before = self.clock() + wait
        return wait

    def _save(self) -> None:
        doc = dict(self.state)
        doc.update(
            failures=self.failures,
            not_before=self.not_before,
            retry_after_until=self.retry_after_until,
            pid=os.getpid(),
            dropped=self.spool.dropped,  # counts since this process started, for `status`
            send_errors=self.send_errors,
            rejected=self.rejected,
        )
        write_json(self.state_path, doc)


def _key(doc: Dict[str, Any]) -> Tuple[str, str]:
    return doc["host"], json.dumps(doc.get("tags") or {}, sort_keys=True)


def _state(doc: Dict[str, Any]) -> Optional[str]:
    heartbeat = doc.get("heartbeat")
    return heartbeat.get("state") if isinstance(heartbeat, dict) else None


def _merge(docs: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Several batches of one host as one request: same points, same times, newest envelope."""
    merged = {k: v for k, v in docs[-1].items() if k not in ("points", "events", "heartbeat")}
    beats = [d["heartbeat"] for d in docs if isinstance(d.get("heartbeat"), dict)]
    if beats:
        merged["heartbeat"] = beats[-1]
    merged["points"] = [p for d in docs for p in d.get("points") or ()]
    events = [e for d in docs for e in d.get("events") or ()]
    if events:
        merged["events"] = events
    return merged


def _halves(doc: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The batch cut in two, keeping order; empty when it holds a single item."""
    items = [("points", p) for p in doc.get("points") or ()]
    items += [("events", e) for e in doc.get("events") or ()]
    if len(items) < 2:
        return []
    out = []
    half = (len(items) + 1) // 2
    for part in (items[:half], items[half:]):
        piece = {k: v for k, v in doc.items() if k not in ("points", "events")}
        piece["points"] = [x for kind, x in part if kind == "points"]
        events = [x for kind, x in part if kind == "events"]
        if events:
            piece["events"] = events
        out.append(piece)
    return out


def _error_text(response: Response) -> str:
    """The collector's `error` and first `details`, else the start of the body."""
    try:
        doc = json.loads(response.body)
        details = "; ".join("%(path)s: %(message)s" % d for d in doc.get("details", [])[:3])
        return doc["error"] + (" (%s)" % details if details else "")
    except (ValueError, KeyError, TypeError, AttributeError):
        return response.body[:200].decode("utf-8", "replace") or response.reason
