"""Nagios plugin output: the description, perfdata as fields in base units, reasons for the rest.

The property at the end sends what any output turns into through the collector's own
validation and Timestream planner: whatever a plugin prints, the event and the point
are accepted whole.
"""

from __future__ import annotations

import json
import math

import pytest
from fleetpulse_agent.checks import (
    FIELD_BYTES,
    Check,
    field_name,
    parse_output,
    parse_perfdata,
    run_result,
)
from fleetpulse_agent.config import valid_name
from fleetpulse_agent.deliver import envelope
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.core.ingest import parse_ingest
from chalicelib.core.limits import Limits
from chalicelib.core.timestream import plan_writes

MB = 2**20
SUFFIXES = (".warn", ".warn_low", ".crit", ".crit_low", ".min", ".max")


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        (
            "load1=0.250;5.000;10.000;0; load5=0.5;4;8;0;",
            {
                "load1": 0.25,
                "load5": 0.5,
                "load1.warn": 5.0,
                "load1.crit": 10.0,
                "load1.min": 0.0,
                "load5.warn": 4.0,
                "load5.crit": 8.0,
                "load5.min": 0.0,
            },
        ),
        (
            "'free space'=10MB;;;0;100",
            {"free_space": 10 * MB, "free_space.min": 0.0, "free_space.max": 100 * MB},
        ),
        ("'it''s here'=1", {"it_s_here": 1.0}),
        ("rta=250ms pl=0%", {"rta": 0.25, "pl": 0.0}),
        ("t=5us", {"t": 5e-6}),
        ("t=3s;1:2;~:4", {"t": 3.0, "t.warn_low": 1.0, "t.warn": 2.0, "t.crit": 4.0}),
        ("t=3;5:", {"t": 3.0, "t.warn_low": 5.0}),
        ("t=3;@1:2;@3", {"t": 3.0}),  # alert-inside ranges are not recorded
        (
            "a=2KB b=3KiB c=1GB d=1TB e=7B",
            {"a": 2048.0, "b": 3072.0, "c": 2.0**30, "d": 2.0**40, "e": 7.0},
        ),
        ("hits=12345c", {"hits": 12345.0}),
        ("temp=21.5C", {"temp": 21.5}),  # a unit outside the guidelines stays as written
        ("x=-1.5e3", {"x": -1500.0}),
        ("/=1B /boot=2B", {"_/": 1.0, "_/boot": 2.0}),
        (
            "time=1s status=2 check=3 type=4 duration=5 ts_x=6",
            {
                "_time": 1.0,
                "_status": 2.0,
                "_check": 3.0,
                "_type": 4.0,
                "_duration": 5.0,
                "_ts_x": 6.0,
            },
        ),
        ("", {}),
    ],
)
def test_perfdata_becomes_fields_in_base_units(text: str, fields: dict[str, float]) -> None:
    found, reasons = parse_perfdata(text)
    assert reasons == []
    assert found == pytest.approx(fields)
    # values come first, thresholds and bounds after every value
    kinds = [k.endswith(SUFFIXES) for k in found]
    assert kinds == sorted(kinds)


@pytest.mark.parametrize(
    ("text", "kept", "reason"),
    [
        ("a=U b=1", {"b": 1.0}, "undetermined"),
        ("a=abc b=1", {"b": 1.0}, "not a number"),
        ("junk b=1", {"b": 1.0}, "expected label=value"),
        ("=5 b=1", {"b": 1.0}, "the label must be"),
        ("b=1 'open=5 c=2", {"b": 1.0}, "not closed"),
        ("'x' =5 b=1", {"b": 1.0}, "expected = after the quoted label"),
        ("a=1;x;2 b=1", {"a": 1.0, "a.crit": 2.0, "b": 1.0}, "range 'x'"),
        ("a=1;;;lo b=1", {"a": 1.0, "b": 1.0}, "min 'lo' is not a number"),
        ("a=1 a=2", {"a": 1.0}, "already taken"),
        ("a.b=1 'a b'=2", {"a.b": 1.0}, None),
        ("a=1 'a.warn'=2 a.x=3", {"a": 1.0, "a.warn": 2.0, "a.x": 3.0}, None),
        ("a=1;5 'a.warn'=2", {"a": 1.0, "a.warn": 5.0}, "already taken"),
        ("a=1e999 b=1", {"b": 1.0}, "out of range"),
        ("a=1,5 b=1", {"b": 1.0}, "',5' is not a unit"),  # a decimal comma
        ("x" * 101 + "=1 b=1", {"b": 1.0}, "the label must be 1 to 100"),
    ],
)
def test_unreadable_perfdata_is_skipped_with_a_reason(
    text: str, kept: dict[str, float], reason: str | None
) -> None:
    found, reasons = parse_perfdata(text)
    for key, value in kept.items():
        assert found[key] == pytest.approx(value)
    if reason is not None:
        assert any(reason in r for r in reasons), reasons


def test_the_description_is_the_first_line_and_perfdata_spans_the_long_output() -> None:
    text = (
        "DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\n"
        "/ 15272 MB (77%);\n"
        "/boot 68 MB (69%);\n"
        "/home 69357 MB (27%);\n"
        "/var/log 819 MB (84%); | /boot=68MB;88;93;0;98\n"
        "/home=69357MB;253404;253409;0;253414\n"
        "/var/log=818MB;970;975;0;980\n"
    )
    description, fields, reasons = parse_output(text)
    assert description == "DISK OK - free space: / 3326 MB (56%);"
    assert reasons == []
    assert fields["_/"] == 2643 * MB
    assert fields["_/boot"] == 68 * MB
    assert fields["_/home"] == 69357 * MB
    assert fields["_/var/log.max"] == 980 * MB
    assert "_/ 15272" not in json.dumps(fields)  # long output lines are text, not perfdata


def test_output_without_perfdata_gives_only_the_description() -> None:
    assert parse_output("PING OK - Packet loss = 0%\n") == ("PING OK - Packet loss = 0%", {}, [])
    assert parse_output("") == ("", {}, [])


def test_a_label_becomes_a_field_name_the_collector_accepts() -> None:
    assert field_name("load1") == "load1"
    assert field_name("/var/log") == "_/var/log"
    assert field_name("température") == "temp_rature"
    assert field_name("1min") == "_1min"
    assert field_name("measure_name") == "_measure_name"


CHECK = Check("disk", ["check_disk"], interval=60, timeout=10)


def test_every_exit_status_has_its_state_and_a_description_that_says_why() -> None:
    cases = [
        (0, b"OK - fine|a=1\n", "ok", "OK - fine"),
        (1, b"WARNING - meh\n", "warning", "WARNING - meh"),
        (2, b"CRITICAL - bad\n", "critical", "CRITICAL - bad"),
        (3, b"UNKNOWN - huh\n", "unknown", "UNKNOWN - huh"),
        (4, b"odd\n", "unknown", "exit status 4: odd"),
        (127, b"", "unknown", "exit status 127: sh: 1: nope: not found"),
        (-9, b"partial|a=1\n", "unknown", "killed by SIGKILL: partial"),
        (0, b"", "ok", "sh: 1: nope: not found"),
    ]
    for code, out, status, description in cases:
        err = b"sh: 1: nope: not found\n" if not out else b""
        event, point, _ = run_result(CHECK, code, out=out, err=err, finished_at=1e9)
        assert (event["status"], event["description"]) == (status, description), code
        assert point["fields"]["status"] == ["ok", "warning", "critical", "unknown"].index(status)
    event, point, _ = run_result(CHECK, None, finished_at=1e9, reason="timed out after 10s")
    assert (event["status"], event["description"]) == ("unknown", "timed out after 10s")
    # a plugin killed part-way wrote perfdata that cannot be trusted
    _, point, _ = run_result(CHECK, -9, out=b"x|a=1\n", finished_at=1e9)
    assert "a" not in point["fields"]


def test_the_event_carries_three_intervals_of_ttl_and_the_point_the_check_tag() -> None:
    event, point, _ = run_result(
        Check("web", ["x"], interval=30, timeout=5), 0, out=b"OK|a=1ms\n", finished_at=1000.5
    )
    assert event == {
        "service": "web",
        "status": "ok",
        "description": "OK",
        "time": 1000500,
        "ttl": 90000,
    }
    assert point == {
        "measurement": "check",
        "time": 1000500,
        "tags": {"check": "web", "type": "exec"},
        "fields": {"status": 0, "duration": 0.0, "a": 0.001},
    }


def test_a_long_description_is_clipped_to_the_event_limit() -> None:
    event, _, _ = run_result(CHECK, 0, out=("é" * 2000).encode(), finished_at=1e9)
    assert len(event["description"].encode()) <= 1024
    assert event["description"].startswith("éé")


def test_a_wide_perfdata_keeps_values_first_and_says_what_was_left_out() -> None:
    out = " ".join(f"mount{i:03d}=1234567MB;2;3;0;4000000" for i in range(120)).encode()
    _, point, reasons = run_result(CHECK, 0, out=b"OK|" + out, finished_at=1e9)
    fields = point["fields"]
    size = sum(len(k) + len(repr(v)) for k, v in fields.items())
    assert size <= FIELD_BYTES
    assert "mount000" in fields
    assert not any(k.endswith(".max") for k in fields)  # bounds come after every value
    assert any("left out" in r for r in reasons)


# ------------------------------------------------------------------ properties

LABEL_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="='")
perfdatum = st.builds(
    lambda label, quoted, value, unit, rest: (
        (f"'{label}'" if quoted else label.replace(" ", "")) + f"={value}{unit}{rest}"
    ),
    st.text(LABEL_CHARS, min_size=0, max_size=20),
    st.booleans(),
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.integers().map(str),
        st.sampled_from(["U", "", "-", "1e999", ".5", "1,5"]),
    ),
    st.sampled_from(["", "s", "ms", "us", "%", "B", "KB", "MB", "GB", "TB", "c", "xyz"]),
    st.text(st.sampled_from("0123456789.:~@;-"), max_size=20),
)
plugin_output = st.one_of(
    st.text(),
    st.lists(perfdatum, max_size=30).map(lambda items: "OK - x | " + " ".join(items)),
    st.lists(st.one_of(st.text(max_size=40), perfdatum), max_size=40).map("\n".join),
)


@settings(max_examples=300, deadline=None)
@given(plugin_output)
def test_any_output_gives_fields_or_reasons_never_an_exception(text: str) -> None:
    description, fields, reasons = parse_output(text)
    assert isinstance(description, str)
    assert all(isinstance(r, str) for r in reasons)
    for name, value in fields.items():
        assert valid_name(name), name
        assert isinstance(value, float)
        assert math.isfinite(value)


@settings(max_examples=200, deadline=None)
@given(
    plugin_output,
    st.one_of(st.integers(-64, 300), st.none()),
    st.text(max_size=300),
    st.floats(1, 86400),
)
def test_whatever_a_plugin_prints_the_collector_and_the_store_accept_it_whole(
    text: str, code: int | None, err: str, interval: float
) -> None:
    check = Check("a" * 128, ["x"], interval=interval, timeout=10)
    event, point, _ = run_result(
        check,
        code,
        out=text.encode("utf-8", "surrogatepass"),
        err=err.encode("utf-8", "surrogatepass"),
        finished_at=1_800_000_000.0,
        duration=0.25,
        reason="timed out after 10s",
    )
    doc = envelope("web-1.example.com", {"role": "web", "env": "prod"}, 60, None)
    doc["events"], doc["points"] = [event], [point]
    parsed = parse_ingest(
        json.dumps(doc, allow_nan=False).encode(),
        "application/json",
        None,
        Limits(),
        1_800_000_000_000,
    )
    assert parsed.rejected == []
    assert (parsed.accepted_points, parsed.accepted_events) == (1, 1)
    assert plan_writes(parsed.reports).rejected == []
