"""Prometheus remote_write 1.0: a snappy-compressed protobuf `WriteRequest` as host reports.

Decoding is the whole front half: the body is snappy's block format (its
declared length is checked against the limits before anything is inflated),
then the protobuf message of the remote-write spec (`prometheus.WriteRequest`,
`TimeSeries`, `Label`, `Sample`). The message classes are built at run time
from a descriptor written out here, so no generated module has to match the
installed protobuf runtime; both libraries are imported on first use only.

Mapping (docs/INGEST.md has it for users):
- the `host` label, or else the `instance` label with its port stripped,
  names the host; labels starting `__` are Prometheus' own and are dropped;
  every other label is a tag;
- the metric name is the measurement and the field is `value`
  (`node_load1{job="node"}` -> measurement `node_load1`, tag job=node, field
  `value`); the `:` of recording-rule names becomes `.`. One series is one
  record: remote write spreads a scrape's series over requests (shards,
  batches), and two series sharing a record could arrive apart and collide
  at the store (one record per series, measure name and time);
- values are stored as sent: counters stay counters. NaN (Prometheus'
  staleness marker included) and infinities carry nothing a store can hold,
  and are skipped, not refused.

Every point goes through `chalicelib.core.ingest.Validator`, so names,
limits and the store's time window are JSON ingest's rules; a sample or
series that breaks one is refused by itself, named by its place in the
request (`timeseries[3].samples[0]`).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.errors import InvalidPayload, PayloadTooLarge, Problem, UnsupportedMediaType
from chalicelib.core.ingest import SECONDS_CUTOFF, ParsedRequest, Validator
from chalicelib.core.limits import Limits
from chalicelib.core.models import AgentInfo, HostReport, Point, Shape

SENDER = "prometheus"
FIELD = "value"
PROTOBUF_MEDIA_TYPE = "application/x-protobuf"
# Remote write 2.0 names its message in the Content-Type; 1.0 names none or this one.
V1_PROTO = "prometheus.WriteRequest"
# Series Prometheus adds for every target itself: they say nothing about the host
# being alive unless `up` is 1.
TARGET_SERIES = frozenset(
    {
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
        "scrape_timeout_seconds",
        "scrape_sample_limit",
        "scrape_body_size_bytes",
    }
)
SNAPPY_FRAMED_MAGIC = b"\xff\x06\x00\x00sNaPpY"
_PORT_RE = re.compile(r"(?:\[(?P<v6>[^\]]*)\]|(?P<name>[^:]*)):\d+\Z")


# ------------------------------------------------------------------ the wire


def check_headers(content_type: str | None, content_encoding: str | None) -> None:
    """Refuse (415) anything but remote write 1.0's snappy protobuf."""
    if content_type:
        media, _, params = content_type.partition(";")
        if media.strip().lower() != PROTOBUF_MEDIA_TYPE:
            raise UnsupportedMediaType(
                f"Content-Type {media.strip()!r} is not supported; remote write sends "
                f"{PROTOBUF_MEDIA_TYPE}"
            )
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "proto" and value.strip().strip('"') != V1_PROTO:
                raise UnsupportedMediaType(
                    f"proto {value.strip()!r} is not supported; this receiver speaks "
                    f"remote write 1.0 ({V1_PROTO})"
                )
    encoding = (content_encoding or "").strip().lower()
    if encoding != "snappy":
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding or 'none'!r} is not supported; remote write sends "
            "snappy (block format)"
        )


def snappy_length(raw: bytes) -> int:
    """The uncompressed length a snappy block declares (its leading varint)."""
    length = 0
    for i, byte in enumerate(raw[:5]):
        length |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return length
    raise InvalidPayload("body is not snappy: its length header is not a valid varint")


def decompress(raw: bytes, limits: Limits) -> bytes:
    """The body un-snappied, refusing a body that is or would become too large (413)."""
    if len(raw) > limits.max_body_bytes:
        raise PayloadTooLarge(
            f"body is {len(raw)} bytes; the limit is {limits.max_body_bytes} bytes "
            "(lower queue_config.max_samples_per_send)"
        )
    if not raw:
        raise InvalidPayload("body is empty: expected a snappy-compressed WriteRequest")
    if raw.startswith(SNAPPY_FRAMED_MAGIC):
        raise InvalidPayload("body is snappy's framed format; remote write uses the block format")
    declared = snappy_length(raw)
    if declared > limits.max_decompressed_bytes:
        raise PayloadTooLarge(
            f"body would decompress to {declared} bytes; the limit is "
            f"{limits.max_decompressed_bytes} bytes (lower queue_config.max_samples_per_send)"
        )
    import cramjam

    try:
        return bytes(cramjam.snappy.decompress_raw(raw))
    except Exception as exc:  # cramjam.DecompressionError, and nothing else is expected
        raise InvalidPayload(f"body is not valid snappy: {exc}") from None


_message_class: Any = None


def write_request_class() -> Any:
    """The `prometheus.WriteRequest` message class (remote write 1.0), built once."""
    global _message_class  # noqa: PLW0603 (one descriptor pool per container)
    if _message_class is None:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        f = descriptor_pb2.FieldDescriptorProto
        proto = descriptor_pb2.FileDescriptorProto(
            name="fleetpulse/prometheus_remote_write.proto",
            package="prometheus",
            syntax="proto3",
        )

        def message(name: str, *fields: tuple[str, int, int, int, str]) -> None:
            m = proto.message_type.add(name=name)
            for field_name, number, kind, label, type_name in fields:
                added = m.field.add(name=field_name, number=number, type=kind, label=label)
                if type_name:
                    added.type_name = type_name

        optional, repeated = f.LABEL_OPTIONAL, f.LABEL_REPEATED
        message(
            "WriteRequest",
            ("timeseries", 1, f.TYPE_MESSAGE, repeated, ".prometheus.TimeSeries"),
        )
        message(
            "TimeSeries",
            ("labels", 1, f.TYPE_MESSAGE, repeated, ".prometheus.Label"),
            ("samples", 2, f.TYPE_MESSAGE, repeated, ".prometheus.Sample"),
        )
        message(
            "Label",
            ("name", 1, f.TYPE_STRING, optional, ""),
            ("value", 2, f.TYPE_STRING, optional, ""),
        )
        message(
            "Sample",
            ("value", 1, f.TYPE_DOUBLE, optional, ""),
            ("timestamp", 2, f.TYPE_INT64, optional, ""),
        )
        pool = descriptor_pool.DescriptorPool()
        pool.Add(proto)
        _message_class = message_factory.GetMessageClass(
            pool.FindMessageTypeByName("prometheus.WriteRequest")
        )
    return _message_class


def decode_write_request(body: bytes) -> Any:
    """The protobuf WriteRequest in `body`; 400 when it is not one.

    Fields the spec adds beyond samples (metadata, exemplars, histograms) are
    left unread: protobuf skips fields a message does not declare.
    """
    from google.protobuf.message import DecodeError

    request = write_request_class()()
    try:
        request.ParseFromString(body)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise InvalidPayload(f"body is not a remote-write WriteRequest (protobuf): {exc}") from None
    return request


def encode_write_request(series: list[tuple[dict[str, str], list[tuple[float, int]]]]) -> bytes:
    """A snappy-compressed WriteRequest of (labels, [(value, timestamp ms)]): for tests, benches."""
    import cramjam

    request = write_request_class()()
    for labels, samples in series:
        ts = request.timeseries.add()
        for name, text in labels.items():
            ts.labels.add(name=name, value=text)
        for value, timestamp in samples:
            ts.samples.add(value=value, timestamp=timestamp)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


# ---------------------------------------------------------------- the mapping


def split_metric_name(name: str) -> tuple[str, str]:
    """(measurement, field) of a metric name: the name (`:` as `.`), and `value`."""
    return name.replace(":", "."), FIELD


def host_of_instance(instance: str) -> str:
    """`instance` without its port: `web-1:9100` -> `web-1`, `[::1]:9100` -> `::1`."""
    m = _PORT_RE.match(instance)
    if m is None:
        return instance
    return m.group("v6") if m.group("v6") is not None else m.group("name")


def agent_of(user_agent: str | None) -> AgentInfo:
    """The sender as the host's agent: `Prometheus/2.45.3` -> ("prometheus", "2.45.3")."""
    name, _, version = (user_agent or "").partition("/")
    if name.strip().lower() != SENDER:
        return AgentInfo(SENDER, "")
    return AgentInfo(SENDER, version.split()[0][:64] if version.split() else "")


class Cadence:
    """Each host's sampling interval, learned from the spacing of its series' samples.

    A Lambda container sees a host's series at every scrape, or at every few
    when several containers share the traffic: each spacing it measures is the
    scrape interval or a multiple of it, never less (one sender). The host's
    interval is the smallest latest spacing among a few of its series, so it
    follows a changed scrape interval within a scrape and can only err long,
    which delays a page but never raises a false one. Bounded: the oldest
    hosts are forgotten first.
    """

    def __init__(self, max_hosts: int = 10_000, series_per_host: int = 4) -> None:
        self.max_hosts = max_hosts
        self.series_per_host = series_per_host
        # host -> series key -> (newest sample ms, latest spacing ms or 0)
        self._hosts: OrderedDict[str, dict[str, tuple[int, int]]] = OrderedDict()

    def observe(self, host: str, key: str, time_ms: int) -> None:
        series = self._hosts.get(host)
        if series is None:
            series = self._hosts[host] = {}
            if len(self._hosts) > self.max_hosts:
                self._hosts.popitem(last=False)
        else:
            self._hosts.move_to_end(host)
        known = series.get(key)
        if known is None:
            if len(series) < self.series_per_host:
                series[key] = (time_ms, 0)
            return
        last_ms, _gap = known
        if time_ms > last_ms:
            series[key] = (time_ms, time_ms - last_ms)

    def interval_s(self, host: str) -> int | None:
        """The learned interval in whole seconds (1..86400), or None when not known yet."""
        gaps = [gap for _, gap in self._hosts.get(host, {}).values() if gap >= 1000]
        if not gaps:
            return None
        return min(max(round(min(gaps) / 1000), 1), 86_400)


@dataclass(slots=True)
class RemoteWrite:
    """A decoded write: the validated reports, and the hosts it does not count as heard."""

    parsed: ParsedRequest
    samples: int
    skipped: int  # NaN and infinite samples
    silent_hosts: set[str] = field(default_factory=set)


def parse_remote_write(
    raw: bytes,
    content_type: str | None,
    content_encoding: str | None,
    *,
    user_agent: str | None,
    limits: Limits,
    now_ms: int,
    cadence: Cadence | None = None,
) -> RemoteWrite:
    """The whole front half of a remote write: headers, snappy, protobuf, mapping, validation."""
    check_headers(content_type, content_encoding)
    request = decode_write_request(decompress(raw, limits))
    return map_write_request(
        request, agent_of(user_agent), limits=limits, now_ms=now_ms, cadence=cadence
    )


def map_write_request(
    request: Any,
    agent: AgentInfo,
    *,
    limits: Limits,
    now_ms: int,
    cadence: Cadence | None = None,
) -> RemoteWrite:
    """Validated host reports from a decoded WriteRequest (see the module docstring)."""
    series_list = request.timeseries
    n_samples = sum(len(ts.samples) for ts in series_list)
    if n_samples > limits.max_points:
        raise PayloadTooLarge(
            f"{n_samples} samples in one request; the limit is {limits.max_points} "
            "(lower queue_config.max_samples_per_send)"
        )
    v = Validator(limits, now_ms)
    oldest, newest = v.oldest_ms, v.newest_ms
    known_tag_keys = v.tag_keys.ok
    max_tags = limits.max_tags
    short_value = limits.max_tag_value_bytes // 4  # any such string fits in bytes too
    # One point per series and time: (host, measurement, tags, time) -> (value, index, path).
    points: dict[
        tuple[str, str, tuple[tuple[str, str], ...], int], tuple[float, int, str, dict[str, str]]
    ] = {}
    hosts: dict[tuple[str, str], str | None] = {}  # (label, value) -> host, None: invalid
    heard: set[str] = set()
    skipped = 0
    for i, ts in enumerate(series_list):
        labels = {label.name: label.value for label in ts.labels}
        name = labels.pop("__name__", "")
        host_label = "host" if "host" in labels else "instance"
        raw_host = labels.pop(host_label, None)
        if not name or raw_host is None:
            path = f"timeseries[{i}]"
            problems = []
            if not name:
                problems.append(
                    Problem(f"{path}.labels", "no __name__ label: the series has no name")
                )
            if raw_host is None:
                problems.append(
                    Problem(f"{path}.labels", "no instance or host label: nothing names the host")
                )
            v.refuse(i, path, problems)
            continue
        host = hosts.get((host_label, raw_host), "")
        if host == "":
            candidate = raw_host if host_label == "host" else host_of_instance(raw_host)
            _, problem = v.host(candidate, f"timeseries[{i}].labels.{host_label}")
            host = hosts[host_label, raw_host] = candidate if problem is None else None
        if host is None:
            path = f"timeseries[{i}]"
            _, problem = v.host(
                raw_host if host_label == "host" else host_of_instance(raw_host),
                f"{path}.labels.{host_label}",
            )
            v.refuse(i, path, [problem] if problem else [])
            continue
        measurement = name.replace(":", ".") if ":" in name else name
        problems = []
        if measurement not in v.measurements.ok:
            msg = v.measurements.problem(measurement, "measurement")
            if msg:
                problems.append(Problem(f"timeseries[{i}].labels.__name__", msg))
        if labels:
            tags = labels
            if "__" in "".join(k[:2] for k in labels):  # Prometheus' own labels
                tags = {k: val for k, val in labels.items() if not k.startswith("__")}
            values = tags.values()
            if (
                len(tags) > max_tags
                or not known_tag_keys.issuperset(tags)
                or "" in values
                or (values and max(map(len, values)) > short_value)
            ):
                tags = v.tag_map(tags, f"timeseries[{i}].labels", problems)
            if FIELD in tags:
                problems.append(
                    Problem(
                        f"timeseries[{i}].labels.{FIELD}",
                        f"a label may not be named {FIELD!r} (the field every sample is stored in)",
                    )
                )
        else:
            tags = labels
        if problems:
            v.refuse(i, f"timeseries[{i}]", problems)
            continue
        tag_key = tuple(sorted(tags.items()))
        target = name in TARGET_SERIES
        for j, sample in enumerate(ts.samples):
            value = sample.value
            if value - value != 0.0:  # NaN or infinite
                skipped += 1
                continue
            t = sample.timestamp
            if not oldest <= t <= newest:
                spath = f"timeseries[{i}].samples[{j}]"
                if t < SECONDS_CUTOFF:
                    v.refuse(
                        i,
                        spath,
                        [Problem(f"{spath}.timestamp", f"timestamp {t} is not epoch milliseconds")],
                    )
                else:
                    v.out_of_window(i, spath, t)
                continue
            if not target or (name == "up" and value == 1):
                heard.add(host)
            key = (host, measurement, tag_key, t)
            known = points.get(key)
            if known is None:
                points[key] = (value, i, f"timeseries[{i}].samples[{j}]", tags)
            elif known[0] != value:
                spath = f"timeseries[{i}].samples[{j}]"
                v.refuse(
                    i,
                    spath,
                    [Problem(spath, f"{name} has another value at the same time in {known[2]}")],
                )
    reports: dict[str, HostReport] = {}
    for (host, measurement, tag_key, t), (value, index, path, tags) in points.items():
        report = reports.get(host)
        if report is None:
            report = reports[host] = HostReport(host=host, agent=agent)
        report.points.append(Point(measurement, t, tags, {FIELD: value}, index, path, numeric=True))
        if cadence is not None:
            cadence.observe(host, f"{measurement}|{tag_key}", t)
    if cadence is not None:
        for host, report in reports.items():
            report.interval_s = cadence.interval_s(host)
    if not reports and v.invalid:
        raise InvalidPayload("no valid sample in the request", v.invalid)
    return RemoteWrite(
        parsed=ParsedRequest(
            shape=Shape.REMOTE_WRITE, reports=list(reports.values()), rejected=v.rejected
        ),
        samples=n_samples,
        skipped=skipped,
        silent_hosts=set(reports) - heard,
    )
