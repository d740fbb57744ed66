"""The jobs table: one item per job, keyed by slug, found by ping id through a GSI.

A ping by slug (`/ping/<key>/<slug>`) is one consistent GetItem and one
conditional write. A ping by id (`/ping/<uuid>`) queries the `ping_id` index
instead, whose projection is the whole item, so it too is one read and one
write; the index is eventually consistent, and a write made from a stale copy
fails its condition on `version` and is retried from a consistent read.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from chalicelib.adapters.dynamodb.common import (
    backend,
    conditional_write,
    from_item,
    scan_decoded,
    to_item,
)
from chalicelib.core.instants import instant_of_ms, ms_of_instant
from chalicelib.core.jobs import PING_BURST, Job, JobSpec, LastRun, parse_spec

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

TABLE = "jobs"
PING_ID_INDEX = "ping_id"
_NO_RID = "-"  # a run started without ?rid= (a map key cannot be empty)


class LastRunItem(TypedDict):
    finished_at: int  # epoch ms
    ok: bool
    exit_status: NotRequired[int]
    duration_ms: NotRequired[int]


class JobItem(TypedDict):
    slug: str
    ping_id: str
    version: int
    created_at: int  # epoch ms
    definition: dict[str, Any]  # JobSpec.as_json() without nulls
    last_ping_at: NotRequired[int]
    last_run: NotRequired[LastRunItem]
    runs: NotRequired[dict[str, int]]  # rid -> started, epoch ms
    log: NotRequired[str]
    tail: NotRequired[str]  # only when the body was longer than the log keeps
    bucket: NotRequired[Any]  # Decimal: pings left in the rate limiter
    bucket_at: NotRequired[int]


def job_to_item(job: Job) -> JobItem:
    from decimal import Decimal

    definition = {k: v for k, v in job.spec.as_json().items() if v not in (None, {})}
    item: JobItem = {
        "slug": job.spec.slug,
        "ping_id": job.ping_id,
        "version": job.version,
        "created_at": ms_of_instant(job.created_at),
        "definition": definition,
        "bucket": Decimal(repr(round(job.bucket, 3))),
    }
    if job.last_ping_at is not None:
        item["last_ping_at"] = ms_of_instant(job.last_ping_at)
    if job.bucket_at is not None:
        item["bucket_at"] = ms_of_instant(job.bucket_at)
    if job.last_run is not None:
        run = job.last_run
        last: LastRunItem = {"finished_at": ms_of_instant(run.finished_at), "ok": run.ok}
        if run.exit_status is not None:
            last["exit_status"] = run.exit_status
        if run.duration is not None:
            last["duration_ms"] = run.duration // timedelta(milliseconds=1)
        item["last_run"] = last
    if job.runs:
        item["runs"] = {(rid or _NO_RID): ms_of_instant(at) for rid, at in job.runs.items()}
    if job.log:
        item["log"] = job.log
    if job.tail:
        item["tail"] = job.tail
    return item


def job_from_item(item: dict[str, Any]) -> Job:
    slug = str(item["slug"])
    spec: JobSpec = parse_spec(slug, dict(item["definition"]))
    run = None
    raw_run = item.get("last_run")
    if raw_run:
        run = LastRun(
            finished_at=instant_of_ms(int(raw_run["finished_at"])),
            ok=bool(raw_run["ok"]),
            exit_status=int(raw_run["exit_status"]) if "exit_status" in raw_run else None,
            duration=timedelta(milliseconds=int(raw_run["duration_ms"]))
            if "duration_ms" in raw_run
            else None,
        )
    return Job(
        spec=spec,
        ping_id=str(item["ping_id"]),
        created_at=instant_of_ms(int(item["created_at"])),
        version=int(item["version"]),
        last_ping_at=instant_of_ms(int(item["last_ping_at"])) if "last_ping_at" in item else None,
        last_run=run,
        runs={
            ("" if rid == _NO_RID else rid): instant_of_ms(int(ms))
            for rid, ms in (item.get("runs") or {}).items()
        },
        log=str(item.get("log", "")),
        tail=str(item.get("tail", "")),
        bucket=float(item.get("bucket", PING_BURST)),  # a new job starts with a full bucket
        bucket_at=instant_of_ms(int(item["bucket_at"])) if "bucket_at" in item else None,
    )


class DynamoDBJobStore:
    """Jobs (key `slug`; GSI `ping_id`). A ClientError is BackendUnavailable, except a
    failed condition, which is a lost race: False."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self.client = client
        self.table = table

    def get(self, slug: str) -> Job | None:
        with backend(TABLE):
            response = self.client.get_item(
                TableName=self.table, Key={"slug": {"S": slug}}, ConsistentRead=True
            )
        item = response.get("Item")
        return job_from_item(from_item(item)) if item else None

    def by_ping_id(self, ping_id: str) -> Job | None:
        with backend(TABLE):
            response = self.client.query(
                TableName=self.table,
                IndexName=PING_ID_INDEX,
                KeyConditionExpression="ping_id = :p",
                ExpressionAttributeValues={":p": {"S": ping_id}},
                Limit=1,
            )
        items = response.get("Items") or []
        return job_from_item(from_item(items[0])) if items else None

    def scan(self) -> list[Job]:
        """Every job; an unreadable item is logged and skipped (one bad item must not
        stop an evaluation)."""
        return scan_decoded(
            self.client, self.table, TABLE, lambda raw: job_from_item(from_item(raw)), True
        )

    def define(self, spec: JobSpec, ping_id: str, now: datetime) -> Job:
        definition = {k: v for k, v in spec.as_json().items() if v not in (None, {})}
        with backend(TABLE):
            response = self.client.update_item(
                TableName=self.table,
                Key={"slug": {"S": spec.slug}},
                # `definition` and `version` are reserved words in expressions.
                UpdateExpression=(
                    "SET #d = :d, #p = if_not_exists(#p, :p), "
                    "#c = if_not_exists(#c, :now), #v = if_not_exists(#v, :zero) + :one"
                ),
                ExpressionAttributeNames={
                    "#d": "definition",
                    "#p": "ping_id",
                    "#c": "created_at",
                    "#v": "version",
                },
                ExpressionAttributeValues=to_item(
                    {
                        ":d": definition,
                        ":p": ping_id,
                        ":now": ms_of_instant(now),
                        ":zero": 0,
                        ":one": 1,
                    }
                ),
                ReturnValues="ALL_NEW",
            )
        return job_from_item(from_item(response["Attributes"]))

    def create(self, job: Job) -> bool:
        return conditional_write(
            TABLE,
            lambda: self.client.put_item(
                TableName=self.table,
                Item=to_item(dict(job_to_item(job))),
                ConditionExpression="attribute_not_exists(slug)",
            ),
        )

    def put(self, job: Job, expected_version: int) -> bool:
        return conditional_write(
            TABLE,
            lambda: self.client.put_item(
                TableName=self.table,
                Item=to_item(dict(job_to_item(job))),
                ConditionExpression="#v = :v AND ping_id = :p",
                ExpressionAttributeNames={"#v": "version"},
                ExpressionAttributeValues={
                    ":v": {"N": str(expected_version)},
                    ":p": {"S": job.ping_id},
                },
            ),
        )

    def delete(self, slug: str) -> bool:
        return conditional_write(
            TABLE,
            lambda: self.client.delete_item(
                TableName=self.table,
                Key={"slug": {"S": slug}},
                ConditionExpression="attribute_exists(slug)",
            ),
        )
