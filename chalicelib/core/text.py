"""Text that must fit a limit: one clipping rule for messages, reasons and logs."""

from __future__ import annotations

ELLIPSIS = "…"
# How much of a refused name or value a reason quotes: enough to recognise it.
NAME_SHOWN = 40


def clip(value: object, limit: int) -> str:
    """`value` as text of at most `limit` characters, ending in an ellipsis when cut.
    A non-string is shown by its repr, so a reason names exactly what was sent."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS
