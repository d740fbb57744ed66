"""Silences and maintenance windows: create, list, delete (admin API)."""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import datetime
from typing import Any

from chalicelib.core.errors import InvalidPayload, NotFound, Problem
from chalicelib.core.ports import SilenceStore
from chalicelib.core.silences import Silence, SilenceState, parse_silence


class SilenceService:
    def __init__(self, store: SilenceStore) -> None:
        self.store = store

    def add(self, body: object, now: datetime, created_by: str) -> Silence:
        """Validate and store a silence; it applies from the next evaluation."""
        silence = parse_silence(
            body, silence_id=secrets.token_hex(6), now=now, created_by=created_by
        )
        # 48 random bits: a taken id is all but impossible, and costs only a new one.
        while not self.store.put(silence):
            silence = replace(silence, silence_id=secrets.token_hex(6))
        return silence

    def list(self, now: datetime, state: str | None = None) -> list[dict[str, Any]]:
        """Silences not yet expired; `state=all` (or active, pending, expired) to choose."""
        if state and state != "all" and state not in {s.value for s in SilenceState}:
            raise InvalidPayload(
                "unknown state",
                [Problem("state", "must be all, active, pending or expired")],
            )
        views = []
        for silence in self.store.list():
            view = silence.as_json(now)
            shown = state == "all" or view["state"] == state
            if shown or (not state and view["state"] != SilenceState.EXPIRED):
                views.append(view)
        return views

    def delete(self, silence_id: str) -> None:
        """Remove a silence now; alerts it held back are notified at the next evaluation."""
        if not self.store.delete(silence_id):
            raise NotFound(f"no silence with id {silence_id!r}")
