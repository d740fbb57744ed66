"""`fleetpulse local up` and `fleetpulse local demo`: the whole stack on this machine, on an
embedded AWS (docs/LOCAL.md)."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from chalicelib.core.rules import RulesError
from chalicelib.settings import SettingsError
from fleetpulse.cli import CommandError

if TYPE_CHECKING:
    from fleetpulse.stack import LocalStack


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError("expected seconds between 0.1 and 3600")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("local", help="run the stack locally on an embedded AWS")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start everything; Ctrl-C stops it")
    up.add_argument("--port", type=int, default=8000, help="collector API port (default 8000)")
    up.add_argument(
        "--aws-port", type=int, default=0, help="embedded AWS port (default: any free port)"
    )
    up.add_argument(
        "--tick",
        type=positive_seconds,
        default=10.0,
        help="seconds between scheduled evaluations (default 10; AWS runs one a minute)",
    )
    up.add_argument(
        "--no-agent", action="store_true", help="do not start an agent reporting this machine"
    )
    up.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".fleetpulse"),
        help="where local.env, inbox.jsonl and the agent's log and spool go (default .fleetpulse)",
    )
    up.add_argument(
        "--store",
        choices=("influxdb", "timestream"),
        default="influxdb",
        help="the metric store: influxdb starts influxd here (default; history and its "
        "rules work), timestream uses the embedded AWS's (stores, runs no query); "
        "FLEETPULSE_STORE=influxdb with FLEETPULSE_INFLUX_* uses your own InfluxDB",
    )
    up.set_defaults(handler=up_command)

    demo = actions.add_parser(
        "demo", help="a scripted story on the local stack: host down, CPU alert, silence"
    )
    demo.add_argument("--port", type=int, default=0, help="collector API port (default: any free)")
    demo.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".fleetpulse/demo"),
        help="where the demo's local.env, rules and inbox go (default .fleetpulse/demo)",
    )
    demo.set_defaults(handler=demo_command)


def up_command(args: argparse.Namespace) -> int:
    from fleetpulse.stack import LocalStack, StackError

    stack = LocalStack(
        port=args.port,
        aws_port=args.aws_port,
        tick=args.tick,
        agent=not args.no_agent,
        state_dir=args.state_dir,
        metric_store=args.store,
    )
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    try:  # a configuration mistake is reported before anything starts
        stack.check()
    except (SettingsError, RulesError) as exc:
        raise CommandError(str(exc)) from None
    # SIGHUP too: a closed terminal must not leave the agent behind.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    try:
        stack.start()
    except StackError as exc:
        raise CommandError(str(exc)) from None
    print_banner(stack)
    stopping.wait()
    print("stopping: agent, schedule, API, inbox, embedded AWS...", flush=True)
    stack.stop()
    if stack.agent_host:
        said = "retired" if stack.agent_retired else "not retired (see the agent log)"
        print(f"the agent said goodbye: {stack.agent_host} {said}", flush=True)
    print("stopped.", flush=True)
    return 0


def print_banner(stack: LocalStack) -> None:
    d = stack.state_dir
    rules = (
        os.environ.get("FLEETPULSE_RULES") or "chalicelib/rules/default.yaml (the shipped rules)"
    )
    slack = "your webhook" if os.environ.get("FLEETPULSE_SLACK_WEBHOOK_URL") else "local inbox"
    pagerduty = "local inbox" if "FLEETPULSE_PAGERDUTY_URL" in stack.env else "your URL"
    lines = [
        f"fleetpulse is up on an embedded AWS ({stack.env.get('FLEETPULSE_AWS_ENDPOINT_URL')})",
        f"  collector API   {stack.url}",
        f"  status page     {stack.status_url}?token={stack.admin_token}",
        f"  tokens          {d / 'local.env'}  (FLEETPULSE_URL, FLEETPULSE_TOKEN, "
        "FLEETPULSE_ADMIN_TOKEN)",
        f"  notifications   printed below and appended to {d / 'inbox.jsonl'} "
        f"(Slack: {slack}, PagerDuty: {pagerduty})",
        f"  evaluation      every {stack.tick:g} s with {rules}",
        f"  metric store    {stack.store}",
    ]
    if stack.agent:
        lines.append(
            f"  agent           reporting this machine as {stack.agent_host} every "
            f"{stack.agent_send_interval:g} s; log {d / 'agent.log'}"
        )
    lines += [f"  note: {note}" for note in stack.notes]
    lines += [
        "",
        "  set -a; . " + str(d / "local.env") + "; set +a",
        "  fleetpulse hosts                 # and alerts, silences: the admin API",
        '  curl -s -H "Authorization: Bearer $FLEETPULSE_ADMIN_TOKEN" $FLEETPULSE_URL/v1/alerts',
        "  another agent:  FLEETPULSE_URL=$FLEETPULSE_URL FLEETPULSE_TOKEN=$FLEETPULSE_TOKEN "
        "FLEETPULSE_SPOOL_DIR=/tmp/spool FLEETPULSE_HOST=web-2 \\",
        "                  PYTHONPATH=agent python3 -m fleetpulse_agent run",
        '  Telegraf: [[outputs.influxdb_v2]] urls = ["$FLEETPULSE_URL"], '
        'token = "$FLEETPULSE_TOKEN" (docs/LOCAL.md)',
        "Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)


def demo_command(args: argparse.Namespace) -> int:
    from fleetpulse.demo import run_demo
    from fleetpulse.stack import StackError

    try:
        return run_demo(port=args.port, state_dir=args.state_dir)
    except (SettingsError, RulesError, StackError) as exc:
        raise CommandError(str(exc)) from None
