"""Names app.py needs at import, before (and without) the full settings."""

from __future__ import annotations

from collections.abc import Mapping


def alerts_topic_name(env: Mapping[str, str]) -> str:
    """The alerts topic's name (or ARN). app.py reads it at import: `chalice deploy`
    sets the stage's environment variables before importing the app."""
    stage = env.get("FLEETPULSE_STAGE") or "dev"
    return env.get("FLEETPULSE_ALERTS_TOPIC") or f"fleetpulse-{stage}-alerts"
