"""SeriesQuery as Timestream Query SQL, and Query's rows read back as Series.

Points are multi-measure records (see `chalicelib.core.timestream`): the
measurement is `measure_name`, a field is a measure column, the host and the
tags are dimension columns. Identifiers are double-quoted (`""` inside),
values single-quoted (`''` inside); `check_name` has refused control
characters. Series are grouped by host: a Timestream table has no "every
dimension" grouping, so tag values narrow a query but do not split it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from chalicelib.core.series import MAX_SERIES, Series, SeriesQuery, Stat, too_many_series

_FUNCTIONS = {
    Stat.AVG: "avg({f})",
    Stat.MIN: "min({f})",
    Stat.MAX: "max({f})",
    Stat.COUNT: "count({f})",
    Stat.P95: "approx_percentile({f}, 0.95)",
}


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def timestream_sql(query: SeriesQuery, database: str, table: str) -> str:
    """One SELECT: host, bucket start in ms, the stat; ordered by host then time."""
    value = _FUNCTIONS[query.stat].format(f=quote_identifier(query.field))
    host = quote_identifier("host")
    if query.step is not None:
        bucket = f"to_milliseconds(bin(time, {int(query.step.total_seconds())}s))"
    else:
        bucket = f"{query.start_ms}"
    where = [
        f"measure_name = {quote_string(query.measurement)}",
        f"time >= from_milliseconds({query.start_ms})",
        f"time < from_milliseconds({query.end_ms})",
        f"{quote_identifier(query.field)} IS NOT NULL",
    ]
    if query.host is not None:
        where.append(f"{host} = {quote_string(query.host)}")
    for key, val in sorted(query.tags.items()):
        where.append(f"{quote_identifier(key)} = {quote_string(val)}")
    group = f"{host}, bin(time, {int(query.step.total_seconds())}s)" if query.step else host
    return (
        f"SELECT {host} AS host, {bucket} AS t, {value} AS v "  # noqa: S608 (every name quoted above)
        f"FROM {quote_identifier(database)}.{quote_identifier(table)} "
        f"WHERE {' AND '.join(where)} GROUP BY {group} ORDER BY host, t"
    )


def _scalar(datum: Mapping[str, Any]) -> str | None:
    if datum.get("NullValue"):
        return None
    value = datum.get("ScalarValue")
    return str(value) if value is not None else None


def series_of_rows(
    columns: list[str], rows: Iterable[Mapping[str, Any]], query: SeriesQuery
) -> list[Series]:
    """Rows of every page (`Rows` of each Query answer) as one series per host."""
    at = {name: i for i, name in enumerate(columns)}
    by_host: dict[str, Series] = {}
    for row in rows:
        data = row["Data"]
        host, t, v = (_scalar(data[at[c]]) for c in ("host", "t", "v"))
        if host is None or t is None or v is None:
            continue
        series = by_host.get(host)
        if series is None:
            if len(by_host) >= MAX_SERIES:
                raise too_many_series(len(by_host) + 1)
            tags = {"host": host, **query.tags}
            series = by_host[host] = Series(tags, [])
        series.points.append((int(float(t)), float(v)))
    out = list(by_host.values())
    for s in out:
        s.points.sort()
    out.sort(key=lambda s: sorted(s.tags.items()))
    return out
