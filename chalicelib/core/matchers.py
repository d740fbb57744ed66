"""Label matchers shared by rules, heartbeat overrides and silences.

A matcher is `label: pattern`, the pattern a shell glob (`web-*`, `db-[12]`);
a leading `!` negates it. A label the alert does not carry reads as "", so
`!web-*` matches an alert without the label and `web-*` does not.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MAX_PATTERN_BYTES = 256


@dataclass(frozen=True, slots=True)
class Matcher:
    label: str
    pattern: str  # as written, `!` included
    regex: re.Pattern[str]
    negate: bool

    @classmethod
    def compile(cls, label: str, pattern: str) -> Matcher:
        negate = pattern.startswith("!")
        glob = pattern[1:] if negate else pattern
        return cls(label, pattern, re.compile(fnmatch.translate(glob)), negate)

    def matches(self, value: str) -> bool:
        return (self.regex.match(value) is not None) != self.negate


def parse_matchers(raw: object, path: str) -> tuple[tuple[Matcher, ...], list[tuple[str, str]]]:
    """Matchers from a `{label: pattern}` mapping; problems as (path, message) pairs.

    Numbers are read as their text (`cpu: 0` in YAML), anything else is a problem.
    """
    if not isinstance(raw, Mapping):
        return (), [(path, "must be a mapping of label to pattern")]
    matchers: list[Matcher] = []
    problems: list[tuple[str, str]] = []
    for label, raw_pattern in raw.items():
        where = f"{path}.{label}"
        pattern = raw_pattern
        if not isinstance(label, str) or not label:
            problems.append((path, f"label names must be non-empty strings, got {label!r}"))
            continue
        if isinstance(pattern, int | float) and not isinstance(pattern, bool):
            pattern = str(pattern)
        if not isinstance(pattern, str) or not pattern or pattern == "!":
            problems.append((where, "must be a non-empty glob pattern"))
            continue
        if len(pattern.encode()) > MAX_PATTERN_BYTES:
            problems.append((where, f"must be at most {MAX_PATTERN_BYTES} bytes"))
            continue
        matchers.append(Matcher.compile(label, pattern))
    return tuple(matchers), problems


def matches_all(matchers: Sequence[Matcher], *label_sets: Mapping[str, str]) -> bool:
    """True when every matcher matches; a label is looked up in `label_sets` in order."""
    for m in matchers:
        value = ""
        for labels in label_sets:
            found = labels.get(m.label)
            if found is not None:
                value = found
                break
        if not m.matches(value):
            return False
    return True


def matchers_as_json(matchers: Sequence[Matcher]) -> dict[str, str]:
    return {m.label: m.pattern for m in matchers}
