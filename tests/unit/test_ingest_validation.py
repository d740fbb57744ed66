"""Validation of the three accepted body shapes, every limit, and the never-5xx property."""

from __future__ import annotations

import gzip
import json
import math
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.core.errors import (
    IngestError,
    InvalidPayload,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from chalicelib.core.ingest import NAME_RE, decode_body, parse_ingest, parse_json, validate
from chalicelib.core.limits import Limits
from chalicelib.core.models import EventStatus, HeartbeatState, Shape
from tests.support.points import NOW, contract_body
from tests.support.strategies import json_documents

LIMITS = Limits()

CONTRACT_EXAMPLE = contract_body(NOW)


def run(doc: object, limits: Limits = LIMITS):
    return validate(parse_json(json.dumps(doc).encode()), limits, NOW)


def point(**overrides: object) -> dict[str, object]:
    p: dict[str, object] = {"measurement": "cpu", "time": NOW, "fields": {"user": 1.5}}
    p.update(overrides)
    return p


def native(*points: object, **extra: object) -> dict[str, object]:
    return {"host": "web-1", "points": list(points), **extra}


def outcome(call):
    """(result, None) or (None, the IngestError it raised); anything else propagates."""
    try:
        return call(), None
    except IngestError as exc:
        return None, exc


def reasons(parsed) -> list[str]:
    return [r.reason for r in parsed.rejected]


# ------------------------------------------------------------------ shapes


def test_contract_example_is_accepted_whole():
    parsed = run(CONTRACT_EXAMPLE)
    assert parsed.shape is Shape.NATIVE
    assert parsed.rejected == []
    [report] = parsed.reports
    assert report.host == "web-1.example.com"
    assert report.tags == {"role": "web", "env": "prod"}
    assert report.interval_s == 60
    assert report.state is HeartbeatState.ALIVE
    assert report.agent is not None
    assert report.agent.version == "0.1.0"
    [p] = report.points
    assert (p.measurement, p.time_ms, p.tags, p.fields) == (
        "cpu",
        NOW,
        {"cpu": "total"},
        {"user": 3.2, "system": 1.1, "idle": 95.7},
    )
    [e] = report.events
    assert e.service == "nginx"
    assert e.status is EventStatus.CRITICAL
    assert (e.ttl_ms, e.value, e.tags) == (120, 12.0, ("http",))


def test_vinli_shape_converts_numeric_strings_and_keeps_item_tags():
    doc = {
        "data": [
            {
                "points": [
                    {"fields": {"value": "2.98"}, "measurement": "load_average"},
                    {"fields": {"count": "42", "state": "ok"}, "measurement": "procs"},
                ],
                "tags": {
                    "hostname": "kube-7",
                    "ip": "",
                    "sample": "1_min",
                    "server_type": "kubernetes",
                },
            }
        ]
    }
    parsed = run(doc)
    assert parsed.shape is Shape.VINLI
    [report] = parsed.reports
    assert report.host == "kube-7"
    load, procs = report.points
    assert load.fields == {"value": 2.98}
    assert procs.fields == {"count": 42, "state": "ok"}
    # empty tag values say nothing and are dropped, as Telegraf does
    assert load.tags == {"sample": "1_min", "server_type": "kubernetes"}
    assert load.time_ms == NOW  # no time: the moment it was received
    assert load.path == "data[0].points[0]"


def test_vinli_items_for_several_hosts_become_several_reports():
    doc = {
        "data": [
            {"points": [point()], "tags": {"hostname": "a"}},
            {"points": [point()], "tags": {"hostname": "b"}},
            {"points": [point(measurement="mem")], "tags": {"hostname": "a"}},
        ]
    }
    parsed = run(doc)
    assert sorted((r.host, len(r.points)) for r in parsed.reports) == [("a", 2), ("b", 1)]


def test_numbat_single_event_and_list_with_riemann_names():
    single = run({"host": "db-1", "service": "backup", "status": "okay", "time": NOW, "ttl": 90000})
    assert single.shape is Shape.NUMBAT
    [report] = single.reports
    [e] = report.events
    assert (e.service, e.status, e.ttl_ms) == ("backup", EventStatus.OK, 90000)

    listing = run(
        [
            {
                "host": "db-1",
                "service": "disk",
                "state": "warning",
                "metric": 91,
                "time": NOW / 1000,
            },
            {"host": "db-2", "service": "disk", "status": "critical", "time": NOW},
        ]
    )
    assert sorted(r.host for r in listing.reports) == ["db-1", "db-2"]
    first = next(r for r in listing.reports if r.host == "db-1").events[0]
    # Riemann sends seconds; they are read as such
    assert (first.status, first.value, first.time_ms) == (EventStatus.WARNING, 91.0, NOW)


def test_heartbeat_only_post_is_valid_and_shutdown_is_read():
    parsed = run({"host": "web-1", "heartbeat": {"interval": 10, "state": "shutdown"}})
    [report] = parsed.reports
    assert report.points == []
    assert report.events == []
    assert report.state is HeartbeatState.SHUTDOWN
    assert report.interval_s == 10


# -------------------------------------------------------------- refusals


def test_nan_and_infinity_literals_are_refused_by_path():
    body = (
        b'{"host": "h", "points": [{"measurement": "cpu", "time": %d, "fields": {"a": NaN}},' % NOW
    )
    body += b'{"measurement": "cpu", "time": %d, "fields": {"b": -Infinity, "c": 1e999}},' % NOW
    body += b'{"measurement": "cpu", "time": %d, "fields": {"d": 1}}]}' % NOW
    parsed = validate(parse_json(body), LIMITS, NOW)
    assert [p.fields for p in parsed.reports[0].points] == [{"d": 1}]
    joined = " | ".join(reasons(parsed))
    assert "points[0].fields.a: NaN is not allowed" in joined
    assert "points[1].fields.b: -Infinity is not allowed" in joined
    assert "points[1].fields.c: value must be a finite number" in joined


def test_every_bad_point_is_named_and_the_good_ones_pass():
    parsed = run(
        native(
            point(),
            point(measurement="bad name"),
            point(fields={}),
            point(fields={"ok": 1, "bad": [1]}),
            point(tags={"time": "x"}),
            point(measurement="event"),
            point(fields={"huge": 2**64}),
            point(tags={"cpu": 7}, fields={"x": True, "s": "text"}),
            point(tags={"user": "a"}, fields={"user": 1}),
        )
    )
    kept = parsed.reports[0].points
    assert [p.index for p in kept] == [0, 7]
    assert kept[1].tags == {"cpu": "7"}  # numbers as tag values become their text
    by_index = {r.index: r.reason for r in parsed.rejected}
    assert "points[1].measurement: measurement 'bad name' has characters outside" in by_index[1]
    assert "points[2].fields: fields must hold at least one field" in by_index[2]
    assert (
        "points[3].fields.bad: value must be a number, boolean or string, got list" in by_index[3]
    )
    assert "points[4].tags.time: tag name 'time' is reserved by the metric store" in by_index[4]
    assert "reserved for fleetpulse" in by_index[5]
    assert "points[6].fields.huge: integer does not fit in 64 bits" in by_index[6]
    assert "points[8].fields.user: field 'user' has the same name as a tag" in by_index[8]


def test_names_too_long_and_tag_limits():
    limits = Limits(max_tags=2, max_name_bytes=10, max_tag_value_bytes=8)
    parsed = run(
        native(
            point(measurement="m" * 11),
            point(tags={"a": "1", "b": "2", "c": "3"}),
            point(tags={"a": "123456789"}),
            point(tags={"k" * 61: "v"}),
            point(),
        ),
        limits,
    )
    by_index = {r.index: r.reason for r in parsed.rejected}
    assert "longer than 10 bytes" in by_index[0]
    assert "3 tags; at most 2" in by_index[1]
    assert "tag value is longer than 8 bytes" in by_index[2]
    assert "longer than 60 bytes" in by_index[3]
    assert [p.index for p in parsed.reports[0].points] == [4]


def test_time_window_rejections_are_per_point_and_explain_themselves():
    limits = Limits(memory_retention=timedelta(hours=24))
    hour = 3_600_000
    parsed = run(
        native(
            point(time=NOW - 25 * hour),
            point(time=NOW + 20 * 60_000),
            point(time=NOW - 23 * hour),
            point(time=NOW + 5 * 60_000),
            point(time=1_700_000_000),
            point(time="yesterday"),
        ),
        limits,
    )
    by_index = {r.index: r.reason for r in parsed.rejected}
    assert "25.0 h old; the store accepts points up to 24 h old" in by_index[0]
    assert "20.0 min in the future" in by_index[1]
    assert "looks like seconds" in by_index[4]
    assert "time must be epoch milliseconds" in by_index[5]
    assert [p.index for p in parsed.reports[0].points] == [2, 3]


def test_with_magnetic_store_writes_a_backlog_older_than_the_memory_store_is_accepted():
    limits = Limits(memory_retention=timedelta(hours=2), magnetic_retention=timedelta(days=3))
    hour = 3_600_000
    parsed = run(
        native(point(time=NOW - 30 * hour), point(time=NOW - 73 * hour), point(time=NOW)),
        limits,
    )
    [refused] = parsed.rejected
    assert refused.index == 1
    assert "73.0 h old; the store accepts points up to 72 h old" in refused.reason
    assert [p.index for p in parsed.reports[0].points] == [0, 2]


def test_the_magnetic_retention_comes_from_the_environment_in_days():
    limits = Limits.from_env(
        {"FLEETPULSE_MEMORY_RETENTION_HOURS": "2", "FLEETPULSE_MAGNETIC_RETENTION_DAYS": "365"}
    )
    assert limits.memory_retention == timedelta(hours=2)
    assert limits.oldest_accepted == timedelta(days=365)
    assert Limits.from_env({"FLEETPULSE_MAGNETIC_RETENTION_DAYS": ""}).oldest_accepted == (
        Limits().memory_retention
    )
    with pytest.raises(ValueError, match="FLEETPULSE_MAGNETIC_RETENTION_DAYS"):
        Limits.from_env({"FLEETPULSE_MAGNETIC_RETENTION_DAYS": "0"})


def test_request_with_nothing_valid_is_a_400_with_every_problem():
    with pytest.raises(InvalidPayload) as info:
        run(native(point(fields={"a": "x" * 5000}), point(measurement="")))
    details = [d.path for d in info.value.details]
    assert details == ["points[0].fields.a", "points[1].measurement"]


def test_only_out_of_window_points_still_get_a_202_listing():
    parsed = run(native(point(time=NOW - 48 * 3_600_000)))
    assert parsed.reports[0].points == []
    assert len(parsed.rejected) == 1  # the heartbeat is still valid; nothing invalid


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ({"points": []}, "host"),
        ({"host": "", "points": []}, "host"),
        ({"host": "bad host!", "points": []}, "host"),
        ({"host": "h", "points": {}}, "points"),
        ({"host": "h", "heartbeat": {"interval": 0}}, "heartbeat.interval"),
        ({"host": "h", "heartbeat": {"interval": 86401}}, "heartbeat.interval"),
        ({"host": "h", "heartbeat": {"state": "dead"}}, "heartbeat.state"),
        ({"host": "h", "tags": {"a": ["x"]}}, "tags.a"),
        ({"host": "h", "agent": "v1"}, "agent"),
        ({"data": [{"points": [], "tags": {}}]}, "data[0].tags.hostname"),
    ],
)
def test_bad_envelopes_are_refused_whole_with_the_path(doc, path):
    with pytest.raises(InvalidPayload) as info:
        run(doc)
    assert path in [d.path for d in info.value.details]


@pytest.mark.parametrize("doc", [[], "text", 42, None, [1, 2]])
def test_bodies_that_are_not_an_object_are_refused(doc):
    with pytest.raises(InvalidPayload):
        run(doc)


def test_count_limits_are_413():
    limits = Limits(max_points=3, max_events=1, max_hosts=1)
    with pytest.raises(PayloadTooLarge, match="4 points in one request; the limit is 3"):
        run(native(*[point()] * 4), limits)
    with pytest.raises(PayloadTooLarge, match="2 events"):
        run({"host": "h", "events": [{"service": "a", "status": "ok"}] * 2}, limits)
    with pytest.raises(PayloadTooLarge, match="2 hosts"):
        run(
            [
                {"host": "a", "service": "s", "status": "ok"},
                {"host": "b", "service": "s", "status": "ok"},
            ],
            Limits(max_hosts=1),
        )


# --------------------------------------------------------------- decoding


def test_body_size_limit_applies_before_and_after_gzip():
    limits = Limits(max_body_bytes=1000, max_decompressed_bytes=50_000)
    with pytest.raises(PayloadTooLarge, match="limit is 1000 bytes"):
        decode_body(b"x" * 1001, None, limits)
    bomb = gzip.compress(b" " * 10_000_000)
    assert len(bomb) < 1000 * 20
    with pytest.raises(PayloadTooLarge, match="inflates to more than 50000 bytes"):
        decode_body(bomb, "gzip", Limits(max_body_bytes=len(bomb), max_decompressed_bytes=50_000))


def test_gzip_round_trip_multi_member_and_broken_gzip():
    body = json.dumps(native(point())).encode()
    assert decode_body(gzip.compress(body), "gzip", LIMITS) == body
    two = gzip.compress(body[:10]) + gzip.compress(body[10:])
    assert decode_body(two, "GZIP", LIMITS) == body
    with pytest.raises(InvalidPayload, match="truncated"):
        decode_body(gzip.compress(body)[:-12], "gzip", LIMITS)
    with pytest.raises(InvalidPayload, match="not valid gzip"):
        decode_body(b"\x1f\x8b" + b"garbage" * 10, "gzip", LIMITS)
    # API Gateway may inflate the body itself and leave the header in place
    assert decode_body(body, "gzip", LIMITS) == body


def test_unsupported_encodings_and_media_types_are_415():
    with pytest.raises(UnsupportedMediaType, match="'br'"):
        decode_body(b"{}", "br", LIMITS)
    with pytest.raises(UnsupportedMediaType, match="'text/plain'"):
        parse_ingest(b"{}", "text/plain", None, LIMITS, NOW)
    parsed = parse_ingest(
        json.dumps(native()).encode(), "application/json; charset=utf-8", None, LIMITS, NOW
    )
    assert parsed.reports[0].host == "web-1"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8 text \\(byte 0\\)"),
        (b'{"host": "\xc3"}', "not UTF-8"),
        (b"[" * 100_000, "nested too deeply"),
    ],
)
def test_unparseable_bodies_are_400(raw, message):
    with pytest.raises(InvalidPayload, match=message):
        parse_ingest(raw, "application/json", None, LIMITS, NOW)


# ------------------------------------------------------------- properties

json_values = json_documents()


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_document_is_accepted_or_refused_with_a_4xx(doc):
    parsed, refusal = outcome(lambda: validate(doc, LIMITS, NOW))
    if refusal is not None:
        assert 400 <= refusal.status < 500
        return
    for report in parsed.reports:
        for p in report.points:
            assert NAME_RE.match(p.measurement)
            assert p.fields
            for v in p.fields.values():
                assert not isinstance(v, float) or math.isfinite(v)


@settings(max_examples=300)
@given(st.binary(max_size=300), st.sampled_from([None, "gzip", "identity", "br"]))
def test_any_bytes_are_accepted_or_refused_with_a_4xx(raw, encoding):
    _, refusal = outcome(lambda: parse_ingest(raw, "application/json", encoding, LIMITS, NOW))
    assert refusal is None or 400 <= refusal.status < 500


names = st.from_regex(r"[a-z_][a-z0-9_]{0,15}", fullmatch=True).filter(
    lambda n: (
        n not in ("time", "measure_name", "event", "alert")
        and not n.startswith(("ts_", "measure_value"))
    )
)
good_points = st.builds(
    lambda m, t, tags, fields: {"measurement": m, "time": NOW - t, "tags": tags, "fields": fields},
    names,
    st.integers(min_value=0, max_value=3_600_000),
    st.dictionaries(
        st.sampled_from(["cpu", "mount", "device", "iface"]),
        st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=20),
        max_size=3,
    ),
    st.dictionaries(
        st.sampled_from(["value", "avg", "min", "max", "count", "ok"]),
        st.floats(allow_nan=False, allow_infinity=False)
        | st.integers(-(2**63), 2**63 - 1)
        | st.booleans(),
        min_size=1,
        max_size=6,
    ),
)


@settings(max_examples=200)
@given(st.lists(good_points, min_size=1, max_size=20))
def test_nothing_valid_is_refused(points):
    parsed = run(native(*points))
    assert parsed.rejected == []
    assert [p.fields for p in parsed.reports[0].points] == [p["fields"] for p in points]
