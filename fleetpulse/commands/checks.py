"""`fleetpulse checks list|apply FILE|delete NAME|run NAME`: remote checks (docs/CHECKS.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from urllib.parse import quote

from fleetpulse.api import ApiClient, add_api_arguments
from fleetpulse.cli import CommandError
from fleetpulse.commands.views import print_rows


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("checks", help="list, apply, delete and run remote checks")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="every check: the file's and the API's")
    add_api_arguments(listing)
    listing.set_defaults(handler=list_checks)

    apply = actions.add_parser(
        "apply", help="validate a checks file, then PUT each of its checks through the API"
    )
    add_api_arguments(apply)
    apply.add_argument("file", type=Path)
    apply.add_argument("--location", default="us-east-1", help="default location for validation")
    apply.set_defaults(handler=apply_checks)

    delete = actions.add_parser("delete", help="delete a check registered through the API")
    add_api_arguments(delete)
    delete.add_argument("name")
    delete.set_defaults(handler=delete_check)

    run = actions.add_parser(
        "run", help="run one check now from here and print each step with its time"
    )
    add_api_arguments(run)
    run.add_argument("name")
    run.add_argument(
        "--file", type=Path, help="take the check from this checks file instead of the API"
    )
    run.add_argument("--location", default="local", help="the location to report (default local)")
    run.set_defaults(handler=run_check)


def list_checks(args: argparse.Namespace) -> int:
    checks = ApiClient.from_args(args).get("/v1/checks")["checks"]
    if args.json:
        for c in checks:
            print(json.dumps(c))
        return 0
    rows = [("NAME", "TYPE", "TARGET", "EVERY", "LOCATIONS", "QUORUM", "SOURCE")]
    for c in checks:
        target = c.get("url") or c.get("query") or f"{c.get('host')}:{c.get('port')}"
        rows.append(
            (
                c["name"],
                c["type"],
                target,
                c["every"],
                ",".join(c["locations"]),
                str(c["quorum"]),
                c["source"],
            )
        )
    print_rows(rows, empty="no checks")
    return 0


def _load(path: Path, location: str) -> list[dict[str, object]]:
    from chalicelib.adapters.checks_file import load_checks
    from chalicelib.core.checks import ChecksError

    try:
        return [c.as_json() for c in load_checks(path, location)]
    except ChecksError as exc:
        raise CommandError(str(exc)) from None


def apply_checks(args: argparse.Namespace) -> int:
    checks = _load(args.file, args.location)
    client = ApiClient.from_args(args)
    for check in checks:
        client.put(f"/v1/checks/{quote(str(check['name']), safe='')}", check)
        print(f"applied {check['name']}")
    return 0


def delete_check(args: argparse.Namespace) -> int:
    ApiClient.from_args(args).delete(f"/v1/checks/{quote(args.name, safe='')}")
    print(f"deleted {args.name}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from chalicelib.adapters.probes import probe
    from chalicelib.core.checks import ChecksError, parse_check

    if args.file is not None:
        specs = [c for c in _load(args.file, args.location) if c["name"] == args.name]
        if not specs:
            raise CommandError(f"{args.file}: no check named {args.name!r}")
        spec: object = specs[0]
    else:
        spec = ApiClient.from_args(args).get(f"/v1/checks/{quote(args.name, safe='')}")
    if isinstance(spec, dict):
        spec.pop("source", None)
    try:
        check = parse_check(spec, args.location)
    except ChecksError as exc:
        raise CommandError(str(exc)) from None
    result = probe(check, args.location)
    if args.json:
        print(json.dumps(result.as_json()))
        return 0 if result.up else 2
    print(f"{check.name} ({check.type.value}) {check.target_host}")
    for phase, ms in result.phases:
        print(f"  {phase.value:<8} {ms:9.1f} ms")
    for key, value in sorted(result.fields.items()):
        print(f"  {key:<15} {value}")
    verdict = "up" if result.up else f"DOWN ({result.severity}): {result.reason}"
    print(f"  verdict  {result.latency_ms:9.1f} ms  {verdict}")
    return 0 if result.up else 2
