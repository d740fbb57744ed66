"""`fleetpulse alerts`: open alerts (or all), like `amtool alert query`."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from fleetpulse.api import ApiClient, add_api_arguments
from fleetpulse.commands.views import age, print_rows


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("alerts", help="list alerts (pending and firing by default)")
    add_api_arguments(parser)
    parser.add_argument(
        "--state", help="pending, firing, resolved (comma-separated) or all; default: open ones"
    )
    parser.add_argument("--host", help="only hosts matching this glob")
    parser.add_argument("--severity", help="only these severities (critical,warning)")
    parser.set_defaults(handler=list_alerts)


def list_alerts(args: argparse.Namespace) -> int:
    client = ApiClient.from_args(args)
    params = {"state": args.state or "", "host": args.host or "", "severity": args.severity or ""}
    alerts = client.get("/v1/alerts", params)["alerts"]
    if args.json:
        for a in alerts:
            print(json.dumps(a))
        return 0
    now = datetime.now(UTC)
    rows = [("STATE", "SEVERITY", "HOST", "RULE", "SINCE", "SUMMARY")]
    for a in alerts:
        state = a["state"] + (" (silenced)" if a["silenced_by"] else "")
        rows.append(
            (state, a["severity"], a["host"], a["rule"], age(a["started_at"], now), a["summary"])
        )
    print_rows(rows, empty="no alerts")
    return 0
