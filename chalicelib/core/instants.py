"""Instants on the wire and in storage: one exact conversion, used everywhere.

Epoch milliseconds are the wire format (Contract 1) and the storage format of every
`*_at` attribute. `int(at.timestamp() * 1000)` goes through a float and loses a
millisecond now and then; these functions stay in integers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def instant_of_ms(ms: int) -> datetime:
    """Epoch milliseconds as a UTC instant, exactly (no float on the way)."""
    return EPOCH + int(ms) * _MS


def ms_of_instant(at: datetime) -> int:
    """The inverse of instant_of_ms, exactly: a compare-and-swap on `last_seen_at`
    must send back the very number it read (a float round trip through
    `timestamp()` loses a millisecond now and then once epoch seconds pass 2**31).
    A naive datetime is refused: an instant without a zone is a bug upstream."""
    if at.tzinfo is None:
        raise ValueError("naive datetime: instants are UTC-aware")
    return (at - EPOCH) // _MS


def iso(at: datetime | None, timespec: str = "seconds") -> str | None:
    """An instant as ISO-8601 (seconds by default, as messages show it); None stays None."""
    return at.isoformat(timespec=timespec) if at is not None else None
