"""Exec checks: Nagios plugins run on a schedule; each run is an event and a point.

A `[check:NAME]` section (in agent.conf or a checks_dir/*.conf file) gives the
plugin's argv (`command`, split like a shell would but never run by one), its
`interval` and its `timeout`. A run's exit status is its state (0 ok, 1
warning, 2 critical, 3 unknown; anything else, a signal or a timeout is
unknown with the reason), the first output line is the description, and the
performance data become fields of a point `check` tagged `check=NAME`, in base
units. The event carries a ttl of three intervals, so a check that stops
running raises an alert of its own.

One thread runs every check: processes are started without waiting, their
pipes are read through a selector, and a process group past its timeout is
killed, so neither a hung plugin nor a noisy one holds up another check, the
sampling or the sending.
"""

from __future__ import annotations

import contextlib
import enum
import json
import math
import os
import re
import signal
import sys
import threading
import time

from fleetpulse_agent.config import ConfigError, read_file, valid_name
from fleetpulse_agent.deliver import envelope
from fleetpulse_agent.log import log

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations stay strings at run time (PEP 563): typing is never loaded
    from typing import Any, Callable, Dict, List, Optional, Tuple


class Status(enum.IntEnum):
    """A plugin's state, numbered as its exit status."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


MEASUREMENT = "check"
OUTPUT_CAP = 8192  # bytes of a plugin's stdout kept; the rest is read and dropped
STDERR_CAP = 1024
DESCRIPTION_BYTES = 1024  # the collector's limit on an event description
MAX_FIELDS = 200  # the collector's limit on a point's fields
# The fields' share of a Timestream record (2 KB with its tags), counted the way the
# store counts it: name bytes plus the value's text.
FIELD_BYTES = 1200
MAX_LABEL = 100  # leaves room for the threshold suffixes within a 128-byte field name
# The point's own fields and tags: a perfdata label with one of these names gets a `_` first.
OWN_NAMES = ("status", "duration", "check", "type")
# Where distributions install the plugins; a bare command name is looked up there too.
PLUGIN_DIRS = ("/usr/lib/nagios/plugins", "/usr/lib64/nagios/plugins", "/usr/local/nagios/libexec")
# Unit of measure to base unit. Byte multiples are binary, as the Nagios plugins write them.
UNITS = {
    "": 1.0,
    "s": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "%": 1.0,
    "c": 1.0,
    "B": 1.0,
    "KB": 2.0**10,
    "MB": 2.0**20,
    "GB": 2.0**30,
    "TB": 2.0**40,
    "PB": 2.0**50,
}
for _unit in ("K", "M", "G", "T", "P"):
    UNITS[_unit + "iB"] = UNITS[_unit + "B"]
    UNITS[_unit.lower() + "B"] = UNITS[_unit + "B"]
UNIT_RE = re.compile(r"[A-Za-z%\u00b5/]*\Z")
NUMBER_RE = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
FIELD_CHARS_RE = re.compile(r"[^A-Za-z0-9_./-]")
KEYS = ("command", "interval", "timeout")


class Check:
    """One configured check: a plugin's argv, how often and how long it may run."""

    def __init__(
        self, name: str, argv: List[str], interval: float, timeout: float, source: str = ""
    ) -> None:
        self.name = name
        self.argv = argv
        self.interval = interval
        self.timeout = timeout
        self.source = source

    def __repr__(self) -> str:
        return "Check(%r, %r, interval=%g, timeout=%g)" % (
            self.name,
            self.argv,
            self.interval,
            self.timeout,
        )


# ------------------------------------------------------------------ configuration


def _seconds(where: str, key: str, raw: str, lo: float, hi: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not lo <= value <= hi:  # NaN fails too
        raise ConfigError(
            "%s: %s=%r is not valid; expected seconds, %g to %g" % (where, key, raw, lo, hi)
        )
    return value


def check_from_section(name: str, values: Dict[str, str], source: str) -> Check:
    """One `[check:NAME]` section as a Check; raises ConfigError naming the section and key."""
    where = "%s [check:%s]" % (source, name)
    if not valid_name(name):
        raise ConfigError(
            "%s: %r is not a valid check name; use letters, digits and _ . - / "
            "(starting with a letter or _), up to 128 bytes" % (where, name)
        )
    for key in values:
        if key not in KEYS:
            raise ConfigError("%s: unknown key %r (known: %s)" % (where, key, ", ".join(KEYS)))
    import shlex  # here and in the runner: a host without checks never loads these

    command = values.get("command", "")
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ConfigError(
            "%s: command=%r is not valid (%s); expected a program and its arguments, "
            "quoted as in a shell" % (where, command, exc)
        ) from None
    if not argv:
        raise ConfigError(
            "%s: command is not set; expected a program and its arguments, e.g. "
            "command = check_load -w 5,4,3 -c 10,8,6" % where
        )
    interval = _seconds(where, "interval", values.get("interval", "60"), 1, 86400)
    timeout = _seconds(where, "timeout", values.get("timeout", "10"), 0.1, 3600)
    return Check(name, argv, interval, timeout, source)


def load_checks(cfg: Any) -> List[Check]:
    """The checks of agent.conf and of checks_dir/*.conf (sorted by file name).

    Raises ConfigError naming the file, the section and the key of the first bad
    setting, or both places a check name is defined in.
    """
    found: Dict[str, Check] = {}

    def add(section: str, values: Dict[str, str], source: str) -> None:
        check = check_from_section(section[6:].strip(), values, source)
        if check.name in found:
            raise ConfigError(
                "%s: check %r is already defined in %s"
                % (source, check.name, found[check.name].source)
            )
        found[check.name] = check

    for section, values in cfg.sections.items():
        if section != "agent":
            add(section, values, cfg.config_path)
    try:
        names = sorted(n for n in os.listdir(cfg.checks_dir) if n.endswith(".conf"))
    except FileNotFoundError:
        names = []
    except OSError as exc:
        raise ConfigError(
            "cannot read checks_dir %s: %s" % (cfg.checks_dir, exc.strerror)
        ) from None
    for file_name in names:
        path = os.path.join(cfg.checks_dir, file_name)
        for section, values in read_file(path).items():
            if section == "agent":
                raise ConfigError(
                    "%s: [agent] belongs in the agent's config file; %s holds only "
                    "[check:NAME] sections" % (path, cfg.checks_dir)
                )
            add(section, values, path)
    return list(found.values())


# ------------------------------------------------------------------ plugin output


def clip_bytes(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, never inside a character."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "..."


def field_name(label: str) -> str:
    """A perfdata label as a field name the collector accepts: characters outside
    letters, digits and _ . / - become `_`, and a `_` goes first when the label
    starts with anything but a letter or names something reserved.
    """
    name = FIELD_CHARS_RE.sub("_", label)
    if not (name[:1].isalpha() and name[:1].isascii()) or name in OWN_NAMES or not valid_name(name):
        name = "_" + name
    return name


def _threshold(raw: str, scale: float, key: str, fields: Dict[str, float]) -> str:
    """A warn or crit range into `key` (upper end) and `key_low` (lower end); a reason
    when it cannot be read. `@` ranges (alert inside) are not recorded.
    """
    if not raw or raw[0] == "@":
        return ""
    low, colon, high = raw.rpartition(":")
    if not colon:
        low, high = "", raw
    found = {}
    for end, name in ((low, key + "_low"), (high, key)):
        if end in ("", "~"):  # no end: minus or plus infinity
            continue
        if not NUMBER_RE.fullmatch(end) or not math.isfinite(float(end) * scale):
            return "range %r is not a number or start:end" % raw
        found[name] = float(end) * scale
    fields.update(found)
    return ""


def parse_perfdatum(label: str, data: str) -> Tuple[Dict[str, float], List[str]]:
    """`value[UOM];[warn];[crit];[min];[max]` of one label as fields in base units
    (`NAME`, `NAME.warn`, `NAME.warn_low`, `NAME.crit`, `NAME.crit_low`, `NAME.min`,
    `NAME.max`) and the reasons for any part left out.
    """
    name = field_name(label)
    parts = data.split(";")
    m = NUMBER_RE.match(parts[0])
    if not m:
        what = "undetermined (U)" if parts[0] == "U" else "not a number"
        return {}, ["%r=%s: the value is %s" % (label, data, what)]
    unit = parts[0][m.end() :]
    if not UNIT_RE.match(unit):
        return {}, ["%r=%s: %r is not a unit of measure" % (label, data, unit)]
    scale = UNITS.get(unit, 1.0)  # another unit is kept as the plugin wrote it
    value = float(m.group()) * scale
    if not math.isfinite(value):
        return {}, ["%r=%s: the value is out of range" % (label, data)]
    fields = {name: value}
    reasons = []
    for index, suffix in ((1, ".warn"), (2, ".crit")):
        if len(parts) > index:
            reason = _threshold(parts[index].strip(), scale, name + suffix, fields)
            if reason:
                reasons.append("%r=%s: %s" % (label, data, reason))
    for index, suffix in ((3, ".min"), (4, ".max")):
        raw = parts[index].strip() if len(parts) > index else ""
        if raw and NUMBER_RE.fullmatch(raw) and math.isfinite(float(raw) * scale):
            fields[name + suffix] = float(raw) * scale
        elif raw:
            reasons.append("%r=%s: %s %r is not a number" % (label, data, suffix[1:], raw))
    return fields, reasons


def _quoted(text: str, i: int) -> Tuple[str, int]:
    """The label quoted at text[i] (`''` is a quote) and where it ends; -1 if never closed."""
    label, j = "", i + 1
    while True:
        close = text.find("'", j)
        if close < 0:
            return "", -1
        label += text[j:close]
        if text[close + 1 : close + 2] != "'":
            return label, close + 1
        label += "'"
        j = close + 2


def parse_perfdata(text: str) -> Tuple[Dict[str, float], List[str]]:
    """Every `'label'=value[UOM];[warn];[crit];[min];[max]` in `text`: fields and
    the reasons for what was skipped. Never raises.

    A label may be quoted with single quotes (it then may hold spaces; `''` is a
    quote). The first label that maps to a field name wins. Values come first in
    the result, thresholds and bounds after them.
    """
    fields: Dict[str, float] = {}
    extra: Dict[str, float] = {}
    reasons: List[str] = []
    seen: Dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        quoted = text[i] == "'"
        label, j = _quoted(text, i) if quoted else ("", i)
        if j < 0:
            reasons.append("%r: the quoted label is not closed" % text[i : i + 60])
            break  # what follows cannot be told apart from the label
        end = j
        while end < n and not text[end].isspace():
            end += 1
        token, i = text[i:end], end
        if quoted:  # `=value` must follow the closing quote at once
            if text[j : j + 1] != "=":
                reasons.append("%r: expected = after the quoted label" % token[:60])
                continue
            data = text[j + 1 : end]
        else:
            label, eq, data = token.partition("=")
            if not eq:
                reasons.append("%r: expected label=value" % token[:60])
                continue
        if not label or len(label) > MAX_LABEL:
            reasons.append("%r: the label must be 1 to %d characters" % (token[:60], MAX_LABEL))
            continue
        name = field_name(label)
        if name in seen:
            reasons.append("%r: field %r is already taken by %r" % (token[:60], name, seen[name]))
            continue
        found, why = parse_perfdatum(label, data)
        reasons.extend(why)
        clash = [k for k in found if k in fields or k in extra]
        if clash:
            reasons.append("%r: field %r is already taken" % (token[:60], clash[0]))
        elif found:
            seen[name] = label
            fields[name] = found.pop(name)
            extra.update(found)
    fields.update(extra)
    return fields, reasons


def parse_output(text: str) -> Tuple[str, Dict[str, float], List[str]]:
    """A plugin's stdout: the description (first line, before `|`), the perfdata fields
    and the reasons for any perfdata skipped.

    Perfdata is what follows `|` on the first line, and on the long output's
    lines from the first one holding a `|` to the end.
    """
    lines = text.splitlines() or [""]
    description, _, perf = lines[0].partition("|")
    chunks = [perf]
    for k, line in enumerate(lines[1:], 1):
        if "|" in line:
            chunks.append(line.partition("|")[2])
            chunks.extend(lines[k + 1 :])
            break
    fields, reasons = parse_perfdata("\n".join(chunks))
    return description.strip(), fields, reasons


# ------------------------------------------------------------------ one run


class Run:
    """A started plugin: its process, deadline and what it wrote so far."""

    def __init__(self, check: Check, proc: Any, started: float, started_at: float) -> None:
        self.check = check
        self.proc = proc
        self.started = started  # monotonic
        self.started_at = started_at  # wall clock
        self.deadline = started + check.timeout
        self.out = bytearray()
        self.err = bytearray()
        self.open = 2  # pipes not at end of file yet
        self.timed_out = False


def child_env() -> Dict[str, str]:
    """The plugins' environment: C locale (a `.` decimal point in perfdata) and the
    plugin directories on PATH, so `command = check_load ...` is found.
    """
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    env["PATH"] = ":".join([env.get("PATH") or "/usr/bin:/bin", *PLUGIN_DIRS])
    return env


def run_result(
    check: Check,
    code: Optional[int],
    *,
    out: bytes = b"",
    err: bytes = b"",
    finished_at: float,
    duration: float = 0.0,
    reason: str = "",
) -> Tuple[Dict[str, Any], Dict[str, Any], List[str]]:
    """The event, the point and the skipped-perfdata reasons of one run.

    `code` is the exit status (negative: killed by that signal), None when the
    plugin never ran or timed out; `reason` then says why.
    """
    text = out.decode("utf-8", "replace")
    first_err = err.decode("utf-8", "replace").strip().partition("\n")[0]
    description, fields, reasons = parse_output(text)
    if code is None or code < 0:
        fields, reasons = {}, []  # cut short: its perfdata cannot be trusted
    description = description or first_err
    if code is None:
        status, description = Status.UNKNOWN, reason
    elif code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "signal %d" % -code
        status = Status.UNKNOWN
        description = "killed by %s" % name + (": " + description if description else "")
    elif code > 3:
        status = Status.UNKNOWN
        description = "exit status %d" % code + (": " + description if description else "")
    else:
        status = Status(code)
    time_ms = int(finished_at * 1000)
    event = {
        "service": check.name,
        "status": status.name.lower(),
        "description": clip_bytes(description or "(no output)", DESCRIPTION_BYTES),
        "time": time_ms,
        "ttl": round(3 * check.interval * 1000),
    }
    own: Dict[str, float] = {"status": int(status), "duration": round(duration, 6)}
    size = sum(len(k) + len(repr(v)) for k, v in own.items())
    keys = list(fields)
    for k, key in enumerate(keys):
        size += len(key) + len(repr(fields[key]))
        if size > FIELD_BYTES or len(own) == MAX_FIELDS:
            reasons.append(
                "%d fields from %r on left out: a point holds %d fields and %d bytes of them"
                % (len(keys) - k, key, MAX_FIELDS, FIELD_BYTES)
            )
            break
        own[key] = fields[key]
    point = {
        "measurement": MEASUREMENT,
        "time": time_ms,
        "tags": {"check": check.name, "type": "exec"},
        "fields": own,
    }
    return event, point, reasons


# ------------------------------------------------------------------ the scheduler


class CheckRunner:
    """Runs every check on its interval in one thread; results go to `deliver` or wait
    for `take()`.

    Results that finish together go together: they are held until no other run
    is still going, or for at most HOLD seconds. Then, when one of them changed
    its check's status, or comes from a check run more often than every
    `batch_interval` seconds (its ttl could run out before the next batch),
    they go to `deliver` (a list of (event, point, reasons), on the runner's
    thread) with everything waiting; otherwise they wait for `take()`, the
    agent's next regular batch, so a steady check costs no request of its own.
    """

    HOLD = 1.0

    def __init__(
        self,
        checks: List[Check],
        deliver: Callable[[List[Tuple[Dict[str, Any], Dict[str, Any], List[str]]]], None],
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        batch_interval: float = math.inf,
    ) -> None:
        self.checks = checks
        self.deliver = deliver
        self.batch_interval = batch_interval
        self.lock = threading.Lock()
        self.waiting: List[Tuple[Dict[str, Any], Dict[str, Any], List[str]]] = []
        self.last_status: Dict[str, str] = {}
        self.clock = clock
        self.monotonic = monotonic
        import selectors

        self.selector = selectors.DefaultSelector()
        self.running: Dict[str, Run] = {}
        now = monotonic()
        self.due = {c.name: now for c in checks}
        self.held: List[Tuple[Dict[str, Any], Dict[str, Any], List[str]]] = []
        self.held_since = 0.0
        self.last_reasons: Dict[str, List[str]] = {}
        self.stopping = threading.Event()
        self.wake_r, self.wake_w = os.pipe()
        self.selector.register(self.wake_r, selectors.EVENT_READ, None)
        self.env = child_env()
        self.thread: Optional[threading.Thread] = None
        self.closed = False
        self.errors = 0

    # -- the thread

    def start(self) -> CheckRunner:
        self.thread = threading.Thread(target=self.loop, name="checks", daemon=True)
        self.thread.start()
        return self

    def stop(self, wait: float = 5.0) -> None:
        """Stop scheduling, kill what still runs, hand over what finished."""
        self.stopping.set()
        if self.thread is None:
            self.close()
        elif self.thread.is_alive():
            os.write(self.wake_w, b"x")  # only this thread closes the pipe, after the join
            self.thread.join(wait)
        if (self.thread is None or not self.thread.is_alive()) and self.wake_w >= 0:
            os.close(self.wake_r)
            os.close(self.wake_w)
            self.wake_r = self.wake_w = -1

    def loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self.step(schedule=True)
            except Exception as exc:  # the runner outlives any one failure
                self.errors += 1
                log.exception("check runner: %s", exc)
                self.stopping.wait(1.0)
        self.close()

    def once(self) -> None:
        """Run every check now, concurrently; their results wait for `take()`."""
        for check in self.checks:
            self.spawn(check, self.monotonic())
        while self.running:
            self.step(schedule=False)
        with self.lock:
            self.waiting += self.held
        self.held = []

    def take(self) -> List[Tuple[Dict[str, Any], Dict[str, Any], List[str]]]:
        """The results waiting for the agent's next batch; safe from any thread."""
        with self.lock:
            out, self.waiting = self.waiting, []
        return out

    def close(self) -> None:
        """Kill what still runs, hand over what finished, release the selector."""
        if self.closed:
            return
        self.closed = True
        for run in list(self.running.values()):
            self.kill(run)  # cut short by the stop: not a result of the check
            self.reap(run)
        self.flush()
        self.selector.close()

    # -- one pass

    def step(self, schedule: bool) -> None:
        """Wait for output or the next thing due; then read, start what is due, finish
        exited or overdue runs and hand over results.
        """
        now = self.monotonic()
        waits = [run.deadline for run in self.running.values()]
        if schedule:
            waits.extend(self.due.values())
            if self.held:
                waits.append(self.held_since + self.HOLD)
        wait = min(waits) - now if waits else 3600.0
        if self.running:
            # Exit is noticed by polling: quickly once its pipes are closed, and now and
            # then while a leftover child of an exited plugin keeps them open.
            done = any(run.open == 0 for run in self.running.values())
            wait = min(wait, 0.005 if done else 0.25)
        for key, _ in self.selector.select(max(0.0, wait)):
            if key.data is None:
                os.read(self.wake_r, 64)
            else:
                self.read(key.data[0], key.fileobj, key.data[1])
        now = self.monotonic()
        if schedule and not self.stopping.is_set():
            for check in self.checks:
                due = self.due[check.name]
                if due > now:
                    continue
                if check.name in self.running:
                    log.debug("check %s is still running; this run is skipped", check.name)
                else:
                    self.spawn(check, now)
                due += check.interval
                self.due[check.name] = due if due > now else now + check.interval
        for run in list(self.running.values()):
            if run.proc.poll() is not None:
                self.finish(run)
            elif now >= run.deadline:
                run.timed_out = True
                self.kill(run)
                self.finish(run)
        if schedule and self.held and (not self.running or now - self.held_since >= self.HOLD):
            self.flush()

    def spawn(self, check: Check, now: float) -> None:
        import selectors
        import subprocess

        started_at = self.clock()
        try:
            proc = subprocess.Popen(
                check.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
                start_new_session=True,  # its own process group, killed as one on timeout
            )
        except OSError as exc:
            reason = "cannot run %s: %s" % (check.argv[0], exc.strerror or exc)
            self.hold(run_result(check, None, finished_at=self.clock(), reason=reason))
            return
        assert proc.stdout is not None
        assert proc.stderr is not None
        run = Run(check, proc, now, started_at)
        self.running[check.name] = run
        self.selector.register(proc.stdout, selectors.EVENT_READ, (run, "out"))
        self.selector.register(proc.stderr, selectors.EVENT_READ, (run, "err"))

    def read(self, run: Run, pipe: Any, which: str) -> bool:
        """Take a chunk from the pipe; False when nothing is left to take now (at its
        end, the pipe is closed).
        """
        try:
            data = os.read(pipe.fileno(), 65536)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            self.selector.unregister(pipe)
            pipe.close()
            run.open -= 1
            return False
        buf, cap = (run.out, OUTPUT_CAP) if which == "out" else (run.err, STDERR_CAP)
        if len(buf) < cap:
            buf += data[: cap - len(buf)]
        return True

    def kill(self, run: Run) -> None:
        with contextlib.suppress(OSError):  # already gone
            os.killpg(run.proc.pid, signal.SIGKILL)

    def reap(self, run: Run) -> Optional[int]:
        """Wait for the process (it has exited or been killed) and drop its pipes."""
        del self.running[run.check.name]
        code = run.proc.wait()
        for pipe, which in ((run.proc.stdout, "out"), (run.proc.stderr, "err")):
            if pipe.closed:
                continue
            # What it wrote before exiting is still in the pipe. Without blocking: a
            # child it left behind may hold the pipe open for ever.
            os.set_blocking(pipe.fileno(), False)
            while not pipe.closed and self.read(run, pipe, which):
                pass
            if not pipe.closed:
                self.selector.unregister(pipe)
                pipe.close()
        return code

    def finish(self, run: Run) -> None:
        """Reap the process and hold its result."""
        code = self.reap(run)
        reason = ""
        if run.timed_out:
            code = None
            reason = "timed out after %gs; its process group was killed" % run.check.timeout
        now = self.monotonic()
        self.hold(
            run_result(
                run.check,
                code,
                out=bytes(run.out),
                err=bytes(run.err),
                finished_at=self.clock(),
                duration=now - run.started,
                reason=reason,
            )
        )

    def hold(self, res: Tuple[Dict[str, Any], Dict[str, Any], List[str]]) -> None:
        event, _, reasons = res
        name = event["service"]
        if reasons and reasons != self.last_reasons.get(name):
            log.warning("check %s: perfdata skipped: %s", name, "; ".join(reasons))
        self.last_reasons[name] = reasons
        if not self.held:
            self.held_since = self.monotonic()
        self.held.append(res)

    def flush(self) -> None:
        if not self.held:
            return
        results, self.held = self.held, []
        interval = {c.name: c.interval for c in self.checks}
        urgent = False
        for event, _, _ in results:
            name = event["service"]
            urgent |= event["status"] != self.last_status.get(name)
            urgent |= interval.get(name, 0) < self.batch_interval
            self.last_status[name] = event["status"]
        with self.lock:
            self.waiting += results
            if urgent:
                results, self.waiting = self.waiting, []
        if urgent:
            self.deliver(results)


def agent_deliver(agent: Any) -> Callable[[List[Any]], None]:
    """Put check results into the agent's spool as one batch: events and points, no
    heartbeat (the collect loop sends that).
    """

    def deliver(results: List[Any]) -> None:
        doc = envelope(agent.cfg.host, agent.tags, agent.cfg.send_interval, None)
        doc["points"] = [point for _, point, _ in results]
        doc["events"] = [event for event, _, _ in results]
        agent.put(doc, results[-1][0]["time"])

    return deliver


def check_now(checks: List[Check], name: str, out: Callable[[str], None] = print) -> int:
    """`fleetpulse-agent check NAME`: run it once and print the event and the point
    it would send (and any perfdata skipped) as JSON. 0 when it ran, 2 when there is
    no such check.
    """
    found = [c for c in checks if c.name == name]
    if not found:
        known = ", ".join(sorted(c.name for c in checks)) or "none configured"
        print("no check %r (known: %s)" % (name, known), file=sys.stderr)
        return 2
    runner = CheckRunner(found, lambda _: None)
    runner.once()
    runner.stop()
    event, point, reasons = runner.take()[0]
    out(json.dumps({"event": event, "point": point, "skipped": reasons}, indent=2))
    return 0
