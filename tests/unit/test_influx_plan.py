"""Points out as line protocol: escaping, the type rule, refusals per point, batches."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.core.influx import (
    Batch,
    error_message,
    plan_influx_writes,
    read_refusal,
    suspects,
)
from chalicelib.core.line_protocol import logical_lines, parse_line
from chalicelib.core.models import Event, EventStatus, HostReport, Point
from tests.support.points import NOW, pt, report


def lines(*reports: HostReport, **kw) -> list[str]:
    plan = plan_influx_writes(list(reports), **kw)
    assert plan.rejected == []
    return [line for b in plan.batches for line in b.lines]


def test_a_point_is_one_line_with_host_tags_sorted_and_ms_time():
    [line] = lines(report(pt(fields={"user": 3.2, "idle": 95, "up": True, "state": "ok"})))
    assert line == f'cpu,cpu=total,host=web-1,role=web user=3.2,idle=95,up=true,state="ok" {NOW}'


def test_point_tags_override_host_tags():
    [line] = lines(report(pt(tags={"role": "db", "cpu": "0"})))
    assert line == f"cpu,cpu=0,host=web-1,role=db user=1.5 {NOW}"


def test_every_number_is_written_as_a_float():
    # No `i` suffix: a field sent as 1 then 1.5 (JSON) or 1i (Telegraf) never changes type.
    [line] = lines(
        report(pt(fields={"a": 1, "b": -7, "c": 2**53, "d": 2**60, "e": 0.1, "f": 1e300}))
    )
    assert " a=1,b=-7,c=9007199254740992,d=1.152921504606847e+18,e=0.1,f=1e+300 " in line
    fields = parse_line(line).fields
    assert all(type(v) is float for v in fields.values())


def test_escaping_of_measurement_tags_field_keys_and_strings():
    p = pt(
        measurement="my meas,urement",
        tags={"tag key": "a=b,c d", "path": "C:\\Windows"},
        fields={"field=key": 1.0, "s": 'he said "hi" \\o/', "multi": "line1\nline2\r"},
    )
    [line] = lines(report(p))
    assert line == (
        "my\\ meas\\,urement,host=web-1,path=C:\\Windows,role=web,tag\\ key=a\\=b\\,c\\ d "
        'field\\=key=1.0,s="he said \\"hi\\" \\\\o/",multi="line1\\nline2\\r" ' + str(NOW)
    )
    read = parse_line(line)
    assert read.measurement == "my meas,urement"
    assert read.tags["tag key"] == "a=b,c d"
    assert read.tags["path"] == "C:\\Windows"
    assert read.fields["s"] == 'he said "hi" \\o/'
    # Line protocol cannot carry a line break: it is written as the two characters \n,
    # as Telegraf writes it.
    assert read.fields["multi"] == "line1\\nline2\\r"


def test_events_and_alert_points_are_stored_like_any_point():
    event = Event(
        "nginx", EventStatus.CRITICAL, NOW, 120_000, "5xx rate 12%", 12.0, ("http",), 0, "events[0]"
    )
    alert = Point(
        "alert",
        NOW,
        {"rule": "disk-full", "severity": "critical", "status": "firing"},
        {"summary": "Disk / at 97% on web-1", "value": 97.1, "threshold": 95.0},
        path="alert",
    )
    got = lines(report(alert, events=[event]))
    assert got == [
        f'alert,host=web-1,role=web,rule=disk-full,severity=critical,status=firing summary="Disk / at 97% on web-1",value=97.1,threshold=95.0 {NOW}',
        f'event,host=web-1,role=web,service=nginx status="critical",value=12.0,description="5xx rate 12%",ttl_ms=120000,tags="http" {NOW}',
    ]


@pytest.mark.parametrize(
    ("point", "reason"),
    [
        (pt(tags={"cpu": "a\nb"}), "tag 'cpu' value 'a\\nb' holds a line break"),
        (
            pt(tags={"cpu": "a\\"}),
            "backslash before a backslash, space, comma, equals sign or at the end",
        ),
        (pt(tags={"cpu": "a\\,b"}), "backslash before"),
        (pt(tags={"cpu": "a\\\\b"}), "backslash before"),
        (pt(measurement="c\tpu"), "measurement 'c\\tpu' holds a control character"),
        (pt(measurement="#cpu"), "starts with '#', which reads as a comment"),
        (pt(tags={"_field": "x"}), "tag key '_field' is reserved by InfluxDB"),
        (pt(fields={"time": 1.0}), "field key 'time' is reserved by InfluxDB"),
        (pt(fields={"x": float("nan")}), "field 'x': NaN and infinity cannot be stored"),
        (pt(fields={"x": "y" * 65_536}), "longer than InfluxDB's 65535 bytes"),
        (pt(tags={"cpu": "y" * 70_000}), "measurement and tags take more than"),
        (pt(fields={}), "no field to store"),
        (pt(fields={"x": 10**400}), "too large for a float"),
    ],
)
def test_what_influxdb_cannot_store_or_would_misread_is_rejected_per_point(point, reason):
    good = pt(1)
    plan = plan_influx_writes([report(point, good)])
    [rejection] = plan.rejected
    assert rejection.path == point.path
    assert rejection.reason.startswith(point.path + ": ")
    assert reason in rejection.reason
    assert [p.path for b in plan.batches for p in b.sources] == [good.path]


def test_host_tags_that_cannot_be_written_reject_the_reports_points():
    plan = plan_influx_writes([report(pt(0), pt(1), tags={"role": "web\n"})])
    assert [r.path for r in plan.rejected] == ["points[0]", "points[1]"]
    assert plan.batches == []


def test_batches_hold_at_most_max_lines_and_max_bytes():
    points = [pt(i) for i in range(23)]
    plan = plan_influx_writes([report(*points)], max_lines=10)
    assert [len(b.lines) for b in plan.batches] == [10, 10, 3]
    size = len(plan.batches[0].lines[0]) + 1
    plan = plan_influx_writes([report(*points)], max_bytes=size * 4 + 1)
    assert [len(b.lines) for b in plan.batches] == [4, 4, 4, 4, 4, 3]
    assert all(b.size <= size * 4 + 1 for b in plan.batches)
    big = pt(99, fields={"s": "x" * 500})
    plan = plan_influx_writes([report(pt(0), big, pt(1))], max_bytes=200)
    assert [[p.path for p in b.sources] for b in plan.batches] == [
        ["points[0]"],
        ["points[99]"],
        ["points[1]"],
    ]
    assert plan.batches[0].body() == (plan.batches[0].lines[0] + "\n").encode()


@given(
    st.lists(
        st.dictionaries(
            st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True).filter(lambda k: k != "time"),
            st.one_of(
                st.floats(allow_nan=False, allow_infinity=False),
                st.booleans(),
                st.text(max_size=10),
            ),
            min_size=1,
            max_size=4,
        ),
        min_size=1,
        max_size=20,
    )
)
@settings(max_examples=100, deadline=None)
def test_planned_lines_read_back_as_the_points(field_sets):
    points = [pt(i, fields=f) for i, f in enumerate(field_sets)]
    plan = plan_influx_writes([report(*points)], max_lines=7)
    body = b"".join(b.body() for b in plan.batches).decode()
    read = [parse_line(line) for _, line in logical_lines(body)]
    assert len(read) == len(points)
    for line, p in zip(read, points, strict=True):
        assert line.timestamp == p.time_ms
        assert line.tags == {"host": "web-1", "role": "web", **p.tags}
        expected = {
            k: v.replace("\n", "\\n").replace("\r", "\\r") if isinstance(v, str) else v
            for k, v in p.fields.items()
        }
        assert line.fields == expected


# ------------------------------------------------------- InfluxDB's answers


def test_refusals_as_influxdb_words_them():
    v1 = read_refusal(
        'partial write: field type conflict: input field "x" on measurement "m" is type float, '
        "already exists as type string dropped=2"
    )
    assert (v1.partial, v1.dropped, v1.conflict, v1.line) == (True, 2, ("m", "x", "float"), None)
    v2 = read_refusal(
        "failure writing points to database: partial write: field type conflict: input field "
        '"used \\"pct\\"" on measurement "disk" is type boolean, already exists as type float dropped=1'
    )
    assert v2.conflict == ("disk", 'used "pct"', "boolean")
    whole = read_refusal("field type conflict")
    assert (whole.partial, whole.dropped, whole.conflict) == (False, None, None)
    retention = read_refusal("partial write: points beyond retention policy dropped=3")
    assert (retention.partial, retention.dropped, retention.conflict) == (True, 3, None)
    unparsed = read_refusal("unable to parse 'cpu,host=a f=': missing field value")
    assert unparsed.line == "cpu,host=a f="
    assert all(r.about_points for r in (v1, v2, whole, retention, unparsed))
    assert read_refusal("anything at all", 422).about_points
    for request_level in ("invalid precision", "organization name is required", "bad request"):
        assert not read_refusal(request_level).about_points


def test_suspects_are_the_points_the_refusal_names():
    batch = Batch()
    for i, fields in enumerate([{"x": 1.0}, {"x": "s"}, {"x": True}, {"y": 1.0}, {"x": 2}]):
        batch.lines.append(f"line{i}")
        batch.sources.append(pt(i, measurement="m", fields=fields))
    conflict = read_refusal('input field "x" on measurement "m" is type float, already exists')
    assert suspects(batch, conflict) == [0, 4]
    assert suspects(batch, read_refusal("unable to parse 'line3': bad")) == [3]
    assert suspects(batch, read_refusal("points beyond retention policy dropped=1")) == []


def test_error_bodies_of_both_apis_and_plain_text():
    assert error_message(b'{"error":"database not found: \\"x\\""}') == 'database not found: "x"'
    assert (
        error_message(b'{"code":"not found","message":"bucket \\"m\\" not found"}')
        == 'bucket "m" not found'
    )
    assert error_message(b"<html>bad gateway</html>") == "<html>bad gateway</html>"
    assert len(error_message(b"x" * 2000)) == 500


_name = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True).filter(
    lambda n: n not in ("time", "host", "role")
)


@given(
    st.lists(
        st.tuples(
            _name,
            st.dictionaries(
                _name,
                st.text(min_size=1, max_size=12).filter(
                    lambda v: "\n" not in v and "\r" not in v and "\\" not in v
                ),
                max_size=3,
            ),
            st.dictionaries(
                _name,
                st.one_of(
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.integers(min_value=-(2**53), max_value=2**53),
                    st.booleans(),
                    st.text(max_size=20).filter(lambda s: "\n" not in s and "\r" not in s),
                ),
                min_size=1,
                max_size=4,
            ),
            st.integers(min_value=-3_600_000, max_value=0),
        ),
        min_size=1,
        max_size=10,
    )
)
@settings(max_examples=150, deadline=None)
def test_what_the_store_writes_is_read_back_by_line_protocol_ingest_as_the_same_points(specs):
    from chalicelib.core.limits import Limits
    from chalicelib.core.line_protocol import parse_line_protocol
    from chalicelib.core.models import InfluxApi

    points = [
        pt(
            i,
            measurement=m,
            tags={k: v for k, v in tags.items() if k not in fields},
            fields=fields,
            time_ms=NOW + dt,
        )
        for i, (m, tags, fields, dt) in enumerate(specs)
    ]
    plan = plan_influx_writes([report(*points)])
    assert plan.rejected == []
    body = b"".join(b.body() for b in plan.batches)
    parsed = parse_line_protocol(
        body, None, precision="ms", api=InfluxApi.V2, limits=Limits(), now_ms=NOW
    )
    assert parsed.rejected == []
    [back] = parsed.reports
    assert back.host == "web-1"
    for original, read in zip(points, back.points, strict=True):
        assert (read.measurement, read.time_ms) == (original.measurement, original.time_ms)
        assert read.tags == {"role": "web", **original.tags}
        assert read.fields == original.fields  # numbers come back as floats of equal value
        for k, v in original.fields.items():
            assert isinstance(read.fields[k], float) or type(read.fields[k]) is type(v)
