"""Silences and maintenance windows: matchers plus a one-shot span or a weekly schedule.

A silenced alert keeps its state; it only does not notify. When the silence
ends, an alert still firing is notified then, and one that cleared meanwhile
closes without a word (see chalicelib.core.alerts).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from chalicelib.core.durations import format_duration, parse_duration
from chalicelib.core.errors import InvalidPayload, Problem
from chalicelib.core.matchers import Matcher, matchers_as_json, parse_matchers

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_MATCHERS = 20
MAX_COMMENT_BYTES = 1024
MAX_AUTHOR_BYTES = 256
_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)\Z")
_BODY_KEYS = {"matchers", "starts_at", "ends_at", "duration", "schedule", "comment", "created_by"}
_SCHEDULE_KEYS = {"days", "start", "end", "timezone"}


class SilenceState(enum.StrEnum):
    ACTIVE = "active"  # silencing now
    PENDING = "pending"  # will silence later (before its start, or between windows)
    EXPIRED = "expired"  # never again


def zone(name: str) -> tzinfo:
    """A timezone by IANA name; UTC needs no tz database. Raises ValueError."""
    if name in ("UTC", "Etc/UTC", "Z"):
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {name!r}") from exc


@dataclass(frozen=True, slots=True)
class Weekly:
    """Every listed weekday from `start` to `end` local time; `end <= start` runs past midnight."""

    days: frozenset[int]  # 0 = Monday
    start: time
    end: time
    timezone: str = "UTC"

    def window_at(self, at: datetime) -> tuple[datetime, datetime] | None:
        """The window containing `at`, if any."""
        tz = zone(self.timezone)
        local = at.astimezone(tz)
        for back in (0, 1):
            day = local.date() - timedelta(days=back)
            start, end = self._window(day, tz)
            if day.weekday() in self.days and start <= at < end:
                return start, end
        return None

    def next_start(self, after: datetime) -> datetime:
        tz = zone(self.timezone)
        local = after.astimezone(tz).date()
        for ahead in range(8):
            day = local + timedelta(days=ahead)
            start, _ = self._window(day, tz)
            if day.weekday() in self.days and start > after:
                return start
        raise AssertionError("a weekly schedule has a start within 8 days")  # pragma: no cover

    def _window(self, day: date, tz: tzinfo) -> tuple[datetime, datetime]:
        start = datetime.combine(day, self.start, tzinfo=tz)
        end_day = day if self.end > self.start else day + timedelta(days=1)
        return start, datetime.combine(end_day, self.end, tzinfo=tz)

    def as_json(self) -> dict[str, Any]:
        return {
            "days": [DAYS[d] for d in sorted(self.days)],
            "start": self.start.strftime("%H:%M"),
            "end": self.end.strftime("%H:%M"),
            "timezone": self.timezone,
        }


@dataclass(frozen=True, slots=True)
class Silence:
    silence_id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime | None  # None: a weekly schedule without an end
    created_at: datetime
    schedule: Weekly | None = None
    comment: str = ""
    created_by: str = ""

    def active_at(self, at: datetime) -> bool:
        if at < self.starts_at or (self.ends_at is not None and at >= self.ends_at):
            return False
        return self.schedule is None or self.schedule.window_at(at) is not None

    def state_at(self, at: datetime) -> SilenceState:
        if self.ends_at is not None and at >= self.ends_at:
            return SilenceState.EXPIRED
        if self.active_at(at):
            return SilenceState.ACTIVE
        if (
            self.schedule is not None
            and self.ends_at is not None
            and at >= self.starts_at
            and self.schedule.next_start(at) >= self.ends_at
        ):
            return SilenceState.EXPIRED
        return SilenceState.PENDING

    def matches(self, builtin: Mapping[str, str], labels: Mapping[str, str]) -> bool:
        """True when every matcher matches; `host`, `rule`, `kind`, `severity` come first."""
        for m in self.matchers:
            value = builtin.get(m.label)
            if value is None:
                value = labels.get(m.label, "")
            if not m.matches(value):
                return False
        return True

    def as_json(self, now: datetime) -> dict[str, Any]:
        return {
            "silence_id": self.silence_id,
            "matchers": matchers_as_json(self.matchers),
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat() if self.ends_at else None,
            "schedule": self.schedule.as_json() if self.schedule else None,
            "comment": self.comment,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "state": self.state_at(now).value,
        }


def parse_instant(raw: object) -> datetime:
    """An ISO-8601 instant with its UTC offset (`Z` accepted), as UTC. Raises ValueError."""
    if not isinstance(raw, str):
        raise ValueError("must be an ISO-8601 time string")
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"must be an ISO-8601 time, got {raw!r}") from None
    if at.tzinfo is None:
        raise ValueError(f"must include a UTC offset (like 2026-11-21T02:00:00Z), got {raw!r}")
    return at.astimezone(UTC)


def parse_silence(body: object, *, silence_id: str, now: datetime, created_by: str = "") -> Silence:
    """Validate a POST /v1/silences body. Raises InvalidPayload naming each problem's path.

    One-shot: `ends_at` (or `duration`), optional `starts_at` (default now).
    Recurring: `schedule: {days, start, end, timezone}`, optionally bounded by
    `starts_at`/`ends_at`. Matchers are required: a silence that matches
    everything has to say so (`{"host": "*"}`).
    """
    problems: list[Problem] = []
    if not isinstance(body, Mapping):
        raise InvalidPayload("silence must be a JSON object", [Problem("", "must be an object")])
    for key in body:
        if key not in _BODY_KEYS:
            problems.append(
                Problem(str(key), f"unknown key (known: {', '.join(sorted(_BODY_KEYS))})")
            )
    matchers: tuple[Matcher, ...] = ()
    if "matchers" not in body:
        problems.append(Problem("matchers", 'is required, like {"host": "web-*"}'))
    else:
        matchers, found = parse_matchers(body["matchers"], "matchers")
        problems.extend(Problem(p, m) for p, m in found)
        if not found and not matchers:
            problems.append(Problem("matchers", 'needs at least one matcher, like {"host": "*"}'))
        if len(matchers) > MAX_MATCHERS:
            problems.append(Problem("matchers", f"at most {MAX_MATCHERS} matchers"))
    starts_at = now
    if body.get("starts_at") is not None:
        try:
            starts_at = parse_instant(body["starts_at"])
        except ValueError as exc:
            problems.append(Problem("starts_at", str(exc)))
    ends_at: datetime | None = None
    if body.get("ends_at") is not None and body.get("duration") is not None:
        problems.append(Problem("duration", "give ends_at or duration, not both"))
    elif body.get("ends_at") is not None:
        try:
            ends_at = parse_instant(body["ends_at"])
        except ValueError as exc:
            problems.append(Problem("ends_at", str(exc)))
    elif body.get("duration") is not None:
        try:
            length = parse_duration(body["duration"])
            if length <= timedelta(0):
                raise ValueError("must be longer than 0s")
            ends_at = starts_at + length
        except ValueError as exc:
            problems.append(Problem("duration", str(exc)))
    schedule: Weekly | None = None
    if body.get("schedule") is not None:
        schedule = _parse_weekly(body["schedule"], problems)
    elif ends_at is None and not any(p.path in ("ends_at", "duration") for p in problems):
        problems.append(Problem("ends_at", "a one-shot silence needs ends_at or duration"))
    if ends_at is not None:
        if ends_at <= starts_at:
            problems.append(Problem("ends_at", "must be after starts_at"))
        elif ends_at <= now:
            problems.append(Problem("ends_at", "is in the past: the silence would never apply"))
    comment = _text(body, "comment", MAX_COMMENT_BYTES, problems)
    author = _text(body, "created_by", MAX_AUTHOR_BYTES, problems) or created_by
    if problems:
        raise InvalidPayload("invalid silence", problems)
    return Silence(
        silence_id=silence_id,
        matchers=matchers,
        starts_at=starts_at,
        ends_at=ends_at,
        created_at=now,
        schedule=schedule,
        comment=comment,
        created_by=author,
    )


def _text(body: Mapping[str, Any], key: str, limit: int, problems: list[Problem]) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        problems.append(Problem(key, "must be a string"))
        return ""
    if len(value.encode()) > limit:
        problems.append(Problem(key, f"must be at most {limit} bytes"))
        return ""
    return value


def parse_day(text: str) -> int:
    key = text.strip().lower()[:3]
    if key not in DAYS or not text.strip().lower().startswith(key):
        raise ValueError(f"unknown day {text!r} (use {', '.join(DAYS)})")
    return DAYS.index(key)


def _parse_weekly(raw: object, problems: list[Problem]) -> Weekly | None:
    if not isinstance(raw, Mapping):
        problems.append(Problem("schedule", "must be an object with days, start, end, timezone"))
        return None
    before = len(problems)
    for key in raw:
        if key not in _SCHEDULE_KEYS:
            problems.append(
                Problem(f"schedule.{key}", "unknown key (known: days, start, end, timezone)")
            )
    days: set[int] = set()
    raw_days = raw.get("days")
    if raw_days in ("*", "daily"):
        days = set(range(7))
    elif not isinstance(raw_days, list) or not raw_days:
        problems.append(Problem("schedule.days", 'must be a list of days like ["sun"], or "*"'))
    else:
        for i, day in enumerate(raw_days):
            try:
                if not isinstance(day, str):
                    raise ValueError(f"must be a day name like sun, got {day!r}")
                days.add(parse_day(day))
            except ValueError as exc:
                problems.append(Problem(f"schedule.days[{i}]", str(exc)))
    times: dict[str, time] = {}
    for key in ("start", "end"):
        value = raw.get(key)
        match = _HHMM.match(value) if isinstance(value, str) else None
        if match is None:
            problems.append(Problem(f"schedule.{key}", f"must be HH:MM (24 h), got {value!r}"))
        else:
            times[key] = time(int(match.group(1)), int(match.group(2)))
    if len(times) == 2 and times["start"] == times["end"]:
        problems.append(Problem("schedule.end", "must differ from start"))
    tz_name = raw.get("timezone", "UTC")
    if not isinstance(tz_name, str):
        problems.append(
            Problem("schedule.timezone", "must be an IANA name like UTC or Europe/Paris")
        )
    else:
        try:
            zone(tz_name)
        except ValueError as exc:
            problems.append(Problem("schedule.timezone", str(exc)))
    if len(problems) > before:
        return None
    return Weekly(frozenset(days), times["start"], times["end"], str(tz_name))


def silence_from_json(raw: Mapping[str, Any]) -> Silence:
    """A stored silence (as `as_json` wrote it, minus `state`) back as a Silence."""
    matchers, _ = parse_matchers(raw.get("matchers", {}), "matchers")
    schedule = None
    if raw.get("schedule"):
        s = raw["schedule"]
        schedule = Weekly(
            frozenset(DAYS.index(d) for d in s["days"]),
            time.fromisoformat(s["start"]),
            time.fromisoformat(s["end"]),
            s.get("timezone", "UTC"),
        )
    return Silence(
        silence_id=raw["silence_id"],
        matchers=matchers,
        starts_at=datetime.fromisoformat(raw["starts_at"]),
        ends_at=datetime.fromisoformat(raw["ends_at"]) if raw.get("ends_at") else None,
        created_at=datetime.fromisoformat(raw["created_at"]),
        schedule=schedule,
        comment=raw.get("comment", ""),
        created_by=raw.get("created_by", ""),
    )


def active_silences(silences: Sequence[Silence], now: datetime) -> list[Silence]:
    return [s for s in silences if s.active_at(now)]


def describe(silence: Silence) -> str:
    """One line for tables: `sun 02:00-04:00 UTC` or `until 2026-11-21 14:00 (2h)`."""
    if silence.schedule is not None:
        w = silence.schedule
        days = ",".join(DAYS[d] for d in sorted(w.days)) if len(w.days) < 7 else "daily"
        return f"{days} {w.start:%H:%M}-{w.end:%H:%M} {w.timezone}"
    assert silence.ends_at is not None
    return f"{silence.starts_at:%Y-%m-%d %H:%M} for {format_duration(silence.ends_at - silence.starts_at)}"
