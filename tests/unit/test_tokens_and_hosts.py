"""Tokens (format, hashing, scopes) and what a post records about its host."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.core.hosts import LATEST_MAX_AGE, HostState, Tracking, host_update, series_key
from chalicelib.core.instants import ms_of_instant
from chalicelib.core.models import Event, EventStatus, HeartbeatState, HostReport, Point
from chalicelib.core.tokens import (
    ID_BYTES,
    SECRET_BYTES,
    Scope,
    ScopeKind,
    TokenRecord,
    bearer_token,
    mint,
    token_hash,
    token_id_of,
    verify,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
NOW_MS = ms_of_instant(NOW)


def test_minted_tokens_carry_their_id_and_only_a_hash_is_kept():
    token_id, token = mint(os.urandom(ID_BYTES + SECRET_BYTES))
    assert token.startswith(f"fp_{token_id}_")
    assert token_id_of(token) == token_id
    record = TokenRecord(token_id, token_hash(token), Scope.parse("fleet"), "", NOW)
    assert token not in repr(record)
    assert verify(record, token)
    assert not verify(record, token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert not verify(
        TokenRecord(token_id, token_hash(token), Scope.parse("fleet"), "", NOW, revoked_at=NOW),
        token,
    )
    other_id, other = mint(os.urandom(ID_BYTES + SECRET_BYTES))
    assert other_id != token_id
    assert other != token


@pytest.mark.parametrize(
    "bad",
    ["", "fp_x_y", "Bearer abc", "fp_" + "a" * 12 + "_short", "xx_" + "a" * 12 + "_" + "b" * 43],
)
def test_malformed_tokens_have_no_id(bad):
    assert token_id_of(bad) is None


def test_scopes():
    assert Scope.parse("fleet").may_post_for("anything")
    host = Scope.parse("host:web-1")
    assert host.kind is ScopeKind.HOST
    assert str(host) == "host:web-1"
    assert host.may_post_for("web-1")
    assert not host.may_post_for("web-2")
    assert Scope.parse("admin").is_admin
    assert not Scope.parse("fleet").is_admin
    for bad in ("root", "host:", "host", "fleet:x"):
        with pytest.raises(ValueError, match="scope must be"):
            Scope.parse(bad)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Token abc", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        (None, None),
    ],
)
def test_authorization_header_parsing(header, expected):
    assert bearer_token(header) == expected


def p(measurement, t, fields, tags=None, path="points[0]"):
    return Point(measurement, t, tags or {}, fields, 0, path)


def test_host_update_keeps_the_newest_value_per_series_and_skips_backlog():
    old = NOW_MS - int(LATEST_MAX_AGE.total_seconds() * 1000) - 1
    report = HostReport(
        host="web-1",
        tags={"role": "web"},
        interval_s=30,
        points=[
            p("cpu", NOW_MS - 20_000, {"user": 5.0}, {"cpu": "total"}),
            p("cpu", NOW_MS - 10_000, {"user": 7.0, "note": "x"}, {"cpu": "total"}),
            p("cpu", NOW_MS - 30_000, {"user": 1.0}, {"cpu": "total"}),
            p("disk", old, {"used_percent": 99.0}, {"mount": "/"}),
        ],
        events=[
            Event("backup", EventStatus.CRITICAL, NOW_MS - 5000, 60_000),
            Event("backup", EventStatus.OK, NOW_MS - 1000, 60_000, "done"),
        ],
    )
    update = host_update(report, NOW)
    assert update.state is HostState.UP
    assert update.interval_s == 30
    assert list(update.series) == ["cpu|cpu=total"]
    latest = update.series["cpu|cpu=total"]
    assert latest.fields == {"user": 7.0}  # strings are not thresholds' business
    assert latest.time_ms == NOW_MS - 10_000
    assert update.services["backup"].status == "ok"


def test_shutdown_retires_the_host():
    update = host_update(
        HostReport(host="h", state=HeartbeatState.SHUTDOWN), NOW + timedelta(seconds=1)
    )
    assert update.state is HostState.RETIRED


def test_series_key_is_independent_of_tag_order():
    assert series_key("disk", {"mount": "/", "device": "sda1"}) == "disk|device=sda1|mount=/"
    assert series_key("disk", {"device": "sda1", "mount": "/"}) == "disk|device=sda1|mount=/"
    assert series_key("load", {}) == "load"


def test_a_post_adds_at_most_the_cap_of_series_and_services_to_its_host_the_same_ones_each_time():
    def storm(order):
        return HostReport(
            host="statsd-1",
            points=[
                p("statsd", NOW_MS - 1000, {"count": float(i)}, {"key": f"user-{i:04d}"})
                for i in order
            ]
            + [p("cpu", NOW_MS - 1000, {"idle": 97.0}, {"cpu": "total"})],
            events=[Event(f"svc-{i:03d}", EventStatus.OK, NOW_MS - 1000, None) for i in order],
        )

    tracking = Tracking(max_series=50, max_services=20)
    first = host_update(storm(range(300)), NOW, tracking)
    again = host_update(storm(list(reversed(range(300)))), NOW, tracking)
    assert len(first.series) == 50
    assert first.untracked_series == 251
    assert len(first.services) == 20
    assert first.untracked_services == 280
    assert list(first.series) == list(again.series) == sorted(first.series)
    assert set(first.services) == set(again.services)
    # What the status page draws comes from the whole post, not only what is kept.
    assert first.history is not None
    assert first.history.cpu == 3.0
    # Within the caps nothing changes, and without tracking everything is kept.
    small = host_update(storm(range(10)), NOW, tracking)
    assert (small.untracked_series, small.untracked_services) == (0, 0)
    assert len(small.series) == 11
    assert len(host_update(storm(range(300)), NOW).series) == 301
