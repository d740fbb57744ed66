"""`fleetpulse hosts [pause|resume NAME]`: the fleet as the alerting engine sees it."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from urllib.parse import quote

from fleetpulse.api import ApiClient, add_api_arguments
from fleetpulse.commands.views import age, print_rows


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("hosts", help="list hosts with their derived state")
    add_api_arguments(parser)
    parser.add_argument("--state", help="only these states, comma-separated (up,late,down,...)")
    parser.add_argument("--host", help="only hosts matching this glob (web-*)")
    parser.set_defaults(handler=list_hosts)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    for name, text in (
        ("pause", "stop heartbeat alerts for a host until it posts again"),
        ("resume", "undo a pause"),
    ):
        action = actions.add_parser(name, help=text)
        add_api_arguments(action, nested=True)
        action.add_argument("name", help="the host")
        action.set_defaults(handler=pause_host, paused=name == "pause")


def list_hosts(args: argparse.Namespace) -> int:
    client = ApiClient.from_args(args)
    hosts = client.get("/v1/hosts", {"state": args.state or "", "host": args.host or ""})["hosts"]
    if args.json:
        for h in hosts:
            print(json.dumps(h))
        return 0
    now = datetime.now(UTC)
    rows = [("HOST", "STATE", "LAST SEEN", "INTERVAL", "AGENT", "TAGS")]
    for h in hosts:
        tags = ",".join(f"{k}={v}" for k, v in sorted(h["tags"].items()))
        rows.append(
            (
                h["host"],
                h["state"],
                age(h["last_seen_at"], now),
                f"{h['interval_s']:g}s",
                h.get("agent_version") or "-",
                tags or "-",
            )
        )
    print_rows(rows, empty="no hosts")
    return 0


def pause_host(args: argparse.Namespace) -> int:
    client = ApiClient.from_args(args)
    path = f"/v1/hosts/{quote(args.name, safe='')}/pause"
    result = client.post(path) if args.paused else client.delete(path)
    if args.json:
        print(json.dumps(result))
    elif args.paused:
        print(f"{args.name} paused: no heartbeat alert until it posts again")
    else:
        print(f"{args.name} resumed")
    return 0
