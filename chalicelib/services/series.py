"""GET /v1/series: a host's history, bucketed, from whichever store holds the metrics."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chalicelib.core.series import series_query_of_params

if TYPE_CHECKING:
    from chalicelib.core.ports import MetricReader


class SeriesService:
    def __init__(self, reader: MetricReader) -> None:
        self.reader = reader

    def read(self, params: Mapping[str, str], now: datetime) -> dict[str, Any]:
        """`{"series": [{"tags", "points"}]}` for the query `params` describe (400 if bad)."""
        query = series_query_of_params(params, now)
        return {"series": [s.as_json() for s in self.reader.read(query)]}
