"""TimestreamMetricStore: points as multi-measure records in Timestream for LiveAnalytics."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from chalicelib.core.errors import AttemptFailed
from chalicelib.core.models import HostReport, Rejection
from chalicelib.core.ports import BackendUnavailable
from chalicelib.core.retry import GaveUp, Retrier, RetryPolicy
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
    retried under one RetryPolicy per write (`chalicelib.core.retry`): jittered
    exponential backoff, at most `max_wait` seconds asleep and `time_budget`
    seconds in all, since an API Gateway request has 29 s.
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
        time_budget: float = 15.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.database = database
        self.table = table
        self.retry = RetryPolicy(
            max_attempts=max_attempts,
            first_backoff=timedelta(seconds=base_delay),
            max_backoff=timedelta(seconds=1),
            deadline=timedelta(seconds=time_budget),
            min_attempt=timedelta(0),
            max_sleep=timedelta(seconds=max_wait),
        )
        self.sleep = sleep
        self.clock = clock

    def write(self, reports: Sequence[HostReport]) -> list[Rejection]:
        plan = plan_writes(reports)
        rejected = list(plan.rejected)
        retrier = Retrier(self.retry, self.clock, self.sleep, random.random)
        for request in plan.requests:
            rejected.extend(self._send(request, retrier))
        return rejected

    def _send(self, request: WriteRequest, retrier: Retrier) -> list[Rejection]:
        try:
            rejected, _ = retrier.run(lambda _: self._attempt(request), _log_retry)
        except GaveUp as exc:
            raise BackendUnavailable(
                f"Timestream still throttling after {exc.attempts} tries"
            ) from exc.error
        return rejected

    def _attempt(self, request: WriteRequest) -> list[Rejection]:
        from botocore.exceptions import BotoCoreError, ClientError

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
            if code in _RETRYABLE:
                raise AttemptFailed(f"Timestream {code}") from exc
            raise BackendUnavailable(f"Timestream {code}: {exc}") from exc
        except BotoCoreError as exc:
            raise BackendUnavailable(f"Timestream unreachable: {exc}") from exc


def _log_retry(attempt: int, error: AttemptFailed, wait: timedelta | None) -> None:
    if wait is not None:
        logger.warning(
            "timestream throttled; retrying", extra={"attempt": attempt, "code": error.reason}
        )


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
