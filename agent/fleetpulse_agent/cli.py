"""The `fleetpulse-agent` command: run, once, status, event, install.

Exit status: 0 success; 1 failure (status: a check failed; once: batches are
still waiting in the spool); 2 unusable configuration or arguments; 3 (event)
the event is spooled but not delivered yet.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

from fleetpulse_agent import AGENT_NAME, __version__
from fleetpulse_agent.config import DEFAULT_PATH, ConfigError, load, valid_name
from fleetpulse_agent.log import log

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations stay strings at run time (PEP 563): typing is never loaded
    from typing import Any, List, Optional


def _ttl_ms(raw: str) -> int:
    """`90000` (seconds), `90s`, `25m`, `26h`, `2d` or `500ms` as milliseconds."""
    m = re.match(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?\Z", raw.strip())
    if not m:
        raise argparse.ArgumentTypeError("expected seconds, or a number with ms, s, m, h or d")
    scale = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000}[m.group(2) or "s"]
    return int(float(m.group(1)) * scale)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=AGENT_NAME, description="fleetpulse host agent: collect, spool, send."
    )
    parser.add_argument("--version", action="version", version="%s %s" % (AGENT_NAME, __version__))
    parser.add_argument(
        "--config", help="config file (default $FLEETPULSE_CONFIG or %s)" % DEFAULT_PATH
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    sub.add_parser("run", help="run as a daemon: sample, aggregate, spool and send")
    once = sub.add_parser("once", help="one cycle for cron: sample, spool, send with the backlog")
    once.add_argument(
        "--budget", type=float, default=40.0, help="seconds to spend sending (default 40)"
    )
    status = sub.add_parser("status", help="settings, last send and error, spool, reachability")
    status.add_argument("--offline", action="store_true", help="skip the network checks")
    event = sub.add_parser("event", help="send a service event (a heartbeat with --ttl)")
    event.add_argument("--service", required=True, help="service name, e.g. backup")
    event.add_argument("--status", default="ok", choices=("ok", "warning", "critical", "unknown"))
    event.add_argument(
        "--ttl",
        type=_ttl_ms,
        help="alert when no new event comes within this (seconds, or 90s/25m/26h/2d/500ms)",
    )
    event.add_argument("--description", default="", help="free text")
    event.add_argument("--value", type=float, help="a number to go with the event")
    event.add_argument("--tag", action="append", default=[], help="a label (repeatable)")
    event.add_argument("--timeout", type=float, default=10.0, help="seconds to try delivering now")
    inst = sub.add_parser("install", help="install the agent, its config and a systemd unit")
    inst.add_argument("--url", help="collector base URL")
    inst.add_argument("--token", help="ingest token")
    inst.add_argument("--host", help="host name (default: the machine's name at each start)")
    inst.add_argument("--tags", help="host tags, e.g. role=web,env=prod")
    inst.add_argument("--set", action="append", metavar="KEY=VALUE", help="any other setting")
    inst.add_argument("--root", help="install under this directory (default $FLEETPULSE_ROOT or /)")
    inst.add_argument("--pyz", help="zipapp to install (default: the one running, or built now)")
    inst.add_argument("--python", help="interpreter for the unit (default: this one)")
    inst.add_argument("--no-start", action="store_true", help="do not touch systemctl")
    return parser


def setup_logging(level: str) -> None:
    # journald stamps each line itself; a terminal or a cron mail wants the time.
    log.setup(level, stamp=not os.environ.get("JOURNAL_STREAM"))


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "install":
            from fleetpulse_agent.install import install

            setup_logging("info")
            return install(args)
        cfg = load(args.config)
    except ConfigError as exc:
        print("%s: %s" % (AGENT_NAME, exc), file=sys.stderr)
        return 2
    except OSError as exc:
        print("%s: %s" % (AGENT_NAME, exc), file=sys.stderr)
        return 1
    level = "debug" if args.verbose else cfg.log_level
    if args.command in ("once", "event") and not args.verbose:
        level = "warning" if level in ("debug", "info") else level  # cron mails whatever is printed
    setup_logging(level)
    if args.command == "status":
        from fleetpulse_agent.status import report

        return report(cfg, check_network=not args.offline)
    from fleetpulse_agent.agent import Agent

    agent = Agent(cfg)
    if args.command == "run":
        agent.run()
        return 0
    if args.command == "once":
        return 0 if agent.once(args.budget) else 1
    return send_event(agent, args)


def send_event(a: Any, args: argparse.Namespace) -> int:
    from fleetpulse_agent.deliver import envelope

    event = {"service": args.service, "status": args.status, "time": int(time.time() * 1000)}
    if not valid_name(args.service):
        print(
            "%s: --service %r: use letters, digits and _ . - /" % (AGENT_NAME, args.service),
            file=sys.stderr,
        )
        return 2
    if args.ttl:
        event["ttl"] = args.ttl
    if args.description:
        event["description"] = args.description
    if args.value is not None:
        event["value"] = args.value
    if args.tag:
        event["tags"] = args.tag
    doc = envelope(a.cfg.host, a.tags, a.cfg.send_interval, None)
    doc["points"] = []
    doc["events"] = [event]
    a.put(doc)
    a.sender.send_pending(deadline=time.time() + args.timeout, lock_wait=args.timeout)
    if a.spool.pending():
        print(
            "%s: event spooled, not delivered yet (%s); the agent will send it"
            % (AGENT_NAME, a.sender.state.get("last_error") or "collector busy"),
            file=sys.stderr,
        )
        return 3
    return 0
