"""Epoch milliseconds and instants: one exact conversion, both ways; ISO text and clipping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.core.instants import instant_of_ms, iso, ms_of_instant
from chalicelib.core.text import clip

# Year 1 to 9999 in epoch milliseconds: everything a datetime can hold.
MIN_MS = -62_135_596_800_000
MAX_MS = 253_402_300_799_999

instants_at_ms = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
).map(lambda at: at.replace(microsecond=at.microsecond // 1000 * 1000))


@given(instants_at_ms)
def test_an_instant_at_ms_precision_survives_the_round_trip(at):
    assert instant_of_ms(ms_of_instant(at)) == at


@given(st.integers(min_value=MIN_MS, max_value=MAX_MS))
def test_epoch_ms_survive_the_round_trip(ms):
    assert ms_of_instant(instant_of_ms(ms)) == ms


@given(
    instants_at_ms,
    st.sampled_from([timezone(timedelta(hours=h)) for h in (-8, 0, 5, 14)]),
)
def test_the_zone_an_instant_is_written_in_does_not_change_its_ms(at, zone):
    assert ms_of_instant(at.astimezone(zone)) == ms_of_instant(at)


def test_the_float_round_trip_it_replaces_loses_a_millisecond_where_this_one_does_not():
    # 2**31 s and more: `timestamp() * 1000` rounds below the true value for some instants.
    lossy = [
        ms
        for ms in range(2**31 * 1000, 2**31 * 1000 + 2000)
        if int(instant_of_ms(ms).timestamp() * 1000) != ms
    ]
    assert lossy, "the float conversion should lose at least one ms in this range"
    assert all(ms_of_instant(instant_of_ms(ms)) == ms for ms in lossy)


def test_sub_millisecond_parts_are_floored_and_naive_instants_refused():
    at = datetime(2026, 11, 21, 12, 0, 0, 999_999, tzinfo=UTC)
    assert ms_of_instant(at) == ms_of_instant(at.replace(microsecond=999_000))
    with pytest.raises(ValueError, match="naive"):
        ms_of_instant(datetime(2026, 11, 21, 12, 0))


def test_iso_is_seconds_by_default_and_none_stays_none():
    at = datetime(2026, 11, 21, 12, 0, 5, 123_456, tzinfo=UTC)
    assert iso(at) == "2026-11-21T12:00:05+00:00"
    assert iso(at, "milliseconds") == "2026-11-21T12:00:05.123+00:00"
    assert iso(None) is None


@given(st.one_of(st.text(max_size=80), st.integers(), st.none()), st.integers(2, 60))
def test_clip_never_passes_its_limit_and_keeps_short_text_whole(value, limit):
    text = value if isinstance(value, str) else repr(value)
    clipped = clip(value, limit)
    assert len(clipped) <= limit
    if len(text) <= limit:
        assert clipped == text
    else:
        assert clipped == text[: limit - 1] + "…"
