"""`fleetpulse local up`: the whole stack on this machine, on an embedded AWS."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from types import FrameType

from chalicelib.settings import Settings, SettingsError
from fleetpulse.cli import CommandError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("local", help="run the stack locally on an embedded AWS")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start everything; Ctrl-C stops it")
    up.add_argument("--port", type=int, default=8000, help="collector API port (default 8000)")
    up.add_argument(
        "--state-dir", type=Path, default=Path(".fleetpulse"), help="where local.env goes"
    )
    up.set_defaults(handler=up_command)


def up_command(args: argparse.Namespace) -> int:
    from fleetpulse.stack import LocalStack

    stack = LocalStack(port=args.port, state_dir=args.state_dir)
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    try:  # a configuration mistake is reported before anything starts
        Settings.from_env()
    except SettingsError as exc:
        raise CommandError(str(exc)) from None
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    stack.start()
    print(f"fleetpulse is up: collector API on {stack.url}")
    print(f"  metric store: {stack.store}")
    for note in stack.notes:
        print(f"  note: {note}")
    print(f"  tokens and endpoints: {args.state_dir / 'local.env'}")
    print("  try:  set -a; . .fleetpulse/local.env; set +a")
    print(
        '        curl -s -H "Authorization: Bearer $FLEETPULSE_TOKEN" -H "Content-Type: application/json" \\'
    )
    print(
        '             -d \'{"host": "demo-1", "points": [{"measurement": "cpu", "fields": {"user": 3.2}}]}\' \\'
    )
    print(f"             {stack.url}/v1/ingest")
    print("  or InfluxDB line protocol (Telegraf's outputs.influxdb_v2 works the same way):")
    print(
        '        curl -s -H "Authorization: Token $FLEETPULSE_TOKEN" '
        f"--data-binary 'cpu,host=demo-1 user=3.2' '{stack.url}/api/v2/write?precision=s'"
    )
    print("Ctrl-C stops everything.")
    stopping.wait()
    print("stopping...")
    stack.stop()
    return 0
