"""A small logger: one line per message on stderr, filtered by level.

The stdlib `logging` costs most of a megabyte of resident memory, a twentieth
of the agent's budget, for features the agent does not use.
"""

import sys
import time

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class Log:
    """`log.warning("cannot read %s: %s", path, exc)`, like `logging`, without the machinery."""

    def __init__(self) -> None:
        self.level = LEVELS["info"]
        self.stamp = True  # journald stamps lines itself; a terminal or a cron mail does not
        self.records = None  # a list to collect (level, message) into, for tests
        # Warnings and errors so far, and the last one: the agent ships them as its own event.
        self.problems = 0
        self.last_problem = ""

    def setup(self, level: str, stamp: bool) -> None:
        self.level = LEVELS[level]
        self.stamp = stamp

    def emit(self, level: str, msg: str, args: tuple, trace: bool = False) -> None:
        if LEVELS[level] >= 30:  # counted whatever the level shown
            self.problems += 1
            self.last_problem = msg % args if args else msg
        if LEVELS[level] < self.level:
            return
        text = msg % args if args else msg
        if trace:
            import traceback  # only when something went wrong

            text += "\n" + traceback.format_exc().rstrip()
        if self.records is not None:
            self.records.append((level, text))
        line = "%s %s\n" % (level.upper(), text)
        if self.stamp:
            line = time.strftime("%Y-%m-%d %H:%M:%S fleetpulse-agent ") + line
        try:
            sys.stderr.write(line)
            sys.stderr.flush()
        except (OSError, ValueError):  # stderr closed: nothing better to do
            pass

    def debug(self, msg: str, *args: object) -> None:
        self.emit("debug", msg, args)

    def info(self, msg: str, *args: object) -> None:
        self.emit("info", msg, args)

    def warning(self, msg: str, *args: object) -> None:
        self.emit("warning", msg, args)

    def error(self, msg: str, *args: object) -> None:
        self.emit("error", msg, args)

    def exception(self, msg: str, *args: object) -> None:
        self.emit("error", msg, args, trace=True)


log = Log()
