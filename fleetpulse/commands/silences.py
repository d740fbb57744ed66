"""`fleetpulse silences list|add|delete`: silences and maintenance windows."""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import quote

from fleetpulse.api import ApiClient, add_api_arguments
from fleetpulse.cli import CommandError
from fleetpulse.commands.views import print_rows


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("silences", help="list, add and delete silences")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="silences not yet expired")
    add_api_arguments(listing)
    listing.add_argument("--all", action="store_true", help="include expired silences")
    listing.set_defaults(handler=list_silences)

    add = actions.add_parser(
        "add",
        help="silence alerts matching labels, once or every week",
        description=(
            "One-shot: --duration 2h (from now) or --start/--end (ISO-8601 with offset). "
            "Weekly: --every sun --from 02:00 --to 04:00 [--timezone Europe/Paris]."
        ),
    )
    add_api_arguments(add)
    add.add_argument(
        "--match",
        action="append",
        default=[],
        metavar="LABEL=GLOB",
        help="host=web-*, rule=disk-full, severity=warning, any host tag; ! negates (repeatable)",
    )
    add.add_argument("--duration", help="how long from now (30m, 2h, 1d)")
    add.add_argument("--start", help="start, ISO-8601 (default now)")
    add.add_argument("--end", help="end, ISO-8601")
    add.add_argument(
        "--every", action="append", default=[], metavar="DAY", help="mon..sun or daily"
    )
    add.add_argument("--from", dest="window_from", metavar="HH:MM", help="weekly window start")
    add.add_argument("--to", dest="window_to", metavar="HH:MM", help="weekly window end")
    add.add_argument("--timezone", default="UTC", help="for --every (default UTC)")
    add.add_argument("--comment", default="", help="why")
    add.add_argument("--author", default="", help="who (default: the token's id)")
    add.set_defaults(handler=add_silence)

    delete = actions.add_parser("delete", help="end a silence now")
    add_api_arguments(delete)
    delete.add_argument("silence_id")
    delete.set_defaults(handler=delete_silence)


def list_silences(args: argparse.Namespace) -> int:
    client = ApiClient.from_args(args)
    silences = client.get("/v1/silences", {"state": "all" if args.all else ""})["silences"]
    if args.json:
        for s in silences:
            print(json.dumps(s))
        return 0
    rows = [("ID", "STATE", "MATCHERS", "WHEN", "CREATED BY", "COMMENT")]
    for s in silences:
        matchers = ",".join(f"{k}={v}" for k, v in s["matchers"].items())
        rows.append(
            (s["silence_id"], s["state"], matchers, when(s), s["created_by"] or "-", s["comment"])
        )
    print_rows(rows, empty="no silences")
    return 0


def when(s: dict[str, Any]) -> str:
    schedule = s.get("schedule")
    if schedule:
        days = ",".join(schedule["days"]) if len(schedule["days"]) < 7 else "daily"
        text = f"{days} {schedule['start']}-{schedule['end']} {schedule['timezone']}"
        return text + (f" until {s['ends_at'][:16]}" if s.get("ends_at") else "")
    return f"{s['starts_at'][:16]} -> {(s.get('ends_at') or '')[:16]}"


def silence_body(args: argparse.Namespace) -> dict[str, Any]:
    """The POST /v1/silences body the flags describe (the API validates the values)."""
    matchers: dict[str, str] = {}
    for item in args.match:
        label, sep, pattern = item.partition("=")
        if not sep or not label:
            raise CommandError(f"--match wants LABEL=GLOB, got {item!r}")
        matchers[label] = pattern
    if not matchers:
        raise CommandError("say what to silence: --match host=web-* (repeatable)")
    body: dict[str, Any] = {"matchers": matchers}
    if args.comment:
        body["comment"] = args.comment
    if args.author:
        body["created_by"] = args.author
    if args.start:
        body["starts_at"] = args.start
    if args.every:
        if not (args.window_from and args.window_to):
            raise CommandError("--every needs --from HH:MM and --to HH:MM")
        days = [d.strip() for item in args.every for d in item.split(",") if d.strip()]
        body["schedule"] = {
            "days": "*" if days == ["daily"] else days,
            "start": args.window_from,
            "end": args.window_to,
            "timezone": args.timezone,
        }
    elif args.window_from or args.window_to:
        raise CommandError("--from/--to go with --every DAY")
    if args.duration and args.end:
        raise CommandError("give --duration or --end, not both")
    if args.duration:
        body["duration"] = args.duration
    elif args.end:
        body["ends_at"] = args.end
    elif not args.every:
        raise CommandError("say until when: --duration 2h, --end ISO-8601, or --every DAY")
    return body


def add_silence(args: argparse.Namespace) -> int:
    client = ApiClient.from_args(args)
    created = client.post("/v1/silences", silence_body(args))
    if args.json:
        print(json.dumps(created))
    else:
        print(f"silence {created['silence_id']} added ({created['state']}): {when(created)}")
    return 0


def delete_silence(args: argparse.Namespace) -> int:
    client = ApiClient.from_args(args)
    client.delete(f"/v1/silences/{quote(args.silence_id, safe='')}")
    if args.json:
        print(json.dumps({"deleted": args.silence_id}))
    else:
        print(f"silence {args.silence_id} deleted; what it held back is notified next minute")
    return 0
