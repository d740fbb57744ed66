"""The hosts table: one item per host, heartbeat facts and the watched values; and the
series catalog table: one item per host, the list of its series for its page."""

from __future__ import annotations

import base64
import json
import re
import zlib
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple, NotRequired, TypedDict, cast

from aws_lambda_powertools import Logger

from chalicelib.adapters.dynamodb.common import (
    backend,
    conditional_write,
    ddb_number,
    error_code,
    from_item,
    scan_decoded,
    to_item,
    unavailable,
)
from chalicelib.core.heartbeats import DEFAULT_INTERVAL, HostSnapshot
from chalicelib.core.hosts import (
    CATALOG_SHAPES,
    HISTORY_SLOTS,
    HistoryPoint,
    HostState,
    HostUpdate,
    SeriesEntry,
    SeriesLatest,
    ServiceLatest,
    carried_series,
    catalog_due,
    catalog_list,
    merged_catalog,
)
from chalicelib.core.instants import instant_of_ms, ms_of_instant
from chalicelib.core.lifecycle import INSTANCE_TAG, LIFECYCLE_ATTRIBUTE
from chalicelib.core.text import clip

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = Logger(child=True)

TABLE = "hosts"
CATALOG_TABLE = "series catalog"

# DynamoDB refuses an UpdateExpression over 4 KB (about 300 assignments here);
# moto, which the local stack runs on, fails on more than about 150. A host
# update is split every 100 assignments: a typical post needs one request.
MAX_ASSIGNMENTS = 100

# The watched series: one map, series key -> SeriesValue, replaced whole by every post.
WATCHED = "w"
SERIES_COUNT = "series_n"  # how many series the last post carried
# The digests of the catalog shapes written, newest first (at most CATALOG_SHAPES),
# and when the last was written (epoch ms).
CATALOG_DIGESTS = "cat"
CATALOG_WRITTEN = "cat_t"
SERVICE_PREFIX = "e#"
# The CPU and memory ring: `h#<5-minute step of the hour>` = {"t": ms, "c": busy %, "m": used %}.
HISTORY_PREFIX = "h#"
# A ring slot as a Scan page spells it after another attribute (compact, as DynamoDB
# sends it): cut from the page's text before it is parsed when the ring is not asked
# for, two thirds of an agent's item (`scan_items`' `skip`). Only that shape matches: a
# key "h#1" inside a map has a comma before it too, but never a value of these numbers.
HISTORY_SLOT_TEXT = re.compile(
    rb',"h#\d{1,2}":\{"M":\{(?:"[tcm]":\{(?:"N":"[-+.0-9eE]{1,40}"|"NULL":true)\},?){0,3}\}\}'
)
# The catalog item: `z` = zlib of the JSON {series key: CatalogSeries}. Series names,
# tags and fields repeat themselves: compressed, an agent's catalog is one write unit
# instead of three, and bench/cost.py's 500-series statsd sender's 3 instead of 38
# (DynamoDB bills a binary attribute by its bytes). An item written before holds the same map uncompressed as
# `s` (read as it is; the next catalog write replaces it).
CATALOG_PACKED = "z"
CATALOG_SERIES = "s"
# An older layout kept every series as `s#<series key>`: removed by the host's next post.
LEGACY_SERIES_PREFIX = "s#"


class SeriesValue(TypedDict):
    """`w[<series key>]`: the newest point of one watched series."""

    m: str  # measurement
    tags: dict[str, str]
    t: int  # epoch ms
    f: dict[str, Decimal | bool]  # fields DynamoDB can hold


class ServiceValue(TypedDict):
    """`e#<service>`: the newest event of one service."""

    status: str
    t: int  # epoch ms
    d: str  # description
    ttl: NotRequired[int]  # ms
    v: NotRequired[Decimal]


class HistoryValue(TypedDict):
    """`h#<minute of the hour>`: one slot of the last hour of CPU and memory."""

    t: int  # epoch ms
    c: NotRequired[Decimal | None]  # CPU busy %
    m: NotRequired[Decimal | None]  # memory used %


class CatalogSeries(TypedDict):
    """One series in the catalog item's `s` map."""

    m: str  # measurement
    tags: dict[str, str]
    f: list[str]  # numeric field names
    t: int  # epoch ms: when a post last wrote it


class HostItem(TypedDict):
    """A host's item (key `host`); instants as epoch ms. Beside these attributes sit
    one `e#...` (ServiceValue) and `h#...` (HistoryValue) attribute per service and
    history slot."""

    host: str
    last_seen_at: int
    first_seen_at: int
    state: str  # HostState
    interval_s: NotRequired[int]
    tags: NotRequired[dict[str, str]]
    agent_name: NotRequired[str]
    agent_version: NotRequired[str]
    retired_at: NotRequired[int]
    instance_id: NotRequired[str]  # INSTANCE_TAG, the key of the instance_id index
    lifecycle: NotRequired[str]  # LIFECYCLE_ATTRIBUTE: why EC2 ended the host
    w: NotRequired[dict[str, SeriesValue]]  # WATCHED
    series_n: NotRequired[int]  # SERIES_COUNT
    cat: NotRequired[list[str]]  # CATALOG_DIGESTS
    cat_t: NotRequired[int]  # CATALOG_WRITTEN


class UpdateOp(StrEnum):
    """What one assignment of an UpdateExpression does to its attribute."""

    SET = "set"
    SET_IF_ABSENT = "if_not_exists"
    REMOVE = "remove"


class Assignment(NamedTuple):
    op: UpdateOp
    name: str
    value: Any = None


class DynamoDBHostStore:
    """One item per host: heartbeat facts, the watched series, one attribute per service.

    Every post is one UpdateItem that needs no read: the heartbeat, the
    watched series (one map `w`, replaced whole), the history slot (at most 12
    attributes `h#0`..`h#11`) and the services (top-level attributes
    `e#backup`, so any can be set on the first post as on later ones). It
    returns the old item, which says whether two rarer writes are owed: the
    series catalog, when the post's set of series and fields is not one
    already written (`cat`), and the watched series of the last post that
    this one did not carry (a sender that splits its values over posts).
    """

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        series_table: str | None = None,
        scan_segments: int = 1,
        scan_patience_s: float = 0.0,
    ) -> None:
        self.client = client
        self.table = table
        self.series_table = series_table  # None: no catalog is kept
        self.scan_segments = scan_segments
        # How long a Scan waits out pages refused for capacity (`scan_items`).
        self.scan_patience_s = scan_patience_s

    def record(self, update: HostUpdate) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        base, extra = host_assignments(update)
        old: dict[str, Any] = {}
        try:
            for i, assignments in enumerate(_chunks(base, extra)):
                answer = self._update(update.host, assignments, returns=i == 0)
                if i == 0:
                    old = answer
        except ClientError as exc:
            if error_code(exc) != "ValidationException":
                raise unavailable(TABLE, exc) from exc
            # Most likely the item outgrew DynamoDB's 400 KB: the heartbeat
            # still counts, the services wait for the evaluator to prune.
            logger.error(
                "host item update refused; recording the heartbeat only",
                extra={"host": update.host, "reason": clip(str(exc), 500)},
            )
            with backend(TABLE):
                old = self._update(update.host, base, returns=True)
        except BotoCoreError as exc:
            raise unavailable(TABLE, exc) from exc
        legacy = legacy_attributes(old)
        if legacy:
            self._remove_legacy(update.host, legacy)
        carried = carried_series(watched_from_attribute(old.get(WATCHED)), update)
        if carried:
            self._carry(update, carried)
        digests = _digests(old.get(CATALOG_DIGESTS))
        written = old.get(CATALOG_WRITTEN, {}).get("N")
        if self.series_table and catalog_due(
            update, digests, int(written) if written is not None else None
        ):
            self._write_catalog(update, digests)

    def _update(
        self, host: str, assignments: list[Assignment], *, returns: bool = False
    ) -> dict[str, Any]:
        expression, names, values = update_expression(assignments)
        response = self.client.update_item(
            TableName=self.table,
            Key={"host": {"S": host}},
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=to_item(values),
            ReturnValues="ALL_OLD" if returns else "NONE",
        )
        return cast("dict[str, Any]", response.get("Attributes") or {})

    def _remove_legacy(self, host: str, names: list[str]) -> None:
        """Drop what an older layout left in the item (once per host: nothing writes it)."""
        for start in range(0, len(names), MAX_ASSIGNMENTS):
            chunk = names[start : start + MAX_ASSIGNMENTS]
            with backend(TABLE):
                self.client.update_item(
                    TableName=self.table,
                    Key={"host": {"S": host}},
                    UpdateExpression="REMOVE " + ", ".join(f"#a{i}" for i in range(len(chunk))),
                    ExpressionAttributeNames={f"#a{i}": name for i, name in enumerate(chunk)},
                )

    def _carry(self, update: HostUpdate, carried: dict[str, SeriesLatest]) -> None:
        """Put back the watched series of the last post that this one did not carry, if
        no later post has landed since."""
        watched = {**carried, **update.series}
        self._conditional(
            update.host,
            "SET #w = :w",
            "last_seen_at = :seen",
            {":w": {"M": to_item(watched_value(watched))}}
            | {":seen": {"N": str(ms_of_instant(update.seen_at))}},
            {"#w": WATCHED},
        )

    def _write_catalog(self, update: HostUpdate, digests: list[str]) -> None:
        """Merge the post's series into the catalog (one read, one PutItem), then record the
        shape's digest: a failed write is tried again by the next post."""
        assert self.series_table is not None
        catalog = merged_catalog(self._read_catalog(update.host, consistent=True), update)
        item: dict[str, Any] = {
            "host": {"S": update.host},
            CATALOG_PACKED: {"B": packed_catalog(catalog)},
        }
        with backend(CATALOG_TABLE):
            self.client.put_item(TableName=self.series_table, Item=item)
        kept = [update.catalog_digest, *(d for d in digests if d != update.catalog_digest)]
        self._conditional(
            update.host,
            "SET #cat = :cat, #cat_t = :cat_t",
            "attribute_exists(#host)",
            {
                ":cat": {"L": [{"S": d} for d in kept[:CATALOG_SHAPES]]},
                ":cat_t": {"N": str(ms_of_instant(update.seen_at))},
            },
            {"#cat": CATALOG_DIGESTS, "#cat_t": CATALOG_WRITTEN},
        )

    def _read_catalog(self, host: str, *, consistent: bool) -> dict[str, tuple[int, SeriesEntry]]:
        assert self.series_table is not None
        with backend(CATALOG_TABLE):
            response = self.client.get_item(
                TableName=self.series_table, Key={"host": {"S": host}}, ConsistentRead=consistent
            )
        return catalog_from_item(cast("dict[str, Any]", response.get("Item") or {}))

    def catalog(self, host: str) -> list[SeriesEntry]:
        """Every series the host's posts carried lately, with their numeric fields."""
        if not self.series_table:
            return []
        return catalog_list(self._read_catalog(host, consistent=False))

    def get(self, host: str) -> HostItem | None:
        """The host's item as plain Python values (numbers as Decimal)."""
        with backend(TABLE):
            response = self.client.get_item(
                TableName=self.table, Key={"host": {"S": host}}, ConsistentRead=True
            )
        item = response.get("Item")
        return cast("HostItem", from_item(item)) if item else None

    def snapshot(self, host: str) -> HostSnapshot | None:
        """One GetItem, eventually consistent, decoded as a scan decodes its items."""
        with backend(TABLE):
            response = self.client.get_item(TableName=self.table, Key={"host": {"S": host}})
        item = response.get("Item")
        return snapshot_from_item(cast("dict[str, Any]", item)) if item else None

    def scan(
        self, fields: Mapping[str, frozenset[str]] | None = None, *, history: bool = False
    ) -> list[HostSnapshot]:
        """One paginated Scan in `scan_segments` parallel segments, eventually
        consistent: every write that acts on what it read is conditional, so a read a
        second old costs a no-op at worst."""
        return scan_decoded(
            self.client,
            self.table,
            TABLE,
            lambda item: snapshot_from_item(item, fields, history=history),
            False,
            segments=self.scan_segments,
            skip=None if history else HISTORY_SLOT_TEXT,
            patience_s=self.scan_patience_s,
        )

    def mark_down(self, host: str, last_seen_at: datetime) -> bool:
        return self._conditional(
            host,
            "SET #state = :down",
            "#state = :up AND last_seen_at = :seen",
            {":down": {"S": HostState.DOWN.value}, ":up": {"S": HostState.UP.value}}
            | {":seen": {"N": str(ms_of_instant(last_seen_at))}},
        )

    def pause(self, host: str) -> bool:
        return self._conditional(
            host,
            "SET #state = :paused",
            "attribute_exists(#host)",
            {":paused": {"S": HostState.PAUSED.value}},
        )

    def resume(self, host: str) -> bool:
        if self._conditional(
            host,
            "SET #state = :up",
            "#state = :paused",
            {":up": {"S": HostState.UP.value}, ":paused": {"S": HostState.PAUSED.value}},
        ):
            return True
        return self.get(host) is not None  # not paused: nothing to undo

    def forget(self, host: str, last_seen_at: datetime) -> bool:
        return conditional_write(
            TABLE,
            lambda: self.client.delete_item(
                TableName=self.table,
                Key={"host": {"S": host}},
                ConditionExpression="#state = :retired AND last_seen_at = :seen",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":retired": {"S": HostState.RETIRED.value},
                    ":seen": {"N": str(ms_of_instant(last_seen_at))},
                },
            ),
        )

    def prune(self, host: str, services: dict[str, int]) -> bool:
        stale = [(SERVICE_PREFIX + k, t) for k, t in services.items()]
        done = True
        for start in range(0, len(stale), MAX_ASSIGNMENTS // 2):
            chunk = stale[start : start + MAX_ASSIGNMENTS // 2]
            names = {"#t": "t"} | {f"#a{i}": name for i, (name, _) in enumerate(chunk)}
            values = {f":t{i}": {"N": str(t)} for i, (_, t) in enumerate(chunk)}
            # Each attribute goes only if it still holds what was read: a post
            # that refreshed it since keeps it.
            condition = " AND ".join(f"#a{i}.#t = :t{i}" for i in range(len(chunk)))
            done = (
                self._conditional(
                    host,
                    "REMOVE " + ", ".join(f"#a{i}" for i in range(len(chunk))),
                    condition,
                    values,
                    names,
                )
                and done
            )
        return done

    def _conditional(
        self,
        host: str,
        update: str,
        condition: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
    ) -> bool:
        all_names = {"#state": "state", "#host": "host", **(names or {})}
        used = {k: v for k, v in all_names.items() if k in update or k in condition}
        return conditional_write(
            TABLE,
            lambda: self.client.update_item(
                TableName=self.table,
                Key={"host": {"S": host}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=used,
                ExpressionAttributeValues=values,
            ),
        )


def update_expression(
    assignments: list[Assignment],
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """An UpdateExpression with its attribute names and (plain) values: every name goes
    through a placeholder, so series keys with any characters are safe."""
    sets: list[str] = []
    removes: list[str] = []
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    for i, (op, name, value) in enumerate(assignments):
        placeholder = f"#a{i}"
        names[placeholder] = name
        if op is UpdateOp.REMOVE:
            removes.append(placeholder)
        elif op is UpdateOp.SET_IF_ABSENT:
            values[f":v{i}"] = value
            sets.append(f"{placeholder} = if_not_exists({placeholder}, :v{i})")
        else:
            values[f":v{i}"] = value
            sets.append(f"{placeholder} = :v{i}")
    expression = "SET " + ", ".join(sets)
    if removes:
        expression += " REMOVE " + ", ".join(removes)
    return expression, names, values


def _ms_instant(raw: dict[str, Any] | None) -> datetime | None:
    if raw is None or "N" not in raw:
        return None
    return instant_of_ms(int(raw["N"]))


# What a host item's attributes decode to, for values every host shares: looked up, not
# rebuilt, for each of the fleet's items (the Scan reads every host every minute).
_STATES: dict[str, HostState] = {s.value: s for s in HostState}
_INTERVALS: dict[str, timedelta] = {}
_NO_VALUE: dict[str, Any] = {}


def _interval(raw: dict[str, Any] | None) -> timedelta:
    number = raw.get("N") if raw is not None else None
    if number is None:
        return DEFAULT_INTERVAL
    interval = _INTERVALS.get(number)
    if interval is None:
        interval = timedelta(seconds=float(number))
        if len(_INTERVALS) < 1024:  # a handful of intervals in a fleet; bounded all the same
            _INTERVALS[number] = interval
    return interval


def snapshot_from_item(
    item: dict[str, Any],
    wanted: Mapping[str, frozenset[str]] | None = None,
    *,
    history: bool = False,
) -> HostSnapshot | None:
    """A host item, as Scan returns it (low-level), read straight into a HostSnapshot.

    This runs for every host every minute: it reads the known layout directly
    instead of deserializing every attribute with boto3's generic
    TypeDeserializer, and when `wanted` (measurement -> fields some rule reads)
    is given, only those fields of the watched series (`w`).
    The history ring is decoded only when `history` is asked for: otherwise its
    slots are passed over by their first letters, as is every attribute but the
    services. An attribute that does not have the layout is skipped, never fatal.
    """
    try:
        host = item["host"]["S"]
        last_seen = _ms_instant(item.get("last_seen_at"))
    except (KeyError, TypeError, ValueError):
        return None
    if last_seen is None:
        return None
    get = item.get
    state = _STATES.get(get("state", _NO_VALUE).get("S", "up"), HostState.UP)
    raw_tags = get("tags", _NO_VALUE).get("M")
    tags = {k: v["S"] for k, v in raw_tags.items() if "S" in v} if raw_tags else {}
    raw_watched = get(WATCHED)
    series = watched_from_attribute(raw_watched, wanted) if raw_watched is not None else {}
    services: dict[str, ServiceLatest] = {}
    ring: list[HistoryPoint] = []
    for name, raw in item.items():
        # SERVICE_PREFIX, by its letters: a slice for each of ~20 attributes is measurable
        if name and name[0] == "e" and name[1:2] == "#":
            try:
                m = raw["M"]
                ttl = m.get("ttl")
                value = m.get("v")
                services[name[2:]] = ServiceLatest(
                    m["status"]["S"],
                    int(m["t"]["N"]),
                    int(ttl["N"]) if ttl and "N" in ttl else None,
                    m.get("d", _NO_VALUE).get("S", ""),
                    float(value["N"]) if value and "N" in value else None,
                )
            except (KeyError, TypeError, ValueError):
                continue
        elif history and name[:2] == HISTORY_PREFIX:
            try:
                m = raw["M"]
                cpu, mem = m.get("c"), m.get("m")
                ring.append(
                    HistoryPoint(
                        int(m["t"]["N"]),
                        float(cpu["N"]) if cpu and "N" in cpu else None,
                        float(mem["N"]) if mem and "N" in mem else None,
                    )
                )
            except (KeyError, TypeError, ValueError):
                continue
    first_seen = get("first_seen_at")
    retired = get("retired_at")
    count = get(SERIES_COUNT, _NO_VALUE).get("N")
    return HostSnapshot(
        host=host,
        state=state,
        last_seen_at=last_seen,
        first_seen_at=(_ms_instant(first_seen) or last_seen) if first_seen else last_seen,
        interval=_interval(get("interval_s")),
        tags=tags,
        agent_name=get("agent_name", _NO_VALUE).get("S"),
        agent_version=get("agent_version", _NO_VALUE).get("S"),
        retired_at=_ms_instant(retired) if retired is not None else None,
        lifecycle=get(LIFECYCLE_ATTRIBUTE, _NO_VALUE).get("S"),
        series=series,
        services=services,
        history=tuple(ring) if ring else (),
        series_count=int(count) if count is not None else len(series),
    )


def watched_from_attribute(
    raw: dict[str, Any] | None, wanted: Mapping[str, frozenset[str]] | None = None
) -> dict[str, SeriesLatest]:
    """The `w` map (low-level) as series; a value that does not have the layout is
    skipped. With `wanted`, only those fields of each measurement."""
    series: dict[str, SeriesLatest] = {}
    entries = raw.get("M") if isinstance(raw, dict) else None
    if not isinstance(entries, dict):
        return series
    for key, value in entries.items():
        try:
            m = value["M"]
            measurement = m["m"]["S"]
            fields: dict[str, float | int | bool] = {}
            stored = m["f"]["M"]
            names = stored if wanted is None else wanted.get(measurement, ())
            for field_name in names:
                v = stored.get(field_name)
                if v is None:
                    continue
                number = v.get("N")
                if number is not None:
                    fields[field_name] = float(number)
                elif "BOOL" in v:
                    fields[field_name] = v["BOOL"]
            series_tags = m.get("tags", {}).get("M") or {}
            series[key] = SeriesLatest(
                measurement,
                {k: v["S"] for k, v in series_tags.items()},
                int(m["t"]["N"]),
                fields,
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    return series


def watched_value(series: Mapping[str, SeriesLatest]) -> dict[str, SeriesValue]:
    """Series as the `w` map holds them; a series with nothing storable is left out."""
    watched: dict[str, SeriesValue] = {}
    for key, s in series.items():
        fields: dict[str, Decimal | bool] = {}
        for name, v in s.fields.items():
            number = v if isinstance(v, bool) else ddb_number(v)
            if number is not None:
                fields[name] = number
        if fields:
            watched[key] = SeriesValue(m=s.measurement, tags=s.tags, t=s.time_ms, f=fields)
    return watched


def legacy_attributes(item: Mapping[str, Any]) -> list[str]:
    """Attributes of an older item layout: one `s#<series>` per series, and history
    slots past today's ring (it had one a minute)."""
    legacy = []
    for name in item:
        if name.startswith(LEGACY_SERIES_PREFIX):
            legacy.append(name)
        elif name.startswith(HISTORY_PREFIX):
            slot = name[len(HISTORY_PREFIX) :]
            if not slot.isdigit() or int(slot) >= HISTORY_SLOTS:
                legacy.append(name)
    return sorted(legacy)


def _digests(raw: dict[str, Any] | None) -> list[str]:
    entries = raw.get("L") if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        return []
    return [e["S"] for e in entries if isinstance(e, dict) and "S" in e]


def packed_catalog(catalog: Mapping[str, tuple[int, SeriesEntry]]) -> bytes:
    """The catalog item's `z`: zlib of the compact JSON {series key: CatalogSeries}."""
    entries = {
        key: CatalogSeries(m=e.measurement, tags=e.tags, f=list(e.fields), t=t)
        for key, (t, e) in catalog.items()
    }
    return zlib.compress(json.dumps(entries, separators=(",", ":")).encode(), 9)


def catalog_from_item(item: dict[str, Any]) -> dict[str, tuple[int, SeriesEntry]]:
    """The catalog item (low-level): series key -> (time written, entry); an entry that
    does not have the layout is skipped, and so is a `z` that does not unpack."""
    packed = (item.get(CATALOG_PACKED) or {}).get("B")
    if packed is not None:
        return _unpacked_catalog(packed)
    catalog: dict[str, tuple[int, SeriesEntry]] = {}
    for key, value in (item.get(CATALOG_SERIES, {}).get("M") or {}).items():
        try:
            m = value["M"]
            tags = {k: v["S"] for k, v in (m.get("tags", {}).get("M") or {}).items()}
            names = tuple(v["S"] for v in m["f"]["L"])
            catalog[key] = (int(m["t"]["N"]), SeriesEntry(m["m"]["S"], tags, names))
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    return catalog


def _unpacked_catalog(packed: bytes | str) -> dict[str, tuple[int, SeriesEntry]]:
    try:
        raw = packed if isinstance(packed, bytes) else base64.b64decode(packed)
        entries = json.loads(zlib.decompress(raw))
    except (ValueError, zlib.error):
        logger.error("unreadable series catalog skipped", extra={"bytes": len(packed)})
        return {}
    catalog: dict[str, tuple[int, SeriesEntry]] = {}
    for key, m in entries.items() if isinstance(entries, dict) else ():
        try:
            tags = {str(k): str(v) for k, v in m.get("tags", {}).items()}
            names = tuple(str(f) for f in m["f"])
            catalog[key] = (int(m["t"]), SeriesEntry(str(m["m"]), tags, names))
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    return catalog


def host_assignments(update: HostUpdate) -> tuple[list[Assignment], list[Assignment]]:
    """The heartbeat assignments with the watched series (always in the first request), and
    the services."""
    seen = ms_of_instant(update.seen_at)
    base = [
        Assignment(UpdateOp.SET, "last_seen_at", seen),
        Assignment(UpdateOp.SET_IF_ABSENT, "first_seen_at", seen),
        Assignment(UpdateOp.SET, "state", update.state.value),
    ]
    if update.interval_s is not None:
        base.append(Assignment(UpdateOp.SET, "interval_s", update.interval_s))
    if update.tags:
        base.append(Assignment(UpdateOp.SET, "tags", update.tags))
        if update.tags.get(INSTANCE_TAG):  # the key of the instance_id index
            base.append(Assignment(UpdateOp.SET, INSTANCE_TAG, update.tags[INSTANCE_TAG]))
    if update.agent_name is not None:
        base.append(Assignment(UpdateOp.SET, "agent_name", update.agent_name))
        base.append(Assignment(UpdateOp.SET, "agent_version", update.agent_version or ""))
    if update.state is HostState.RETIRED:
        base.append(Assignment(UpdateOp.SET, "retired_at", seen))
    else:
        base.append(Assignment(UpdateOp.REMOVE, "retired_at"))
    base.append(Assignment(UpdateOp.REMOVE, LIFECYCLE_ATTRIBUTE))  # a host that posts is back
    if update.history is not None:
        slot = HISTORY_PREFIX + str(update.history.slot)
        base.append(Assignment(UpdateOp.SET, slot, history_value(update.history)))
    watched = watched_value(update.series)
    if watched:
        base.append(Assignment(UpdateOp.SET, WATCHED, watched))
    else:
        base.append(Assignment(UpdateOp.REMOVE, WATCHED))
    base.append(Assignment(UpdateOp.SET, SERIES_COUNT, update.series_count))
    extra: list[Assignment] = []
    for service, svc in update.services.items():
        event = ServiceValue(status=svc.status, t=svc.time_ms, d=svc.description)
        if svc.ttl_ms is not None:
            event["ttl"] = svc.ttl_ms
        if svc.value is not None and (number := ddb_number(svc.value)) is not None:
            event["v"] = number
        extra.append(Assignment(UpdateOp.SET, SERVICE_PREFIX + service, event))
    return base, extra


def history_value(point: HistoryPoint) -> HistoryValue:
    value = HistoryValue(t=point.time_ms)
    if point.cpu is not None:
        value["c"] = ddb_number(point.cpu)
    if point.mem is not None:
        value["m"] = ddb_number(point.mem)
    return value


def _chunks(base: list[Assignment], extra: list[Assignment]) -> Iterator[list[Assignment]]:
    """The heartbeat first, with as many services as fit; the rest in further requests."""
    chunk = list(base)
    for assignment in extra:
        if len(chunk) == MAX_ASSIGNMENTS:
            yield chunk
            chunk = []
        chunk.append(assignment)
    yield chunk
