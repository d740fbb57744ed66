"""The on-disk spool: every batch is on disk before it is sent, and stays until delivered.

A batch is one gzipped request body in its own file, written to a temp file,
fsynced and renamed, so a crash leaves either the whole batch or nothing.
File names start with the creation time, so sorting them gives the oldest
first. A batch leaves the spool only when it was delivered, refused for good
(`dead/`), unreadable (`quarantine/`) or pushed out by the size cap.

When the spool cannot be written (disk full, read-only, no permission),
batches wait in a bounded queue in memory and are sent from there.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import os
import threading
import time

from fleetpulse_agent.log import log

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations stay strings at run time (PEP 563): typing is never loaded
    from typing import Any, Deque, Dict, List, Optional, Tuple


SUFFIX = ".json.gz"
KEEP_DEAD = 100  # dead letters and quarantined files kept for a post-mortem
STALE_TMP_S = 300


class Item:
    """One spooled batch: a file, or a body held in memory when the disk refused it."""

    __slots__ = ("body", "name", "size")

    def __init__(self, name: str, size: int, body: Optional[bytes] = None) -> None:
        self.name = name
        self.size = size
        self.body = body


class Spool:
    """A directory of pending batches with a size cap, plus the in-memory fallback."""

    def __init__(self, path: str, max_bytes: int, memory_max_bytes: int) -> None:
        self.path = path
        self.dead_dir = os.path.join(path, "dead")
        self.quarantine_dir = os.path.join(path, "quarantine")
        self.max_bytes = max_bytes
        self.memory_max_bytes = memory_max_bytes
        self.memory: Deque[Item] = collections.deque()
        self.lock = threading.Lock()
        self.seq = itertools.count()
        self.pid = os.getpid()
        self.dropped = 0
        self.dead_letters = 0
        self.quarantined = 0
        self.disk_error = ""  # why the last write went to memory; empty while the disk works
        self._prepare()

    def _prepare(self) -> None:
        try:
            os.makedirs(self.path, exist_ok=True)
            cutoff = time.time() - STALE_TMP_S
            for entry in os.scandir(self.path):
                # A temp file is a write that never finished: never a batch to send.
                if entry.name.startswith(".tmp-") and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
        except OSError as exc:
            self.disk_error = str(exc)
            log.warning("spool %s is not usable (%s); batches will wait in memory", self.path, exc)

    # -- writing

    def put(self, body: bytes, time_ms: Optional[int] = None) -> Item:
        """Persist one batch; falls back to memory when the disk refuses. Never raises."""
        if time_ms is None:
            time_ms = int(time.time() * 1000)
        name = "%016d-%06d-%d%s" % (time_ms, next(self.seq) % 1000000, self.pid, SUFFIX)
        with self.lock:
            try:
                self._write(name, body)
            except OSError as exc:
                if not self.disk_error:
                    log.warning(
                        "cannot write to spool %s (%s): keeping batches in memory, up to %d MB",
                        self.path,
                        exc,
                        self.memory_max_bytes // 2**20,
                    )
                self.disk_error = str(exc)
                item = Item(name, len(body), body)
                self.memory.append(item)
                self._cap_memory()
                return item
            if self.disk_error:
                log.info("spool %s is writable again", self.path)
                self.disk_error = ""
            self._cap_disk()
            return Item(name, len(body))

    def _write(self, name: str, body: bytes) -> None:
        final = os.path.join(self.path, name)
        tmp = os.path.join(self.path, ".tmp-" + name)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(body)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        # The rename is durable only once the directory entry is.
        dfd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def _cap_memory(self) -> None:
        total = sum(i.size for i in self.memory)
        while len(self.memory) > 1 and total > self.memory_max_bytes:
            oldest = self.memory.popleft()
            total -= oldest.size
            self._count_drop(oldest, "memory queue")

    def _cap_disk(self) -> None:
        files = self._files()
        total = sum(i.size for i in files)
        for oldest in files[:-1]:
            if total <= self.max_bytes:
                break
            try:
                os.unlink(os.path.join(self.path, oldest.name))
            except FileNotFoundError:
                continue
            total -= oldest.size
            self._count_drop(oldest, "spool")

    def _count_drop(self, item: Item, where: str) -> None:
        self.dropped += 1
        log.warning(
            "%s full: dropped the oldest batch %s (%d bytes); %d dropped since start",
            where,
            item.name,
            item.size,
            self.dropped,
        )

    # -- reading

    def _files(self) -> List[Item]:
        items = []
        try:
            for entry in os.scandir(self.path):
                if entry.name.endswith(SUFFIX) and not entry.name.startswith("."):
                    try:
                        items.append(Item(entry.name, entry.stat().st_size))
                    except FileNotFoundError:  # sent by another process meanwhile
                        continue
        except OSError:
            pass
        items.sort(key=lambda i: i.name)
        return items

    def pending(self) -> List[Item]:
        """Every batch waiting to be sent, oldest first."""
        with self.lock:
            items = self._files() + list(self.memory)
        items.sort(key=lambda i: i.name)
        return items

    def read(self, item: Item) -> Optional[bytes]:
        """The batch's bytes; None when it is gone (another process delivered it)."""
        if item.body is not None:
            return item.body
        try:
            with open(os.path.join(self.path, item.name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    # -- leaving the spool

    def done(self, item: Item) -> None:
        """The batch was delivered: forget it."""
        with self.lock:
            if item.body is not None:
                with contextlib.suppress(ValueError):
                    self.memory.remove(item)
                return
            try:
                os.unlink(os.path.join(self.path, item.name))
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.error("cannot delete delivered batch %s: %s", item.name, exc)

    def replace(self, item: Item, bodies: List[bytes]) -> List[Item]:
        """Swap a batch for smaller ones that keep its place in the order (413 splits)."""
        stem = item.name[: -len(SUFFIX)]
        out = []
        with self.lock:
            for n, body in enumerate(bodies, 1):
                name = "%s-%d%s" % (stem, n, SUFFIX)
                try:
                    if item.body is not None:
                        raise OSError("batch is held in memory")
                    self._write(name, body)
                    out.append(Item(name, len(body)))
                except OSError:
                    new = Item(name, len(body), body)
                    self.memory.append(new)
                    out.append(new)
        self.done(item)
        return out

    def dead_letter(self, item: Item, reason: str) -> None:
        """A batch the collector will never take: kept aside with the reason, never resent."""
        self.dead_letters += 1
        log.error("batch %s refused for good, moved to dead letters: %s", item.name, reason)
        self._set_aside(item, self.dead_dir, reason)

    def quarantine(self, item: Item, reason: str) -> None:
        """A batch that cannot be read (truncated, corrupt): set aside, never retried."""
        self.quarantined += 1
        log.error("batch %s is unreadable, quarantined: %s", item.name, reason)
        self._set_aside(item, self.quarantine_dir, reason)

    def _set_aside(self, item: Item, folder: str, reason: str) -> None:
        with self.lock:
            try:
                os.makedirs(folder, exist_ok=True)
                target = os.path.join(folder, item.name)
                if item.body is not None:
                    with open(target, "wb") as f:
                        f.write(item.body)
                else:
                    os.replace(os.path.join(self.path, item.name), target)
                with open(target + ".reason", "w") as f:
                    f.write(reason + "\n")
                kept = sorted(n for n in os.listdir(folder) if n.endswith(SUFFIX))
                for old in kept[:-KEEP_DEAD]:
                    for name in (old, old + ".reason"):
                        with contextlib.suppress(OSError):
                            os.unlink(os.path.join(folder, name))
            except OSError as exc:
                log.error("cannot set batch %s aside (%s); deleting it", item.name, exc)
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.path, item.name))
            if item.body is not None:
                with contextlib.suppress(ValueError):
                    self.memory.remove(item)

    # -- reporting

    def usage(self) -> Tuple[int, int]:
        """How many batches wait on disk, and their bytes."""
        files = self._files()
        return len(files), sum(i.size for i in files)


def write_json(path: str, doc: Dict[str, Any]) -> bool:
    """Replace a small state file atomically; False (and no exception) if it cannot be written."""
    tmp = "%s.tmp-%d" % (path, os.getpid())
    try:
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, path)
        return True
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return False


def read_json(path: str) -> Dict[str, Any]:
    """A state file's content; empty when missing or unreadable."""
    try:
        with open(path) as f:
            doc = json.load(f)
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}
