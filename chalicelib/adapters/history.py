"""MetricReaders: history read back from InfluxDB (InfluxQL) or Timestream (Query SQL)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from chalicelib.core.influx import InfluxTarget, error_message
from chalicelib.core.influxql import influxql, series_of_influx_answer
from chalicelib.core.models import InfluxApi
from chalicelib.core.ports import BackendUnavailable
from chalicelib.core.series import Series, SeriesQuery
from chalicelib.core.timestream_sql import series_of_rows, timestream_sql

if TYPE_CHECKING:
    import requests
    from mypy_boto3_timestream_query import TimestreamQueryClient

    from chalicelib.adapters.influxdb import TokenSource


class InfluxDBMetricReader:
    """InfluxQL over `/query`: InfluxDB 1.x (`db`, basic auth or token) and the
    v1-compatibility API of 2.x and Timestream for InfluxDB (`db` = the bucket,
    `Authorization: Token`)."""

    def __init__(
        self,
        target: InfluxTarget,
        token: TokenSource = None,
        *,
        session: requests.Session | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
    ) -> None:
        self.target = target
        self._token = token
        self._session = session
        self._lock = threading.Lock()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    import requests

                    session = requests.Session()
                    session.trust_env = False  # no .netrc or proxy from the environment
                    self._session = session
        return self._session

    def _token_value(self) -> str | None:
        token = self._token
        if callable(token):
            token = self._token = token()
        return token

    def read(self, query: SeriesQuery) -> list[Series]:
        import requests

        q = influxql(query)
        v1_user = self.target.api is InfluxApi.V1 and self.target.username
        database = self.target.database if self.target.api is InfluxApi.V1 else self.target.bucket
        headers = {"User-Agent": "fleetpulse", "Accept": "application/json"}
        token = self._token_value()
        if token and not v1_user:
            headers["Authorization"] = f"Token {token}"
        auth = (self.target.username or "", token or "") if v1_user else None
        try:
            # POST keeps long names out of access logs and URL length limits.
            response = self.session.post(
                self.target.url.rstrip("/") + "/query",
                params={"db": database or "", "epoch": "ms"},
                data={"q": q},
                headers=headers,
                auth=auth,
                timeout=(self.connect_timeout, self.read_timeout),
            )
        except requests.RequestException as exc:
            raise BackendUnavailable(f"InfluxDB unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise BackendUnavailable(
                f"InfluxDB query answered {response.status_code}: {error_message(response.content)}"
            )
        try:
            return series_of_influx_answer(response.json(), query)
        except ValueError as exc:
            if "database not found" in str(exc):
                return []  # nothing written yet
            raise BackendUnavailable(f"InfluxDB query failed: {exc}") from exc


class TimestreamMetricReader:
    """Timestream Query SQL, every page of it (NextToken), within `max_pages`."""

    def __init__(
        self,
        client: TimestreamQueryClient,
        database: str,
        table: str,
        *,
        page_rows: int = 1000,
        max_pages: int = 200,
    ) -> None:
        self.client = client
        self.database = database
        self.table = table
        self.page_rows = page_rows
        self.max_pages = max_pages

    def read(self, query: SeriesQuery) -> list[Series]:
        from botocore.exceptions import BotoCoreError, ClientError

        sql = timestream_sql(query, self.database, self.table)
        columns: list[str] = []
        rows: list[Any] = []
        kwargs: dict[str, Any] = {"QueryString": sql, "MaxRows": self.page_rows}
        for _ in range(self.max_pages):
            try:
                page = self.client.query(**kwargs)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code == "ValidationException" and "does not exist" in str(exc):
                    return []  # no table yet: nothing written
                raise BackendUnavailable(f"Timestream query failed: {code}") from exc
            except BotoCoreError as exc:
                raise BackendUnavailable(f"Timestream unreachable: {type(exc).__name__}") from exc
            if not columns:
                columns = [c["Name"] for c in page.get("ColumnInfo", [])]
            rows.extend(page.get("Rows", []))
            token = page.get("NextToken")
            if not token:
                return series_of_rows(columns, rows, query) if columns else []
            # A page may be empty while the query still runs: follow the token.
            kwargs["NextToken"] = token
        raise BackendUnavailable(f"Timestream query still paging after {self.max_pages} pages")
