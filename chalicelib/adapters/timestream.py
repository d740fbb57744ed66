"""TimestreamMetricStore: points as multi-measure records in Timestream for LiveAnalytics."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from chalicelib.core.models import HostReport, Rejection
from chalicelib.core.ports import BackendUnavailable
from chalicelib.core.timestream import WriteRequest, plan_writes

if TYPE_CHECKING:
    from mypy_boto3_timestream_write import TimestreamWriteClient

logger = Logger(child=True)

_RETRYABLE = frozenset({"ThrottlingException", "InternalServerException", "ServiceUnavailable"})


class TimestreamMetricStore:
    """Writes host reports to one Timestream table.

    Every limit Timestream has is checked before sending (see
    `chalicelib.core.timestream`); what Timestream still refuses comes back
    per record in RejectedRecords and is reported per point. Throttling is
    retried with jittered exponential backoff within `max_wait` seconds.
    """

    def __init__(
        self,
        client: TimestreamWriteClient,
        database: str,
        table: str,
        *,
        max_attempts: int = 5,
        base_delay: float = 0.1,
        max_wait: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.database = database
        self.table = table
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_wait = max_wait
        self.sleep = sleep

    def write(self, reports: Sequence[HostReport]) -> list[Rejection]:
        plan = plan_writes(reports)
        rejected = list(plan.rejected)
        for request in plan.requests:
            rejected.extend(self._send(request))
        return rejected

    def _send(self, request: WriteRequest) -> list[Rejection]:
        from botocore.exceptions import BotoCoreError, ClientError

        waited = 0.0
        for attempt in range(1, self.max_attempts + 1):
            try:
                self.client.write_records(**request.params(self.database, self.table))
                return []
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code == "RejectedRecordsException":
                    return _rejections(request, exc.response)
                if code == "ValidationException":
                    # A limit this code does not know about: the points are at
                    # fault, not the backend, so they are refused, not retried.
                    message = exc.response.get("Error", {}).get("Message", "")
                    logger.error("timestream refused a request", extra={"reason": message})
                    return [
                        Rejection(p.index, p.path, f"{p.path}: refused by Timestream: {message}")
                        for p in request.sources
                    ]
                if code not in _RETRYABLE:
                    raise BackendUnavailable(f"Timestream {code}: {exc}") from exc
                delay = min(self.base_delay * 2 ** (attempt - 1), 1.0) * random.uniform(0.5, 1.0)  # noqa: S311
                if attempt == self.max_attempts or waited + delay > self.max_wait:
                    raise BackendUnavailable(
                        f"Timestream still throttling after {attempt} tries"
                    ) from exc
                logger.warning(
                    "timestream throttled; retrying", extra={"attempt": attempt, "code": code}
                )
                self.sleep(delay)
                waited += delay
            except BotoCoreError as exc:
                raise BackendUnavailable(f"Timestream unreachable: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover


def _rejections(request: WriteRequest, response: Mapping[str, Any]) -> list[Rejection]:
    out = []
    for rr in response.get("RejectedRecords", []):
        index = rr.get("RecordIndex")
        if not isinstance(index, int) or not 0 <= index < len(request.sources):
            continue
        p = request.sources[index]
        reason = rr.get("Reason", "rejected")
        if "ExistingVersion" in rr:
            # Only a different value for the same series and instant gets here:
            # an identical resend is accepted by Timestream and never reported.
            reason = f"a different value is already stored for this series and time ({reason})"
        out.append(Rejection(p.index, p.path, f"{p.path}: rejected by Timestream: {reason}"))
    return out
