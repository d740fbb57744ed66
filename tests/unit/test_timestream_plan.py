"""The Timestream planner enforces every limit moto does not."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.core.limits import (
    TIMESTREAM_MAX_DIMENSIONS,
    TIMESTREAM_MAX_MEASURES_PER_RECORD,
    TIMESTREAM_MAX_RECORD_BYTES,
    TIMESTREAM_MAX_RECORDS_PER_WRITE,
)
from chalicelib.core.models import Event, EventStatus
from chalicelib.core.timestream import expand_records, plan_writes
from tests.support.points import NOW, pt, report


def test_points_become_multi_measure_records_with_host_and_time_in_common_attributes():
    plan = plan_writes([report(pt(fields={"user": 3.2, "idle": 95, "up": True, "state": "ok"}))])
    [request] = plan.requests
    # Timestream meters a call as the sum of its parts, common attributes once.
    assert request.common == {
        "Dimensions": [{"Name": "host", "Value": "web-1"}, {"Name": "role", "Value": "web"}],
        "MeasureValueType": "MULTI",
        "TimeUnit": "MILLISECONDS",
        "Time": str(NOW),
    }
    [record] = request.records
    assert record == {
        "Dimensions": [{"Name": "cpu", "Value": "total"}],
        "MeasureName": "cpu",
        "MeasureValues": [
            {"Name": "user", "Value": "3.2", "Type": "DOUBLE"},
            # integers are stored as DOUBLE too: a field must never change type
            {"Name": "idle", "Value": "95", "Type": "DOUBLE"},
            {"Name": "up", "Value": "true", "Type": "BOOLEAN"},
            {"Name": "state", "Value": "ok", "Type": "VARCHAR"},
        ],
    }
    [stored] = expand_records(request.common, request.records)
    assert stored["Time"] == str(NOW)
    assert [d["Name"] for d in stored["Dimensions"]] == ["host", "role", "cpu"]


def test_the_time_is_common_only_in_a_call_whose_records_all_share_it():
    same = [pt(i, time_ms=NOW, tags={"cpu": str(i)}) for i in range(150)]
    later = pt(150, time_ms=NOW + 10_000, tags={"cpu": "0"})
    plan = plan_writes([report(*same, later)])
    first, second = plan.requests
    assert first.common["Time"] == str(NOW)
    assert all("Time" not in r for r in first.records)
    # the second call mixes two instants: each record keeps its own
    assert "Time" not in second.common
    assert {r["Time"] for r in second.records} == {str(NOW), str(NOW + 10_000)}
    stored = [r for q in plan.requests for r in expand_records(q.common, q.records)]
    assert [r["Time"] for r in stored] == [str(NOW)] * 150 + [str(NOW + 10_000)]


def test_at_most_100_records_per_call():
    plan = plan_writes([report(*(pt(i) for i in range(250)))])
    assert [len(r.records) for r in plan.requests] == [100, 100, 50]
    assert all(len(r.records) <= TIMESTREAM_MAX_RECORDS_PER_WRITE for r in plan.requests)
    assert [s.index for r in plan.requests for s in r.sources] == list(range(250))


def test_point_tag_overriding_a_host_tag_gets_its_own_call():
    plan = plan_writes([report(pt(0), pt(1, tags={"role": "db"}))])
    merged = [rec for r in plan.requests for rec in expand_records(r.common, r.records)]
    roles = sorted({d["Value"] for rec in merged for d in rec["Dimensions"] if d["Name"] == "role"})
    assert roles == ["db", "web"]
    for rec in merged:  # never the same dimension twice in one record
        names = [d["Name"] for d in rec["Dimensions"]]
        assert len(names) == len(set(names))


def test_dimension_count_and_series_size_limits():
    wide = {f"t{i}": "v" for i in range(100)}
    host_tags = {f"h{i}": "v" for i in range(30)}
    plan = plan_writes([report(pt(0, tags=wide), pt(1), tags=host_tags)])
    assert "131 dimensions with the host's tags; Timestream allows 128" in plan.rejected[0].reason
    assert TIMESTREAM_MAX_DIMENSIONS == 128

    big = {f"k{i}": "v" * 250 for i in range(9)}
    plan = plan_writes([report(pt(0, tags=big))])
    assert "per series" in plan.rejected[0].reason


def test_measure_count_and_record_size_limits():
    many = {f"f{i}": 1.0 for i in range(TIMESTREAM_MAX_MEASURES_PER_RECORD + 1)}
    plan = plan_writes([report(pt(0, fields=many))])
    assert "257 fields; Timestream allows 256" in plan.rejected[0].reason

    heavy = {f"field_{i:03d}": 12345.678901234 for i in range(90)}
    plan = plan_writes([report(pt(0, fields=heavy))])
    [rejection] = plan.rejected
    assert "the record would be about" in rejection.reason
    assert rejection.path == "points[0]"

    fits = {f"f{i}": 1.25 for i in range(60)}
    assert plan_writes([report(pt(0, fields=fits))]).rejected == []


def test_long_and_empty_strings():
    plan = plan_writes(
        [
            report(
                pt(0, fields={"s": "x" * 2049}),
                pt(1, fields={"s": ""}),
                pt(2, fields={"s": "", "v": 1}),
            )
        ]
    )
    reasons = {r.index: r.reason for r in plan.rejected}
    assert "longer than 2048 bytes" in reasons[0]
    assert "no field with a value to store" in reasons[1]
    [request] = plan.requests
    assert request.records[0]["MeasureValues"] == [{"Name": "v", "Value": "1", "Type": "DOUBLE"}]


def test_same_series_and_instant_twice_in_one_request():
    plan = plan_writes(
        [report(pt(0, time_ms=NOW), pt(1, time_ms=NOW), pt(2, time_ms=NOW, fields={"user": 9.0}))]
    )
    assert sum(len(r.records) for r in plan.requests) == 1  # the exact repeat is dropped quietly
    [conflict] = plan.rejected
    assert conflict.index == 2
    assert "same series and time as points[0] with different values" in conflict.reason


def test_events_are_written_as_points_of_the_event_measurement():
    r = report()
    r.events.append(
        Event(
            "backup", EventStatus.CRITICAL, NOW, 90000, "disk full", 97.5, ("cron",), 0, "events[0]"
        )
    )
    [request] = plan_writes([r]).requests
    [record] = request.records
    assert record["MeasureName"] == "event"
    assert record["Dimensions"] == [{"Name": "service", "Value": "backup"}]
    assert {m["Name"]: m["Value"] for m in record["MeasureValues"]} == {
        "status": "critical",
        "value": "97.5",
        "description": "disk full",
        "ttl_ms": "90000",
        "tags": "cron",
    }


def record_bytes(record: dict) -> int:
    dims = sum(len(d["Name"].encode()) + len(d["Value"].encode()) for d in record["Dimensions"])
    values = sum(
        len(m["Name"].encode()) + len(m["Value"].encode()) for m in record["MeasureValues"]
    )
    return dims + values + len(record["MeasureName"].encode()) + len(record["Time"])


tag_values = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=120
)


@settings(max_examples=150)
@given(
    st.lists(
        st.tuples(
            st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), tag_values, max_size=12),
            st.dictionaries(
                st.from_regex(r"[a-z_]{1,40}", fullmatch=True),
                st.floats(allow_nan=False, allow_infinity=False)
                | st.text(min_size=1, max_size=300),
                min_size=1,
                max_size=80,
            ),
        ),
        min_size=1,
        max_size=150,
    )
)
def test_every_planned_record_is_within_timestream_limits(specs):
    points = [pt(i, tags=tags, fields=fields) for i, (tags, fields) in enumerate(specs)]
    plan = plan_writes([report(*points)])
    seen = set()
    for request in plan.requests:
        assert 1 <= len(request.records) <= TIMESTREAM_MAX_RECORDS_PER_WRITE
        for record in expand_records(request.common, request.records):
            assert len(record["Dimensions"]) <= TIMESTREAM_MAX_DIMENSIONS
            assert len(record["MeasureValues"]) <= TIMESTREAM_MAX_MEASURES_PER_RECORD
            assert record_bytes(record) <= TIMESTREAM_MAX_RECORD_BYTES
            assert all(m["Value"] for m in record["MeasureValues"])
        seen.update(s.index for s in request.sources)
    rejected = {r.index for r in plan.rejected}
    # every point is either written or rejected with a reason, never both, never lost
    assert seen | rejected == set(range(len(points)))
    assert not seen & rejected
