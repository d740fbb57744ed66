"""`fleetpulse rules check [FILE]`: validate a rules file before it ships (offline)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fleetpulse.cli import CommandError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("rules", help="check an alerting rules file")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate a rules file; exit 1 naming each problem")
    check.add_argument(
        "path", nargs="?", help="the file (default: $FLEETPULSE_RULES, else the shipped default)"
    )
    check.set_defaults(handler=check_rules)


def check_rules(args: argparse.Namespace) -> int:
    import os

    from chalicelib.adapters.rules_file import load_rules, rules_path
    from chalicelib.core.rules import RulesError

    path = Path(args.path) if args.path else rules_path(os.environ.get("FLEETPULSE_RULES"))
    try:
        rules = load_rules(path)
    except RulesError as exc:
        raise CommandError(str(exc)) from None
    names = ", ".join(r.name for r in rules.rules) or "none"
    print(f"{path}: ok, {len(rules.rules)} threshold rules ({names})")
    return 0
