"""The SilenceStore contract, held by the in-memory fake and by DynamoDB (moto)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from chalicelib.core.silences import parse_silence

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def weekly(silence_id: str = "abc"):
    return parse_silence(
        {
            "matchers": {"host": "web-*", "rule": "!disk-*"},
            "schedule": {
                "days": ["sat", "sun"],
                "start": "22:00",
                "end": "02:00",
                "timezone": "Europe/Paris",
            },
            "comment": "patching",
        },
        silence_id=silence_id,
        now=NOW,
        created_by="tok",
    )


def once(silence_id: str = "def", at: datetime = NOW + timedelta(seconds=1)):
    return parse_silence(
        {"matchers": {"host": "*"}, "duration": "2h"}, silence_id=silence_id, now=at
    )


def test_silences_read_back_as_stored_oldest_first(stores):
    silences = stores.silences
    assert silences.put(once())
    assert silences.put(weekly())
    assert silences.list() == [weekly(), once()]


def test_a_taken_id_is_refused_and_the_first_silence_kept(stores):
    silences = stores.silences
    assert silences.put(weekly("abc"))
    assert not silences.put(replace(once("abc"), comment="second"))
    assert silences.list() == [weekly("abc")]


def test_delete_says_whether_there_was_such_a_silence(stores):
    silences = stores.silences
    silences.put(weekly())
    silences.put(once())
    assert silences.delete("abc")
    assert not silences.delete("abc")
    assert not silences.delete("nosuch")
    assert silences.list() == [once()]
