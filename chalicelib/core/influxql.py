"""SeriesQuery as InfluxQL, and InfluxDB's `/query` answer read back as Series.

Every identifier is double-quoted and every value single-quoted, with the
backslash escapes InfluxQL's scanner reads; `check_name` has already refused
control characters, so a name can never end a quoted token or a statement.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.core.series import MAX_SERIES, Series, SeriesQuery, Stat, too_many_series

_FUNCTIONS = {
    Stat.AVG: "MEAN({f})",
    Stat.MIN: "MIN({f})",
    Stat.MAX: "MAX({f})",
    Stat.COUNT: "COUNT({f})",
    Stat.P95: "PERCENTILE({f}, 95)",
}


def quote_identifier(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def influxql(query: SeriesQuery) -> str:
    """One SELECT: the stat per bucket, one series per tag set (or per host)."""
    select = _FUNCTIONS[query.stat].format(f=quote_identifier(query.field))
    where = [f"time >= {query.start_ms}ms", f"time < {query.end_ms}ms"]
    if query.host is not None:
        where.append(f"{quote_identifier('host')} = {quote_string(query.host)}")
    for key, value in sorted(query.tags.items()):
        where.append(f"{quote_identifier(key)} = {quote_string(value)}")
    group = []
    if query.step is not None:
        group.append(f"time({int(query.step.total_seconds() * 1000)}ms)")
    group.append("*" if query.by_tags else quote_identifier("host"))
    # One more series than the cap tells "too many" from "exactly the cap".
    return (
        f'SELECT {select} AS "v" FROM {quote_identifier(query.measurement)} '  # noqa: S608 (every name quoted above)
        f"WHERE {' AND '.join(where)} GROUP BY {', '.join(group)} fill(none) "
        f"SLIMIT {MAX_SERIES + 1}"
    )


def series_of_influx_answer(answer: Mapping[str, Any], query: SeriesQuery) -> list[Series]:
    """The series of a `/query?epoch=ms` answer; an error in it raises ValueError."""
    out: list[Series] = []
    for result in answer.get("results", []):
        if "error" in result:
            raise ValueError(str(result["error"]))
        for raw in result.get("series", []):
            tags = {k: v for k, v in (raw.get("tags") or {}).items() if v != ""}
            columns = raw.get("columns", [])
            t_at, v_at = columns.index("time"), columns.index("v")
            points = [
                (int(row[t_at]) if row[t_at] is not None else query.start_ms, float(row[v_at]))
                for row in raw.get("values", [])
                if row[v_at] is not None
            ]
            if query.step is None:
                # No time grouping: InfluxDB stamps the aggregate with the window's start.
                points = [(query.start_ms, v) for _, v in points]
            out.append(Series(tags, points))
    if len(out) > MAX_SERIES:
        raise too_many_series(len(out))
    out.sort(key=lambda s: sorted(s.tags.items()))
    return out
