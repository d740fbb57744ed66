from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.core.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("250ms", timedelta(milliseconds=250)),
        ("90", timedelta(seconds=90)),
        (2.5, timedelta(seconds=2.5)),
        ("999999999d", timedelta(days=999999999)),
    ],
)
def test_durations_people_write(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "value",
    [
        "1000000000d",
        "1000000000w",
        "99999999999999999999",
        "9" * 5000 + "s",
        10**20,
        1e300,
        "500000000d500000000d",
    ],
)
def test_a_duration_too_long_to_represent_is_refused_naming_it(value):
    with pytest.raises(ValueError, match="at most 999999999d") as refused:
        parse_duration(value)
    assert repr(value)[:40] in str(refused.value)
    assert len(str(refused.value)) < 120


@pytest.mark.parametrize("value", ["-5s", "5 minutes", "", "²s", True, None, float("nan"), -1])
def test_what_is_not_a_duration_is_refused(value):
    with pytest.raises(ValueError, match="must be a duration"):
        parse_duration(value)


@given(st.one_of(st.text(), st.integers(), st.floats()))
def test_any_value_parses_or_is_refused_with_a_value_error(value):
    try:
        parsed = parse_duration(value)
    except ValueError as refused:
        reason = str(refused)
        parsed = None
    if parsed is None:
        assert "must be a duration" in reason
    else:
        assert parsed >= timedelta(0)


@given(st.integers(0, 10**9 * 86400 - 1))
def test_format_then_parse_round_trips_whole_seconds(seconds):
    assert parse_duration(format_duration(timedelta(seconds=seconds))) == timedelta(seconds=seconds)
