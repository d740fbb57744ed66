"""Table helpers the API-backed subcommands share."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from fleetpulse.commands import common


def age(iso: str | None, now: datetime) -> str:
    """`2026-11-21 12:00 (3m ago)`."""
    if not iso:
        return "-"
    at = datetime.fromisoformat(iso)
    seconds = int((now - at).total_seconds())
    if seconds < 0:
        ago = "in the future"
    elif seconds < 120:
        ago = f"{seconds}s ago"
    elif seconds < 7200:
        ago = f"{seconds // 60}m ago"
    elif seconds < 172800:
        ago = f"{seconds // 3600}h ago"
    else:
        ago = f"{seconds // 86400}d ago"
    return f"{common.short_time(at)} ({ago})"


def print_rows(rows: Sequence[Sequence[str]], empty: str) -> None:
    if len(rows) == 1:
        print(empty)
        return
    common.print_table(rows)
