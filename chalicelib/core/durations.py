"""Durations as people write them in rules files, settings and the CLI: `30s`, `5m`, `1h30m`."""

from __future__ import annotations

import math
import re
from datetime import timedelta

from chalicelib.core.text import clip

_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w)")
_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}


def parse_duration(value: object) -> timedelta:
    """`30s`, `5m`, `4h`, `1d`, `1h30m`, or a number of seconds (int, float or digits).

    Raises ValueError saying what is accepted. Negative durations are refused, and so
    are durations too long to represent (more than 999999999 days).
    """
    try:
        return _parse(value)
    except OverflowError:
        shown = clip(repr(value), 60)
        raise ValueError(f"must be a duration of at most 999999999d, got {shown}") from None


def _parse(value: object) -> timedelta:
    if isinstance(value, bool):
        raise ValueError(f"must be a duration like 30s, 5m, 4h or 1d, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"must be a duration of 0 or more, got {value!r}")
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError(f"must be a duration like 30s, 5m, 4h or 1d, got {value!r}")
    text = value.strip()
    if text.isascii() and text.isdigit():
        return timedelta(seconds=_count(text))
    total = timedelta(0)
    pos = 0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += _count(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"must be a duration like 30s, 5m, 4h or 1d, got {value!r}")
    return total


def _count(digits: str) -> int:
    if len(digits) > 20:  # far past any timedelta, and short of int()'s own digit limit
        raise OverflowError(digits)
    return int(digits)


def format_duration(duration: timedelta) -> str:
    """The shortest readable form: `90s` -> `1m30s`, `0` -> `0s`."""
    seconds = int(duration.total_seconds())
    if seconds <= 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(out)
