"""Line protocol in: InfluxDB's documented syntax and escaping, the same validation as JSON."""

from __future__ import annotations

import gzip
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.core.errors import IngestError, InvalidPayload, PayloadTooLarge
from chalicelib.core.ingest import validate
from chalicelib.core.limits import Limits
from chalicelib.core.line_protocol import (
    InfluxApi,
    Line,
    LineError,
    _parse_escaped,
    _parse_plain,
    format_line,
    logical_lines,
    parse_line,
    parse_line_protocol,
    unwritable,
)
from chalicelib.core.models import Shape

NOW = 1_795_000_000_000  # epoch ms
NOW_NS = NOW * 1_000_000
LIMITS = Limits()


def lp(body: str | bytes, precision: str | None = "ms", api: InfluxApi = InfluxApi.V2, **kw):
    raw = body.encode() if isinstance(body, str) else body
    return parse_line_protocol(
        raw,
        kw.pop("encoding", None),
        precision=precision,
        api=api,
        limits=kw.pop("limits", LIMITS),
        now_ms=NOW,
    )


def reasons(parsed) -> list[str]:
    return [r.reason for r in parsed.rejected]


# ------------------------------------------------ the documentation's examples


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Elements of line protocol
        (
            'myMeasurement,tag1=value1,tag2=value2 fieldKey="fieldValue" 1556813561098000000',
            Line(
                "myMeasurement",
                {"tag1": "value1", "tag2": "value2"},
                {"fieldKey": "fieldValue"},
                1556813561098000000,
            ),
        ),
        # Special characters: measurement name with spaces
        (
            'my\\ Measurement fieldKey="string value"',
            Line("my Measurement", {}, {"fieldKey": "string value"}, None),
        ),
        # double quotes in a string field value
        (
            'myMeasurement fieldKey="\\"string\\" within a string"',
            Line("myMeasurement", {}, {"fieldKey": '"string" within a string'}, None),
        ),
        # tag keys and values with spaces
        (
            "myMeasurement,tag\\ Key1=tag\\ Value1,tag\\ Key2=tag\\ Value2 fieldKey=100",
            Line(
                "myMeasurement",
                {"tag Key1": "tag Value1", "tag Key2": "tag Value2"},
                {"fieldKey": 100.0},
                None,
            ),
        ),
        # emojis
        (
            'myMeasurement,tagKey=🍭 fieldKey="Launch 🚀" 1556813561098000000',
            Line("myMeasurement", {"tagKey": "🍭"}, {"fieldKey": "Launch 🚀"}, 1556813561098000000),
        ),
        # commas in a measurement, equals signs in tag keys and values and field keys
        ("cpu\\,01,host=a f=1", Line("cpu,01", {"host": "a"}, {"f": 1.0}, None)),
        (
            "m,tag\\=key=tag\\=value field\\=key=1",
            Line("m", {"tag=key": "tag=value"}, {"field=key": 1.0}, None),
        ),
        # commas, spaces and equals signs inside a quoted string need no escaping
        ('m f="a, b c=d"', Line("m", {}, {"f": "a, b c=d"}, None)),
        # an equals sign needs no escape in a measurement; quotes in names are literal
        ("a=b,t='x' f=1", Line("a=b", {"t": "'x'"}, {"f": 1.0}, None)),
    ],
)
def test_documented_escaping_examples(text, expected):
    assert parse_line(text) == expected


@pytest.mark.parametrize(
    ("written", "read"),
    # "Escaping backslashes": with two contiguous backslashes, the first is an escape
    [
        ("\\", "\\"),
        ("\\\\", "\\"),
        ("\\\\\\", "\\\\"),
        ("\\\\\\\\", "\\\\"),
        ("\\\\\\\\\\", "\\\\\\"),
        ("\\\\\\\\\\\\", "\\\\\\"),
    ],
)
def test_backslashes_in_string_fields_and_tag_values_follow_the_documented_table(written, read):
    assert parse_line(f'm f="a{written}b"').fields == {"f": f"a{read}b"}
    assert parse_line(f"m,t=a{written}b f=1").tags == {"t": f"a{read}b"}


@pytest.mark.parametrize(
    ("token", "value"),
    [
        ("1.0", 1.0),
        ("1", 1.0),
        ("-1.234456e+78", -1.234456e78),
        ("1e10", 1e10),
        (".5", 0.5),
        ("1i", 1),
        ("12485903i", 12485903),
        ("-12485903i", -12485903),
        ("-9223372036854775808i", -(2**63)),
        ("9223372036854775807i", 2**63 - 1),
        ("1u", 1),
        ("12485903u", 12485903),
        ("18446744073709551615u", float(2**64 - 1)),
        *((b, True) for b in ("t", "T", "true", "True", "TRUE")),
        *((b, False) for b in ("f", "F", "false", "False", "FALSE")),
        ('"this is a string"', "this is a string"),
        ('""', ""),
    ],
)
def test_field_value_types(token, value):
    [(_, got)] = parse_line(f"m f={token}").fields.items()
    assert got == value
    assert type(got) is type(value)


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("m", 2, "missing fields"),
        ("m f", 4, "missing '=' after field key"),
        ("m f=", 5, "missing value for field"),
        ("m,t f=1", 4, "missing '=' after tag key"),
        ("m,t= f=1", 5, "missing value for tag"),
        ("m,=a f=1", 3, "missing tag key"),
        ("m,t=a=b f=1", 6, "unescaped '='"),
        ("m,a=1,a=2 f=1", 7, "duplicate tag"),
        (",t=a f=1", 1, "missing measurement"),
        ("m =1", 3, "missing field key"),
        ("m f=abc", 5, "invalid field value 'abc'"),
        ("m f=NaN", 5, "invalid field value"),
        ("m f=+1", 5, "invalid field value"),
        ("m f=1i9", 5, "invalid field value"),
        ("m f=9223372036854775808i", 5, "out of the int64 range"),
        ("m f=18446744073709551616u", 5, "out of the uint64 range"),
        ("m f=-1u", 5, "invalid field value"),
        ("m f=1e999", 5, "out of range"),
        ('m f="abc', 5, "no closing double quote"),
        ('m f="a"b', 8, "expected ',' or a space"),
        ("m f=1 12x", 7, "invalid timestamp"),
        ("m f=1 1.5", 7, "invalid timestamp"),
        ("m f=1 1 2", 9, "unexpected text after the timestamp"),
        ("m f=1 99999999999999999999", 7, "out of the int64 range"),
    ],
)
def test_errors_name_the_column(text, column, fragment):
    with pytest.raises(LineError) as caught:
        parse_line(text)
    assert caught.value.column == column
    assert fragment in caught.value.message


def test_comments_blank_lines_whitespace_and_crlf():
    body = "# a comment\r\n\r\n   \n  # indented comment\ncpu,host=a f=1 1\r\ncpu,host=a f=2 2   \n\tcpu,host=a f=3\n"
    assert list(logical_lines(body)) == [
        (5, "cpu,host=a f=1 1"),
        (6, "cpu,host=a f=2 2   "),
        (7, "\tcpu,host=a f=3"),
    ]
    assert [parse_line(line).fields["f"] for _, line in logical_lines(body)] == [1.0, 2.0, 3.0]


def test_a_string_may_span_lines_and_an_unclosed_one_does_not_swallow_the_rest():
    body = 'm,host=a s="one\ntwo" 1\nm,host=a f=1 2\nm,host=a s="open 3\nm,host=a f=2 4\n'
    assert list(logical_lines(body)) == [
        (1, 'm,host=a s="one\ntwo" 1'),
        (3, "m,host=a f=1 2"),
        (4, 'm,host=a s="open 3'),
        (5, "m,host=a f=2 4"),
    ]
    parsed = lp(
        body.replace(" 1\n", f" {NOW}\n").replace(" 2\n", f" {NOW}\n").replace(" 4\n", f" {NOW}\n")
    )
    [report] = parsed.reports
    assert [p.fields for p in report.points] == [{"s": "one\ntwo"}, {"f": 1.0}, {"f": 2.0}]
    assert reasons(parsed) == ["line 4, column 12: string field value has no closing double quote"]


# ------------------------------------------ parse_line_protocol: whole bodies


def test_lines_become_host_reports_grouped_by_the_host_tag():
    body = (
        f"cpu,host=web-1,cpu=total user=3.2,system=1.1,idle=95.7 {NOW}\n"
        f"mem,host=web-2 used_percent=41i {NOW}\n"
        f"disk,host=web-1,mount=/ used_percent=70.5 {NOW - 1000}\n"
    )
    parsed = lp(body)
    assert parsed.shape is Shape.LINE_PROTOCOL
    assert parsed.rejected == []
    web1, web2 = parsed.reports
    assert (web1.host, web2.host) == ("web-1", "web-2")
    cpu, disk = web1.points
    assert (cpu.measurement, cpu.tags, cpu.time_ms) == ("cpu", {"cpu": "total"}, NOW)
    assert cpu.fields == {"user": 3.2, "system": 1.1, "idle": 95.7}
    assert cpu.numeric
    assert (cpu.index, cpu.path) == (0, "line 1")
    assert disk.tags == {"mount": "/"}
    assert (disk.path, disk.time_ms) == ("line 3", NOW - 1000)
    assert web2.points[0].fields == {"used_percent": 41}
    assert web1.tags == {}  # the host tag is the report's host, not a point tag


def test_the_same_points_as_json_give_the_same_reports():
    points = [
        {
            "measurement": "cpu",
            "time": NOW,
            "tags": {"cpu": "total"},
            "fields": {"user": 3.5, "n": 4},
        },
        {"measurement": "svc", "time": NOW - 5, "tags": {}, "fields": {"up": True, "state": "ok"}},
    ]
    from_json = validate({"host": "web-1", "points": points}, LIMITS, NOW)
    from_lp = lp(
        f'cpu,host=web-1,cpu=total user=3.5,n=4i {NOW}\nsvc,host=web-1 up=t,state="ok" {NOW - 5}\n'
    )
    strip = [
        (p.measurement, p.time_ms, p.tags, p.fields, p.numeric) for p in from_json.reports[0].points
    ]
    assert strip == [
        (p.measurement, p.time_ms, p.tags, p.fields, p.numeric) for p in from_lp.reports[0].points
    ]


def test_a_line_without_host_tag_is_refused_by_line_number():
    parsed = lp(f"cpu,host=a f=1 {NOW}\ncpu,role=web f=1 {NOW}\n")
    assert reasons(parsed) == ["line 2: no host tag: every line needs host=<name> as a tag"]
    assert [r.host for r in parsed.reports] == ["a"]


def test_bad_lines_are_refused_with_line_and_column_and_the_good_ones_kept():
    body = "\n".join(
        [
            f"cpu,host=a f=1 {NOW}",
            f"cpu,host=a f=oops {NOW}",
            f"cpu,host=a f=1 {NOW}x",
            f'event,host=a status="ok" {NOW}',
            f"cpu,host=a time=1 {NOW}",
            f"cpu,host=bad/host f=1 {NOW}",
            f"cpu,host=a f=1 {NOW - 48 * 3600 * 1000}",
            f"cpu,host=a,f=x f=1 {NOW}",
            f"cpu,host=a f=2 {NOW}",
        ]
    )
    parsed = lp(body)
    assert [p.path for p in parsed.reports[0].points] == ["line 1", "line 9"]
    got = reasons(parsed)
    assert got[0].startswith("line 2, column 14: invalid field value 'oops'")
    assert got[1].startswith("line 3, column 16: invalid timestamp")
    assert (
        got[2] == "line 4.measurement: measurement 'event' is reserved for fleetpulse's own events"
    )
    assert got[3] == "line 5.fields.time: field name 'time' is reserved by the metric store"
    assert got[4].startswith("line 6.tags.host: host 'bad/host' may only hold")
    assert got[5].startswith("line 7.time: 48.0 h old")
    assert got[6] == "line 8.fields.f: field 'f' has the same name as a tag"
    assert [r.index for r in parsed.rejected] == [1, 2, 3, 4, 5, 6, 7]


def test_nothing_valid_is_refused_whole_naming_the_first_line_and_column():
    with pytest.raises(InvalidPayload) as caught:
        lp("cpu,host=a\ncpu,host=a f=\n")
    assert caught.value.error == "unable to parse: line 1, column 11: missing fields"
    assert [p.path for p in caught.value.details] == ["line 1, column 11", "line 2, column 14"]


def test_empty_and_comment_only_bodies_hold_nothing():
    parsed = lp("# nothing\n\n")
    assert (parsed.reports, parsed.rejected) == ([], [])


@pytest.mark.parametrize(
    ("api", "precision", "stamp", "ms"),
    [
        (InfluxApi.V2, None, NOW_NS + 999_999, NOW),  # default ns; sub-ms is truncated
        (InfluxApi.V2, "ns", NOW_NS, NOW),
        (InfluxApi.V2, "us", NOW * 1000 + 999, NOW),
        (InfluxApi.V2, "ms", NOW, NOW),
        (InfluxApi.V2, "s", NOW // 1000, NOW // 1000 * 1000),
        (InfluxApi.V1, "n", NOW_NS, NOW),
        (InfluxApi.V1, "u", NOW * 1000, NOW),
        (InfluxApi.V1, "ms", NOW, NOW),
        (InfluxApi.V1, "s", NOW // 1000, NOW // 1000 * 1000),
        (InfluxApi.V1, "m", NOW // 60_000, NOW // 60_000 * 60_000),
        (InfluxApi.V1, "h", NOW // 3_600_000, NOW // 3_600_000 * 3_600_000),
    ],
)
def test_precision_is_honoured_and_converted_to_ms(api, precision, stamp, ms):
    limits = Limits(
        future_window=LIMITS.future_window, memory_retention=LIMITS.memory_retention * 3
    )
    parsed = lp(f"cpu,host=a f=1 {stamp}", precision, api, limits=limits)
    assert parsed.rejected == []
    assert parsed.reports[0].points[0].time_ms == ms


def test_missing_timestamp_means_now_and_unknown_precision_is_refused():
    assert lp("cpu,host=a f=1").reports[0].points[0].time_ms == NOW
    with pytest.raises(InvalidPayload, match="precision 'm' is not one of ns, us, ms, s"):
        lp("cpu,host=a f=1", "m", InfluxApi.V2)
    with pytest.raises(InvalidPayload, match="precision 'x'"):
        lp("cpu,host=a f=1", "x", InfluxApi.V1)


def test_a_precision_mismatch_is_explained():
    parsed = lp(f"cpu,host=a f=1 {NOW // 1000}\ncpu,host=a f=1 {NOW_NS}", None)
    assert reasons(parsed) == [
        f"line 1.time: timestamp {NOW // 1000} at precision=ns is before 1973: send the precision "
        "the timestamps are in",
    ]
    assert parsed.accepted_points == 1
    with pytest.raises(InvalidPayload, match="at precision=ns is before 1973"):
        lp(f"cpu,host=a f=1 {NOW}", None)


def test_limits_apply_as_for_json():
    limits = Limits(max_points=2, max_hosts=1, max_tags=2, max_fields=2)
    with pytest.raises(PayloadTooLarge, match="3 lines in one request; the limit is 2"):
        lp(f"c,host=a f=1 {NOW}\n" * 3, limits=limits)
    with pytest.raises(PayloadTooLarge, match="2 hosts in one request"):
        lp(f"c,host=a f=1 {NOW}\nc,host=b f=1 {NOW}\n", limits=limits)
    parsed = lp(
        f"c,host=a,x=1,y=2,z=3 f=1 {NOW}\nc,host=a f=1,g=2,h=3 {NOW}\nc,host=a f=1 {NOW}\n",
        limits=Limits(max_tags=2, max_fields=2),
    )
    assert [r.reason for r in parsed.rejected] == [
        "line 1.tags: 3 tags; at most 2 are allowed",
        "line 2.fields: 3 fields; at most 2 are allowed",
    ]


def test_gzip_bodies_and_their_limits():
    body = f"cpu,host=a f=1 {NOW}\n".encode()
    assert lp(gzip.compress(body), encoding="gzip").accepted_points == 1
    bomb = gzip.compress(b"#" * (LIMITS.max_decompressed_bytes + 1))
    with pytest.raises(PayloadTooLarge):
        lp(bomb, encoding="gzip")


def test_only_the_lines_that_are_not_utf8_are_refused():
    body = (
        f"cpu,host=a f=1 {NOW}\n".encode()
        + b'cpu,host=a s="\xff" 1\n'
        + f"cpu,host=a f=2 {NOW}\n".encode()
    )
    parsed = lp(body)
    assert [p.fields["f"] for p in parsed.reports[0].points] == [1.0, 2.0]
    assert reasons(parsed) == ["line 2: line is not valid UTF-8"]


# ------------------------------------------------------------------ properties

_bits = st.lists(
    st.sampled_from(["a", "b1", "é", "x.y", "1", "-", "_", "\t", "="]), max_size=3
).map("".join)
_tokens = st.sampled_from(
    [
        *("1", "1.5", "-2", ".5", "1.", "1e5", "1e999", "1i", "-3i", "9223372036854775808i"),
        *("1u", "t", "FALSE", "x", "", "1.5.5", "٣", "+1", "nan", "inf", "1_0"),
    ]
)
_lines = st.builds(
    lambda m, tags, fields, stamp: (
        m
        + "".join(f",{k}={v}" for k, v in tags)
        + " "
        + ",".join(f"{k}={v}" for k, v in fields)
        + stamp
    ),
    _bits,
    st.lists(st.tuples(_bits, _bits), max_size=3),
    st.lists(st.tuples(_bits, _tokens), min_size=1, max_size=4),
    st.sampled_from(["", " 123", " -5", " 1.5", " ", " 99999999999999999999", "  7"]),
)


@given(_lines)
@settings(max_examples=500, deadline=None)
def test_the_fast_path_reads_exactly_what_the_escaping_parser_reads(text):
    fast = _parse_plain(text)
    try:
        careful: Line | None = _parse_escaped(text)
    except LineError:
        careful = None
    if fast is not None:
        assert repr(fast) == repr(careful)  # repr: 1 and 1.0 must not pass for each other


_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_./-]{0,15}", fullmatch=True)
_tag_values = st.text(min_size=1, max_size=20).filter(
    lambda v: unwritable(v, "v", name=False) is None
)
_strings = st.text(max_size=30).filter(lambda s: "\n" not in s and "\r" not in s)
_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.booleans(),
    _strings,
)


@given(
    measurement=st.text(min_size=1, max_size=20).filter(
        lambda m: unwritable(m, "measurement") is None
    ),
    tags=st.dictionaries(
        st.text(min_size=1, max_size=10).filter(lambda k: unwritable(k, "k") is None),
        _tag_values,
        max_size=4,
    ),
    fields=st.dictionaries(
        st.text(min_size=1, max_size=10).filter(lambda k: unwritable(k, "k") is None),
        _values,
        min_size=1,
        max_size=5,
    ),
    time_ms=st.integers(min_value=0, max_value=2**62),
)
@settings(max_examples=300, deadline=None)
def test_what_is_written_reads_back_the_same(measurement, tags, fields, time_ms):
    line = parse_line(format_line(measurement, tags, fields, time_ms))
    assert line.measurement == measurement
    assert line.tags == tags
    assert line.timestamp == time_ms
    assert line.fields.keys() == fields.keys()
    for k, v in fields.items():
        got = line.fields[k]
        if isinstance(v, bool | str):
            assert got == v
            assert type(got) is type(v)
        else:  # every number is written as a float (the type rule)
            assert type(got) is float
            assert got == v or math.isclose(got, v)


@given(
    raw=st.binary(max_size=300)
    | st.lists(st.sampled_from([*'cpu,host=a f1"\\ \n\r#ité', str(NOW), "i"]), max_size=60).map(
        lambda parts: "".join(parts).encode()
    ),
    precision=st.sampled_from([None, "ns", "ms", "s", "h", "bogus"]),
    api=st.sampled_from(list(InfluxApi)),
)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_bytes_are_read_or_refused_with_a_4xx(raw, precision, api):
    try:
        parsed = lp(raw, precision, api)
    except IngestError as exc:
        status = exc.status
        parsed = None
    else:
        status = None
    if parsed is None:
        assert status is not None
        assert 400 <= status < 500
        return
    for report in parsed.reports:
        for p in report.points:
            assert p.path.startswith("line ")
            json.dumps(p.fields)
