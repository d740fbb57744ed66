"""Folds the samples of one send interval into one point per series.

A gauge's plain field name carries the interval's average; with two samples
or more, the `stats` setting adds its swing as `<field>_min` and `<field>_max`
(the default), and may add `<field>_stddev` (population) and, from one sample
on, `<field>_count` (the number of samples). With one sample a spread would
only repeat the average. `<field>_last` is sent for the fields in
`last_fields` only (no shipped rule reads it: rules judge the average).
Average-only fields send just that; totals and sizes only their last value;
error and drop counts their sum over the interval.
"""

from __future__ import annotations

import math

from fleetpulse_agent.collect import AVG, CONST, GAUGE, KINDS, SUM

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations stay strings at run time (PEP 563): typing is never loaded
    from typing import Any, Dict, FrozenSet, List, Tuple


MAX_POINTS_PER_BATCH = 1000


def round3(value: Any) -> Any:
    """A float to 3 decimals (an int when whole); anything else as it is."""
    # Three decimals are finer than anything measured here and keep bodies small.
    if isinstance(value, float):
        value = round(value, 3)
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    return value


class Aggregator:
    """Series summaries for the running interval. Not thread-safe: the collect loop owns it."""

    def __init__(
        self,
        kinds: Dict[str, str] = KINDS,
        last_fields: FrozenSet[str] = frozenset(),
        stats: Tuple[str, ...] = ("min", "max"),
    ) -> None:
        self.kinds = kinds
        self.last_fields = last_fields
        self.stats = stats
        # (measurement, sorted tag items) ->
        #   [tags, last time ms, {field: [n, sum, min, max, last, sum of squares]}]
        self.series: Dict[Tuple[str, Tuple[Tuple[str, str], ...]], list] = {}

    def add(
        self, measurement: str, tags: Dict[str, str], fields: Dict[str, Any], time_ms: int
    ) -> None:
        key = (measurement, tuple(sorted(tags.items())))
        entry = self.series.get(key)
        if entry is None:
            entry = self.series[key] = [tags, time_ms, {}]
        entry[1] = time_ms
        stats = entry[2]
        for name, value in fields.items():
            if isinstance(value, float) and not math.isfinite(value):
                continue  # the collector refuses NaN and infinity; one bad value is not the point
            s = stats.get(name)
            if s is None:
                stats[name] = [1, value, value, value, value, value * value]
            else:
                s[0] += 1
                s[1] += value
                s[2] = min(s[2], value)
                s[3] = max(s[3], value)
                s[4] = value
                s[5] += value * value

    def __len__(self) -> int:
        return len(self.series)

    def flush(self) -> List[Dict[str, Any]]:
        """The interval's points (Contract 1 shape), and a fresh interval."""
        points = []
        for (measurement, _), (tags, time_ms, stats) in self.series.items():
            fields = {}
            for name, (n, total, lo, hi, last, squares) in stats.items():
                kind = self.kinds.get(name, GAUGE)
                if kind == CONST:
                    fields[name] = round3(last)
                elif kind == SUM:
                    fields[name] = round3(total)
                else:
                    mean = total / n
                    fields[name] = round3(mean)
                    if kind == AVG:
                        continue
                    extra = {"count": n}
                    if n > 1:
                        # max(0, .): rounding can make a constant's variance a hair negative
                        var = max(0.0, squares / n - mean * mean)
                        extra.update(min=lo, max=hi, stddev=math.sqrt(var))
                    for stat in self.stats:
                        if stat in extra:
                            fields[name + "_" + stat] = round3(extra[stat])
                    if name in self.last_fields:
                        fields[name + "_last"] = round3(last)
            point = {"measurement": measurement, "time": time_ms, "fields": fields}
            if tags:
                point["tags"] = tags
            points.append(point)
        self.series = {}
        return points


def chunks(items: List[Any], size: int) -> List[List[Any]]:
    """`items` in consecutive slices of at most `size` (one empty slice for no items)."""
    return [items[i : i + size] for i in range(0, len(items), size)] or [[]]
