"""Remote write mapping, the learned interval, and the snappy/protobuf front end (pure)."""

from __future__ import annotations

import math

import cramjam
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.core.errors import InvalidPayload, PayloadTooLarge, UnsupportedMediaType
from chalicelib.core.ingest import HOST_RE
from chalicelib.core.limits import Limits
from chalicelib.core.models import AgentInfo
from chalicelib.core.remote_write import (
    Cadence,
    agent_of,
    check_headers,
    decode_write_request,
    decompress,
    encode_write_request,
    host_of_instance,
    map_write_request,
    parse_remote_write,
    split_metric_name,
)

NOW = 1_796_000_000_000
AGENT = AgentInfo("prometheus", "2.45.3")


def parse(series, limits: Limits | None = None, cadence: Cadence | None = None):
    raw = encode_write_request(series)
    return parse_remote_write(
        raw,
        "application/x-protobuf",
        "snappy",
        user_agent="Prometheus/2.45.3",
        limits=limits or Limits(),
        now_ms=NOW,
        cadence=cadence,
    )


@pytest.mark.parametrize(
    ("instance", "host"),
    [
        ("web-1:9100", "web-1"),
        ("web-1", "web-1"),
        ("10.0.0.7:9100", "10.0.0.7"),
        ("[::1]:9100", "::1"),
        ("web-1.example.com:443", "web-1.example.com"),
    ],
)
def test_the_instance_names_the_host_without_its_port(instance, host):
    assert host_of_instance(instance) == host


def test_the_metric_name_is_the_measurement_and_recording_rules_colons_become_dots():
    assert split_metric_name("node_load1") == ("node_load1", "value")
    assert split_metric_name("fleetpulse:memory_used:percent") == (
        "fleetpulse.memory_used.percent",
        "value",
    )


def test_the_sender_is_the_agent():
    assert agent_of("Prometheus/2.42.0") == AgentInfo("prometheus", "2.42.0")
    assert agent_of("curl/8") == AgentInfo("prometheus", "")
    assert agent_of(None) == AgentInfo("prometheus", "")


def test_cadence_learns_the_smallest_latest_spacing_and_follows_a_change():
    c = Cadence()
    assert c.interval_s("web-1") is None
    for t in (0, 15_000, 30_000):
        c.observe("web-1", "a", NOW + t)
    c.observe("web-1", "b", NOW)
    c.observe("web-1", "b", NOW + 45_000)  # a container that missed two scrapes
    assert c.interval_s("web-1") == 15
    for t in (90_000, 150_000):  # the scrape interval became a minute
        c.observe("web-1", "a", NOW + t)
        c.observe("web-1", "b", NOW + t)
    assert c.interval_s("web-1") == 60


def test_cadence_ignores_repeats_and_sub_second_spacing_and_is_bounded():
    c = Cadence(max_hosts=2)
    c.observe("a", "s", NOW)
    c.observe("a", "s", NOW)
    c.observe("a", "s", NOW + 500)
    assert c.interval_s("a") is None
    c.observe("b", "s", NOW)
    c.observe("c", "s", NOW)
    c.observe("a", "s", NOW + 10_000)  # "a" was forgotten: this only primes it again
    assert c.interval_s("a") is None


def test_samples_of_a_write_become_points_with_tags_and_one_report_per_host():
    decoded = parse(
        [
            ({"__name__": "node_load1", "instance": "web-1:9100", "job": "node"}, [(0.5, NOW)]),
            ({"__name__": "node_load1", "instance": "web-2:9100", "job": "node"}, [(1.5, NOW)]),
            ({"__name__": "x", "instance": "web-1:9100", "__meta_y": "z"}, [(2.0, NOW)]),
        ]
    )
    reports = {r.host: r for r in decoded.parsed.reports}
    assert set(reports) == {"web-1", "web-2"}
    web1 = reports["web-1"]
    assert web1.agent == AGENT
    assert [(p.measurement, p.tags, p.fields) for p in web1.points] == [
        ("node_load1", {"job": "node"}, {"value": 0.5}),
        ("x", {}, {"value": 2.0}),
    ]
    assert decoded.silent_hosts == set()


def test_a_repeated_sample_is_harmless_and_a_conflicting_one_is_refused():
    labels = {"__name__": "node_load1", "instance": "web-1:9100"}
    decoded = parse([(labels, [(0.5, NOW), (0.5, NOW), (0.7, NOW)])])
    (report,) = decoded.parsed.reports
    assert [p.fields for p in report.points] == [{"value": 0.5}]
    (rejection,) = decoded.parsed.rejected
    assert rejection.path == "timeseries[0].samples[2]"
    assert "another value at the same time in timeseries[0].samples[0]" in rejection.reason


def test_reserved_and_invalid_names_are_refused_per_series():
    decoded = parse(
        [
            ({"__name__": "event", "instance": "web-1"}, [(1.0, NOW)]),
            ({"__name__": "ok", "instance": "web-1", "time": "x"}, [(1.0, NOW)]),
            ({"__name__": "fine", "instance": "web-1"}, [(1.0, NOW)]),
        ]
    )
    reasons = [r.reason for r in decoded.parsed.rejected]
    assert reasons[0].startswith("timeseries[0].labels.__name__: measurement 'event' is reserved")
    assert reasons[1].startswith("timeseries[1].labels.time: tag name 'time' is reserved")
    assert [p.measurement for p in decoded.parsed.reports[0].points] == ["fine"]


def test_nothing_valid_is_invalid_payload_naming_each_problem():
    with pytest.raises(InvalidPayload) as caught:
        parse([({"__name__": "a"}, [(1.0, NOW)]), ({"instance": "x"}, [(1.0, NOW)])])
    assert [p.path for p in caught.value.details] == [
        "timeseries[0].labels",
        "timeseries[1].labels",
    ]


def test_headers_say_remote_write_1_0_or_415():
    check_headers("application/x-protobuf", "snappy")
    check_headers(None, "SNAPPY")
    check_headers('application/x-protobuf; proto="prometheus.WriteRequest"', "snappy")
    for content_type, encoding in [
        ("application/x-protobuf", None),
        ("text/plain", "snappy"),
        ("application/x-protobuf;proto=io.prometheus.write.v2.Request", "snappy"),
    ]:
        with pytest.raises(UnsupportedMediaType):
            check_headers(content_type, encoding)


def test_the_declared_length_is_checked_before_inflating():
    limits = Limits(max_decompressed_bytes=1000)
    ok = bytes(cramjam.snappy.compress_raw(b"a" * 1000))
    assert decompress(ok, limits) == b"a" * 1000
    with pytest.raises(PayloadTooLarge, match="would decompress to 1001 bytes"):
        decompress(bytes(cramjam.snappy.compress_raw(b"a" * 1001)), limits)
    with pytest.raises(PayloadTooLarge, match="body is 11 bytes"):
        decompress(b"x" * 11, Limits(max_body_bytes=10))
    with pytest.raises(InvalidPayload, match="length header"):
        decompress(b"\xff\xff\xff\xff\xff\xff", limits)


labels = st.dictionaries(
    st.sampled_from(["job", "cpu", "mode", "device", "le", "__meta_x", "time", "a b", "host"]),
    st.text(max_size=8),
    max_size=4,
)
samples = st.lists(
    st.tuples(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=NOW - 3 * 86_400_000, max_value=NOW + 3_600_000),
    ),
    max_size=4,
)
names = st.sampled_from(["node_load1", "up", "a:b_c", "event", "9bad", "x"])


VALID_NAMES = {"node_load1": "node_load1", "up": "up", "a:b_c": "a.b_c", "x": "x"}
VALID_HOSTS = {"web-1:9100": "web-1", "web-2": "web-2"}


def expected_points(series):
    """An oracle: what a correct mapping stores, first value wins at a series and time."""
    out: dict[tuple, float] = {}
    for name, instance, sent_labels, samples_ in series:
        lab = dict(sent_labels)
        if "host" in lab:  # the host label wins; instance is then a tag
            host = lab.pop("host")
            if instance:
                lab["instance"] = instance
            if not HOST_RE.match(host):
                continue
        elif instance in VALID_HOSTS:
            host = VALID_HOSTS[instance]
        else:
            continue
        if name not in VALID_NAMES or "time" in lab or "a b" in lab:
            continue
        tags = tuple(sorted((k, v) for k, v in lab.items() if v and not k.startswith("__")))
        for value, t in samples_:
            if not math.isfinite(value) or not NOW - 86_400_000 + 60_000 <= t <= NOW + 890_000:
                continue
            out.setdefault((host, VALID_NAMES[name], tags, t), value)
    return out


@given(
    st.lists(
        st.tuples(names, st.sampled_from(["web-1:9100", "web-2", "bad host", ""]), labels, samples),
        max_size=6,
    )
)
def test_valid_samples_are_stored_and_nothing_invalid_is(series):
    request = decode_write_request(
        bytes(
            cramjam.snappy.decompress_raw(
                encode_write_request(
                    [
                        ({"__name__": n, **({"instance": i} if i else {}), **lab}, s)
                        for n, i, lab, s in series
                    ]
                )
            )
        )
    )
    expected = expected_points(series)
    try:
        decoded = map_write_request(request, AGENT, limits=Limits(), now_ms=NOW)
    except InvalidPayload:
        assert not expected
        return
    stored = {
        (r.host, p.measurement, tuple(sorted(p.tags.items())), p.time_ms): p.fields["value"]
        for r in decoded.parsed.reports
        for p in r.points
    }
    assert stored == expected


def test_importing_the_app_loads_neither_snappy_nor_protobuf():
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, app; "
        "print(','.join(m for m in ('cramjam', 'google.protobuf') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
