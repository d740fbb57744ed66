"""The `fleetpulse` operator command.

Each subcommand lives in its own module under `fleetpulse.commands` and exposes
`register(subparsers)`; the module adds its parser and sets `handler` to a
function taking the parsed arguments and returning an exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Order is the order `fleetpulse --help` lists them in.
COMMAND_MODULES: tuple[str, ...] = (
    "fleetpulse.commands.tokens",
    "fleetpulse.commands.notify",
    "fleetpulse.commands.hosts",
    "fleetpulse.commands.alerts",
    "fleetpulse.commands.silences",
    "fleetpulse.commands.jobs",
    "fleetpulse.commands.rules",
    "fleetpulse.commands.checks",
    "fleetpulse.commands.local",
    "fleetpulse.commands.userdata",
    "fleetpulse.commands.deploy",
)


class CommandError(Exception):
    """An operator mistake or an unreachable backend: printed, exit status 1."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleetpulse",
        description="Operate a fleetpulse deployment: tokens, hosts, alerts, notifications, the local stack, deploys.",
    )
    parser.add_argument(
        "--stage",
        default=None,
        help="deployment stage whose resource names to use (default: $FLEETPULSE_STAGE or dev)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.handler(args)
    except CommandError as exc:
        print(f"fleetpulse: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
