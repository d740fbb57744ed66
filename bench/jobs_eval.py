#!/usr/bin/env python3
"""Jobs on the evaluate tick, and pings: compute per evaluation, and requests per ping.

Two figures, measured in one run:

- pure compute: `job_alert_changes` over N jobs (half `period`, half cron
  schedules in assorted time zones, 2% failed), median of several runs, with
  the share spent reading cron schedules (cronsim) and the cost per job;
- DynamoDB requests per ping through the whole use-case over moto, counted
  with a botocore hook: by uuid, by slug, a ping refused by the rate limit.

    .venv/bin/python bench/jobs_eval.py [--jobs 1000 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chalicelib.core.alerts import Timing
from chalicelib.core.jobs import (
    Ping,
    PingKind,
    apply_ping,
    job_alert_changes,
    job_status,
    new_job,
    parse_spec,
)

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
ZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Sydney")


def jobs(n: int) -> list[Any]:
    out = []
    for i in range(n):
        raw: dict[str, Any] = (
            {"period": f"{1 + i % 60}m", "grace": "5m"}
            if i % 2
            else {"schedule": f"{i % 60} {i % 24} * * *", "tz": ZONES[i % len(ZONES)]}
        )
        job = new_job(parse_spec(f"job-{i}", raw), f"00000000-0000-4000-8000-{i:012d}", T0)
        kind = PingKind.FAIL if i % 50 == 0 else PingKind.SUCCESS
        pinged = apply_ping(job, Ping(kind, T0 - timedelta(minutes=i % 30))).job
        out.append(pinged)
    return out


def compute(n: int, runs: int) -> None:
    js = jobs(n)
    now = T0 + timedelta(minutes=1)
    kwargs: dict[str, Any] = {
        "timing": Timing(),
        "lease": timedelta(seconds=30),
        "retention": timedelta(hours=24),
        "status_url": None,
    }
    times, status_times = [], []
    changes: list[Any] = []
    for _ in range(runs):
        started = time.perf_counter()
        changes = job_alert_changes(js, {}, lambda r: False, now, **kwargs)
        times.append(time.perf_counter() - started)
        started = time.perf_counter()
        for j in js:
            job_status(j, now)
        status_times.append(time.perf_counter() - started)
    total, status = statistics.median(times), statistics.median(status_times)
    cron = [j for j in js if j.spec.schedule]
    started = time.perf_counter()
    for j in cron:
        job_status(j, now)
    cron_t = time.perf_counter() - started
    periodic = [j for j in js if not j.spec.schedule]
    started = time.perf_counter()
    for j in periodic:
        job_status(j, now)
    period_t = time.perf_counter() - started
    print(
        f"{n:>6} jobs: job_alert_changes {total * 1000:7.1f} ms ({total / n * 1e6:5.1f} µs/job),"
        f" {len(changes)} changes; job_status alone {status * 1000:6.1f} ms;"
        f" a cron job costs {cron_t / max(len(cron), 1) / (period_t / max(len(periodic), 1)):.0f}x"
        " a period job"
    )


def requests_per_ping() -> None:
    import os

    from moto import mock_aws

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    from chalicelib.adapters.aws import AwsClients
    from chalicelib.settings import Settings
    from chalicelib.wiring import Services
    from fleetpulse.resources import create_all

    with mock_aws():
        settings = Settings.from_env({"FLEETPULSE_STORE": "timestream"})
        services = Services(settings, AwsClients(region="us-east-1"), clock=lambda: T0)
        create_all(settings, services.clients)
        sent: Counter[str] = Counter()
        ddb = services.clients.get("dynamodb")
        ddb.meta.events.register(
            "provide-client-params.dynamodb.*",
            lambda model, **_: sent.update([model.name]),
        )
        from chalicelib.core.tokens import (
            ID_BYTES,
            SECRET_BYTES,
            Scope,
            TokenRecord,
            mint,
            token_hash,
        )

        token_id, key = mint(os.urandom(ID_BYTES + SECRET_BYTES))
        services.token_store.put(
            TokenRecord(token_id, token_hash(key), Scope.parse("ping"), "bench", T0)
        )
        view = services.jobs.define("backup", {"period": "1h"}, T0, "http://x")
        uuid = view["ping_url"].rsplit("/", 1)[1]

        def measure(what: str, segments: tuple[str, ...]) -> None:
            sent.clear()
            reply = services.jobs.ping(segments, {}, b"", T0)
            print(f"  {what:<34} {reply.status}  {dict(sent)}")

        print("DynamoDB requests per ping (moto):")
        measure("by uuid", (uuid,))
        measure("by uuid, /start", (uuid, "start"))
        measure("by slug (token cached afterwards)", (key, "backup"))
        measure("by slug", (key, "backup", "0"))
        job = services.job_store.get("backup")
        assert job is not None
        services.job_store.put(
            replace(job, version=job.version + 1, bucket=0.0, bucket_at=T0), job.version
        )
        measure("refused by the rate limit", (uuid,))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for n in args.jobs:
        compute(n, args.runs)
    requests_per_ping()


if __name__ == "__main__":
    main()
