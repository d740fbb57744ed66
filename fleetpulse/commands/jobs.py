"""`fleetpulse jobs list|add|delete|show`: cron jobs and heartbeats that ping (docs/JOBS.md)."""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import quote

from fleetpulse.api import ApiClient, add_api_arguments
from fleetpulse.cli import CommandError
from fleetpulse.commands.views import print_rows


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("jobs", help="list, add, show and delete jobs")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="jobs with their status and ping URL")
    add_api_arguments(listing)
    listing.set_defaults(handler=list_jobs)

    add = actions.add_parser(
        "add",
        help="define a job (or replace its definition); prints its ping URL",
        description=(
            "Every: --period 1d. Cron: --schedule '30 2 * * *' --tz Europe/Paris. "
            "The ping URL stays the same when a job is redefined."
        ),
    )
    add_api_arguments(add)
    add.add_argument("slug", help="the job's name: lowercase letters, digits, - and _")
    add.add_argument("--period", help="expected every (30s, 5m, 1d); default 1d")
    add.add_argument("--schedule", help="a cron expression, instead of --period")
    add.add_argument("--tz", help="the IANA time zone of --schedule (default UTC)")
    add.add_argument("--grace", help="how late a ping may be before it pages (default 1h)")
    add.add_argument("--max-duration", help="a run started and not finished in this pages")
    add.add_argument("--min-duration", help="a run finished faster than this pages")
    add.add_argument("--severity", choices=("critical", "warning", "info"))
    add.add_argument(
        "--label", action="append", default=[], metavar="NAME=VALUE", help="(repeatable)"
    )
    add.add_argument("--summary", help="the alert's summary")
    add.add_argument("--runbook", help="a URL sent with the alert")
    add.set_defaults(handler=add_job)

    show = actions.add_parser("show", help="one job: definition, status, last run, log")
    add_api_arguments(show)
    show.add_argument("slug")
    show.set_defaults(handler=show_job)

    delete = actions.add_parser("delete", help="delete a job; its open alert resolves")
    add_api_arguments(delete)
    delete.add_argument("slug")
    delete.set_defaults(handler=delete_job)


def _path(slug: str) -> str:
    return f"/v1/jobs/{quote(slug, safe='')}"


def definition(args: argparse.Namespace) -> dict[str, Any]:
    """The PUT /v1/jobs/{slug} body the flags describe (the API validates the values)."""
    body: dict[str, Any] = {}
    for key in (
        "period",
        "schedule",
        "tz",
        "grace",
        "max_duration",
        "min_duration",
        "severity",
        "summary",
        "runbook",
    ):
        value = getattr(args, key)
        if value is not None:
            body[key] = value
    labels: dict[str, str] = {}
    for item in args.label:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CommandError(f"--label wants NAME=VALUE, got {item!r}")
        labels[name] = value
    if labels:
        body["labels"] = labels
    return body


def every(job: dict[str, Any]) -> str:
    if job.get("schedule"):
        return f"{job['schedule']} ({job['tz']})"
    return f"every {job['period']}"


def list_jobs(args: argparse.Namespace) -> int:
    jobs = ApiClient.from_args(args).get("/v1/jobs")["jobs"]
    if args.json:
        for j in jobs:
            print(json.dumps(j))
        return 0
    rows = [("JOB", "STATUS", "WHEN", "GRACE", "LAST RUN", "PING URL")]
    for j in jobs:
        run = j["last_run"]
        last = "-" if run is None else f"{run['finished_at'][:16]} exit {run['exit_status']}"
        rows.append((j["slug"], j["status"], every(j), j["grace"], last, j["ping_url"]))
    print_rows(rows, empty="no jobs")
    return 0


def add_job(args: argparse.Namespace) -> int:
    job = ApiClient.from_args(args).put(_path(args.slug), definition(args))
    if args.json:
        print(json.dumps(job))
    else:
        print(f"job {job['slug']} ({every(job)}, grace {job['grace']}): {job['ping_url']}")
    return 0


def show_job(args: argparse.Namespace) -> int:
    job = ApiClient.from_args(args).get(_path(args.slug))
    if args.json:
        print(json.dumps(job))
        return 0
    run = job["last_run"]
    lines = [
        f"job        {job['slug']}: {job['status']} ({job['reason']})",
        f"when       {every(job)}, grace {job['grace']}",
        f"ping url   {job['ping_url']}",
        f"next due   {job['next_expected_at'] or '-'}",
        f"running    {job['running']}",
    ]
    if run is not None:
        took = f" in {run['duration_s']}s" if run["duration_s"] is not None else ""
        lines.append(f"last run   {run['finished_at']} exit {run['exit_status']}{took}")
    print("\n".join(lines))
    if job["log"]:
        print("log:\n" + job["log"])
    return 0


def delete_job(args: argparse.Namespace) -> int:
    ApiClient.from_args(args).delete(_path(args.slug))
    if args.json:
        print(json.dumps({"deleted": args.slug}))
    else:
        print(f"job {args.slug} deleted")
    return 0
