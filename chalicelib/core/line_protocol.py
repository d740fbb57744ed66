"""InfluxDB line protocol: read it at ingest, write it for the InfluxDB store.

Reading turns a body into the same validated `HostReport`s a JSON post
gives: each line is one point, its `host` tag names the host, and every
point goes through `chalicelib.core.ingest.Validator`, so names, reserved
names, limits, finite numbers and the time window are the same rules. A
line that cannot be read is refused with its line and column; the others
go through (InfluxDB's partial-write behaviour).

Escaping follows the line protocol reference: in measurements a backslash
escapes a comma or a space, in tag keys, tag values and field keys also an
equals sign, and in string field values a double quote or a backslash; a
doubled backslash is one backslash; any other backslash is literal. A
string field may span lines (InfluxDB 1.x and 2.x accept a raw newline
inside quotes, and some clients send one).

Writing produces only text that every InfluxDB version reads the same way:
what cannot be written unambiguously (a line break in a name or tag value,
a backslash before a character that would be read as an escape) is refused
by `unwritable`, never altered silently.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

from chalicelib.core.errors import InvalidPayload, PayloadTooLarge, Problem
from chalicelib.core.ingest import (
    INT64_MAX,
    INT64_MIN,
    SECONDS_CUTOFF,
    ParsedRequest,
    Validator,
    decode_body,
)
from chalicelib.core.limits import Limits
from chalicelib.core.models import FieldValue, HostReport, InfluxApi, Shape
from chalicelib.core.text import NAME_SHOWN, clip

UINT64_MAX = 2**64 - 1
# Integers up to 2**53 are exact as floats; beyond it a float is the nearest one.
FLOAT_EXACT_INT = 2**53
# InfluxDB's own limits: a key (measurement plus tag set) and a string value are
# at most 64 KB.
MAX_KEY_BYTES = 65_535
MAX_STRING_BYTES = 65_535
# Tag and field keys InfluxDB keeps for itself (`time` in 1.x, the `_` columns in 2.x).
RESERVED_KEYS = frozenset({"time", "_field", "_measurement", "_start", "_stop", "_time", "_value"})


# Timestamp precision names each API accepts, as (multiply, divide) to reach milliseconds.
_NS = (1, 1_000_000)
_US = (1, 1_000)
_MS = (1, 1)
_S = (1_000, 1)
PRECISIONS: dict[InfluxApi, dict[str, tuple[int, int]]] = {
    InfluxApi.V2: {"ns": _NS, "us": _US, "ms": _MS, "s": _S},
    InfluxApi.V1: {
        "n": _NS,
        "ns": _NS,
        "u": _US,
        "us": _US,
        "ms": _MS,
        "s": _S,
        "m": (60_000, 1),
        "h": (3_600_000, 1),
    },
}


def precision_to_ms(precision: str | None, api: InfluxApi) -> tuple[int, int]:
    """(multiply, divide) that turn a timestamp at `precision` into ms; default is ns."""
    if not precision:
        return _NS
    factors = PRECISIONS[api].get(precision)
    if factors is None:
        allowed = ", ".join(PRECISIONS[api])
        raise InvalidPayload(f"precision {precision!r} is not one of {allowed}")
    return factors


# ---------------------------------------------------------------------- reading


class LineError(ValueError):
    """A line that is not line protocol; `column` is 1-based, in characters."""

    def __init__(self, column: int, message: str) -> None:
        super().__init__(f"column {column}: {message}")
        self.column = column
        self.message = message


@dataclass(slots=True)
class Line:
    """One line as written: names unescaped, values typed, timestamp not yet converted."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    timestamp: int | None


_INT_RE = re.compile(r"-?[0-9]+\Z")
_UINT_RE = re.compile(r"[0-9]+\Z")
_FLOAT = r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_FLOAT_RE = re.compile(_FLOAT + r"\Z")
# A field set of plain float values only (the common case), checked in one match.
_FLOAT_FIELDS_RE = re.compile(rf'[^,="\\]+={_FLOAT}(?:,[^,="\\]+={_FLOAT})*\Z')
_BOOLEANS = {
    "t": True,
    "T": True,
    "true": True,
    "True": True,
    "TRUE": True,
    "f": False,
    "F": False,
    "false": False,
    "False": False,
    "FALSE": False,
}
_ESCAPABLE = frozenset("\\ ,=")


def field_value(token: str) -> FieldValue:
    """An unquoted field value: float (`1.5`, `1`), integer (`1i`), unsigned (`1u`), boolean.

    Raises ValueError naming what is wrong. An unsigned value above the int64
    range becomes the nearest float (every number is stored as a float).
    """
    last = token[-1]
    if last == "i":
        digits = token[:-1]
        if _INT_RE.match(digits):
            n = int(digits)
            if INT64_MIN <= n <= INT64_MAX:
                return n
            raise ValueError(f"integer {token} is out of the int64 range")
    elif last == "u":
        digits = token[:-1]
        if _UINT_RE.match(digits):
            n = int(digits)
            if n <= INT64_MAX:
                return n
            if n <= UINT64_MAX:
                return float(n)
            raise ValueError(f"unsigned integer {token} is out of the uint64 range")
    else:
        boolean = _BOOLEANS.get(token)
        if boolean is not None:
            return boolean
        if _FLOAT_RE.match(token):
            f = float(token)
            if math.isfinite(f):
                return f
            raise ValueError(f"float {token} is out of range")
    raise ValueError(
        f"invalid field value {clip(token, NAME_SHOWN)!r}: expected a number (1.5, 1i, 1u), "
        'a boolean (t, f, true, false) or a "quoted string"'
    )


def parse_line(text: str) -> Line:
    """Read one line of line protocol. Raises LineError with the column of the fault."""
    if "\\" not in text and '"' not in text:
        line = _parse_plain(text)
        if line is not None:
            return line
    return _parse_escaped(text)


def _parse_plain(text: str) -> Line | None:
    """The common line (no escapes, no strings, single spaces) by splitting; None otherwise.

    Anything unusual, including every error, is left to `_parse_escaped`, which
    reads the same language and knows the columns.
    """
    parts = text.split(" ")
    n_parts = len(parts)
    if n_parts == 2:
        key, field_set = parts
        stamp = None
    elif n_parts == 3:
        key, field_set, stamp_text = parts
        if not _INT_RE.match(stamp_text):
            return None
        stamp = int(stamp_text)
        if not INT64_MIN < stamp < INT64_MAX:
            return None
    else:
        return None
    names = key.split(",")
    measurement = names[0]
    if not measurement or measurement[0] == "\t":
        return None
    tags: dict[str, str] = {}
    for pair in names[1:]:
        k, _, v = pair.partition("=")
        if not k or not v or "=" in v or k in tags:
            return None
        tags[k] = v
    fields: dict[str, FieldValue]
    if _FLOAT_FIELDS_RE.match(field_set):
        # Only plain decimal numbers: every value is a float, converted in one go.
        parts = field_set.replace(",", "=").split("=")
        values = list(map(float, parts[1::2]))
        if not math.isfinite(sum(values)):
            return None  # an overflow to infinity: the careful path names it
        fields = dict(zip(parts[::2], values, strict=True))
        return Line(measurement, tags, fields, stamp)
    fields = {}
    for pair in field_set.split(","):
        k, _, v = pair.partition("=")
        if not k or not v or "=" in v:
            return None
        try:
            fields[k] = field_value(v)
        except ValueError:
            return None
    return Line(measurement, tags, fields, stamp)


def _scan_name(text: str, i: int, stops: str) -> tuple[str, int]:
    """Read a name or tag value from `i` up to an unescaped character of `stops`."""
    n = len(text)
    out: list[str] = []
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in _ESCAPABLE:
            out.append(text[i + 1])
            i += 2
            continue
        if c in stops:
            break
        out.append(c)
        i += 1
    return "".join(out), i


def _scan_string(text: str, i: int) -> tuple[str, int]:
    """Read a quoted string starting at the quote at `i`; returns it and the index after it."""
    n = len(text)
    out: list[str] = []
    j = i + 1
    while j < n:
        c = text[j]
        if c == "\\" and j + 1 < n and text[j + 1] in '"\\':
            out.append(text[j + 1])
            j += 2
            continue
        if c == '"':
            return "".join(out), j + 1
        out.append(c)
        j += 1
    raise LineError(i + 1, "string field value has no closing double quote")


def _parse_escaped(text: str) -> Line:
    n = len(text)
    i = 0
    while i < n and text[i] in " \t":
        i += 1
    start = i
    measurement, i = _scan_name(text, i, ", ")
    if not measurement:
        raise LineError(start + 1, "missing measurement")
    tags: dict[str, str] = {}
    while i < n and text[i] == ",":
        i += 1
        key_at = i
        key, i = _scan_name(text, i, ",= ")
        if not key:
            raise LineError(key_at + 1, "missing tag key")
        if i >= n or text[i] != "=":
            raise LineError(i + 1, f"missing '=' after tag key {clip(key, NAME_SHOWN)!r}")
        i += 1
        value_at = i
        value, i = _scan_name(text, i, ",= ")
        if i < n and text[i] == "=":
            raise LineError(i + 1, f"unescaped '=' in the value of tag {clip(key, NAME_SHOWN)!r}")
        if not value:
            raise LineError(value_at + 1, f"missing value for tag {clip(key, NAME_SHOWN)!r}")
        if key in tags:
            raise LineError(key_at + 1, f"duplicate tag {clip(key, NAME_SHOWN)!r}")
        tags[key] = value
    while i < n and text[i] == " ":
        i += 1
    if i >= n:
        raise LineError(i + 1, "missing fields")
    fields: dict[str, FieldValue] = {}
    while True:
        key_at = i
        key, i = _scan_name(text, i, ",= ")
        if not key:
            raise LineError(key_at + 1, "missing field key")
        if i >= n or text[i] != "=":
            raise LineError(i + 1, f"missing '=' after field key {clip(key, NAME_SHOWN)!r}")
        i += 1
        if i < n and text[i] == '"':
            value_at = i
            fields[key], i = _scan_string(text, i)
            if i < n and text[i] not in ", ":
                raise LineError(
                    i + 1, f"expected ',' or a space after the string at {value_at + 1}"
                )
        else:
            j = i
            while j < n and text[j] not in ", ":
                j += 1
            if j == i:
                raise LineError(i + 1, f"missing value for field {clip(key, NAME_SHOWN)!r}")
            try:
                fields[key] = field_value(text[i:j])
            except ValueError as exc:
                raise LineError(i + 1, str(exc)) from None
            i = j
        if i < n and text[i] == ",":
            i += 1
            continue
        break
    while i < n and text[i] == " ":
        i += 1
    stamp: int | None = None
    if i < n:
        j = i
        while j < n and text[j] not in " \t":
            j += 1
        token = text[i:j]
        if not _INT_RE.match(token):
            raise LineError(
                i + 1, f"invalid timestamp {clip(token, NAME_SHOWN)!r}: expected an integer"
            )
        stamp = int(token)
        if not INT64_MIN < stamp < INT64_MAX:
            raise LineError(i + 1, f"timestamp {clip(token, NAME_SHOWN)} is out of the int64 range")
        i = j
        while i < n and text[i] in " \t":
            i += 1
        if i < n:
            raise LineError(i + 1, "unexpected text after the timestamp")
    return Line(measurement, tags, fields, stamp)


def _quote_state(text: str, state: tuple[bool, int, bool]) -> tuple[bool, int, bool]:
    """Follow (in fields, equals seen, inside quotes) over `text`, as InfluxDB splits lines.

    A newline ends a line unless a string field value is open; InfluxDB's
    line splitter decides that with this state, so fleetpulse does the same.
    """
    in_fields, equals, quoted = state
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == " ":
            in_fields = True
        elif in_fields:
            if c == "=" and not quoted:
                equals += 1
            elif c == '"' and equals:
                quoted = not quoted
        i += 1
    return in_fields, equals, quoted


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) for each line that is not blank or a `#` comment.

    CRLF line ends are accepted. A line whose string value holds a raw newline
    continues on the next; an unclosed string does not swallow the rest of the
    body: that line alone is reported, and the lines after it are read one by one.
    """
    pieces = text.split("\n")
    count = len(pieces)
    join = '"' in text
    i = 0
    while i < count:
        lineno = i + 1
        line = pieces[i]
        i += 1
        if line.endswith("\r"):
            line = line[:-1]
        if join and '"' in line:
            state = _quote_state(line, (False, 0, False))
            if state[2]:
                parts = [line]
                j = i
                while state[2] and j < count:
                    piece = pieces[j]
                    j += 1
                    if piece.endswith("\r"):
                        piece = piece[:-1]
                    parts.append(piece)
                    state = _quote_state("\n" + piece, state)
                if not state[2]:
                    line = "\n".join(parts)
                    i = j
                else:
                    join = False  # unbalanced to the end: read the rest line by line
        stripped = line.lstrip(" \t")
        if stripped and stripped[0] != "#":
            yield lineno, line


def decode_lines(body: bytes) -> tuple[str, set[int]]:
    """The body as text, and the numbers of the lines that are not valid UTF-8."""
    try:
        text = body.decode("utf-8")
        bad: set[int] = set()
    except UnicodeDecodeError:
        text = body.decode("utf-8", errors="replace")
        bad = {
            n
            for n, raw in enumerate(body.split(b"\n"), 1)
            if not _is_utf8(raw)  # only the lines at fault are refused
        }
    if text.startswith("\ufeff"):
        text = text[1:]
    return text, bad


def _spans(lineno: int, line: str, numbers: set[int]) -> bool:
    """True when the (possibly multi-line) line starting at `lineno` covers one of `numbers`."""
    return any(n in numbers for n in range(lineno, lineno + line.count("\n") + 1))


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def parse_line_protocol(
    raw: bytes,
    content_encoding: str | None,
    *,
    precision: str | None,
    api: InfluxApi,
    limits: Limits,
    now_ms: int,
) -> ParsedRequest:
    """A line-protocol body as validated host reports, one per `host` tag, at `now_ms`.

    Refuses the whole body only when it is too large (PayloadTooLarge), its
    precision is unknown, or not a single line is valid (InvalidPayload);
    otherwise each bad line is a rejection named `line N`.
    """
    body = decode_body(raw, content_encoding, limits)
    multiply, divide = precision_to_ms(precision, api)
    text, not_utf8 = decode_lines(body)
    lines = list(logical_lines(text))
    if len(lines) > limits.max_points:
        raise PayloadTooLarge(
            f"{len(lines)} lines in one request; the limit is {limits.max_points} "
            "(lower the sender's batch size)",
        )
    v = Validator(limits, now_ms)
    reports: dict[str, HostReport] = {}
    point = v.point
    for lineno, text_line in lines:
        path = f"line {lineno}"
        index = lineno - 1
        if not_utf8 and _spans(lineno, text_line, not_utf8):
            v.refuse(index, path, [Problem(path, "line is not valid UTF-8")])
            continue
        try:
            line = parse_line(text_line)
        except LineError as exc:
            v.refuse(index, path, [Problem(f"{path}, column {exc.column}", exc.message)])
            continue
        tags = line.tags
        host_value = tags.pop("host", None)
        if host_value is None:
            v.refuse(
                index, path, [Problem(path, "no host tag: every line needs host=<name> as a tag")]
            )
            continue
        report = reports.get(host_value)
        if report is None:
            host, problem = v.host(host_value, f"{path}.tags.host")
            if problem is not None or host is None:
                v.refuse(index, path, [problem or Problem(path, "host is required")])
                continue
        if line.timestamp is None:
            time_ms = now_ms
        else:
            time_ms = line.timestamp * multiply // divide
            if time_ms < SECONDS_CUTOFF:
                v.refuse(
                    index,
                    path,
                    [
                        Problem(
                            f"{path}.time",
                            f"timestamp {line.timestamp} at precision={precision or 'ns'} is "
                            "before 1973: send the precision the timestamps are in",
                        )
                    ],
                )
                continue
        p = point(
            {"measurement": line.measurement, "time": time_ms, "tags": tags, "fields": line.fields},
            index,
            path,
            False,
        )
        if p is None:
            continue
        if report is None:
            report = reports[host_value] = HostReport(host=host_value)
        report.points.append(p)
    if len(reports) > limits.max_hosts:
        raise PayloadTooLarge(
            f"{len(reports)} hosts in one request; the limit is {limits.max_hosts}",
        )
    if not reports and v.invalid:
        first = v.invalid[0]
        raise InvalidPayload(f"unable to parse: {first.path}: {first.message}", v.invalid)
    return ParsedRequest(
        shape=Shape.LINE_PROTOCOL, reports=list(reports.values()), rejected=v.rejected
    )


# ---------------------------------------------------------------------- writing

_MEASUREMENT_ESCAPES = str.maketrans({",": "\\,", " ": "\\ "})
_KEY_ESCAPES = str.maketrans({",": "\\,", " ": "\\ ", "=": "\\="})
# A line break cannot be carried by line protocol in any version; inside a string
# it is written as the two characters `\n`, which is what Telegraf does.
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"})
_NAME_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_AMBIGUOUS_BACKSLASH_RE = re.compile(r"\\(?:[\\ ,=]|\Z)")


def escape_measurement(name: str) -> str:
    return name.translate(_MEASUREMENT_ESCAPES)


def escape_key(text: str) -> str:
    """Escape a tag key, tag value or field key."""
    return text.translate(_KEY_ESCAPES)


def quote_string(value: str) -> str:
    """A string field value, quoted and escaped."""
    return '"' + value.translate(_STRING_ESCAPES) + '"'


def unwritable(text: str, what: str, *, name: bool = True) -> str | None:
    """Why `text` cannot be written as a name (or, with name=False, a tag value); None if it can.

    InfluxDB versions disagree on a backslash before a backslash, a space, a
    comma or an equals sign, and on one at the very end, so those are refused
    rather than stored differently depending on the server.
    """
    if not text:
        return f"{what} is empty"
    if name:
        if _NAME_CONTROL_RE.search(text):
            return f"{what} {clip(text, NAME_SHOWN)!r} holds a control character"
        if what == "measurement" and text[0] == "#":
            return (
                f"measurement {clip(text, NAME_SHOWN)!r} starts with '#', which reads as a comment"
            )
    elif "\n" in text or "\r" in text:
        return f"{what} {clip(text, NAME_SHOWN)!r} holds a line break, which line protocol cannot carry"
    if "\\" in text and _AMBIGUOUS_BACKSLASH_RE.search(text):
        return (
            f"{what} {clip(text, NAME_SHOWN)!r} has a backslash before a backslash, space, comma, "
            "equals sign or at the end, which InfluxDB versions read differently"
        )
    return None


def format_value(value: FieldValue) -> str:
    """A field value under fleetpulse's type rule: every number is written as a float.

    A field written as 1 one minute and 1.5 the next must not change type,
    which InfluxDB refuses ("field type conflict"): integers are written
    without the `i` suffix, so InfluxDB stores them as floats (exact up to
    2**53). Raises ValueError for a value InfluxDB cannot store.
    """
    if type(value) is float:
        if value - value != 0.0:  # NaN or infinity
            raise ValueError("NaN and infinity cannot be stored")
        return repr(value)
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is int:
        if -FLOAT_EXACT_INT <= value <= FLOAT_EXACT_INT:
            return str(value)
        try:
            return repr(float(value))
        except OverflowError:
            raise ValueError("the integer is too large for a float") from None
    if type(value) is str:
        if len(value) > MAX_STRING_BYTES // 4 and len(value.encode()) > MAX_STRING_BYTES:
            raise ValueError(f"the string is longer than InfluxDB's {MAX_STRING_BYTES} bytes")
        return quote_string(value)
    raise ValueError(f"a {type(value).__name__} is not a field value")


def format_line(
    measurement: str, tags: dict[str, str], fields: dict[str, FieldValue], time_ms: int | None
) -> str:
    """One line (no newline) with the tags sorted; names are assumed writable (see `unwritable`)."""
    head = escape_measurement(measurement)
    if tags:
        head += "".join(f",{escape_key(k)}={escape_key(tags[k])}" for k in sorted(tags))
    body = ",".join(f"{escape_key(k)}={format_value(v)}" for k, v in fields.items())
    if time_ms is None:
        return f"{head} {body}"
    return f"{head} {body} {time_ms}"
