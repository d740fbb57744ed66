"""The `fleetpulse-agent` command: run, once, status, event, check, exec, install.

Exit status: 0 success; 1 failure (status: a check failed; once: batches are
still waiting in the spool); 2 unusable configuration or arguments; 3 (event)
the event is spooled but not delivered yet; exec: the command's own.
"""

from __future__ import annotations

import os
import re
import sys
import time
from types import SimpleNamespace

from fleetpulse_agent import AGENT_NAME, __version__
from fleetpulse_agent.checks import check_now, load_checks
from fleetpulse_agent.config import DEFAULT_PATH, ConfigError, load, valid_name
from fleetpulse_agent.log import log

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations stay strings at run time (PEP 563): typing is never loaded
    from typing import Any, Dict, List, Optional, Tuple


class UsageError(Exception):
    """A command line that cannot be used; printed with the usage, exit status 2."""


def _ttl_ms(raw: str) -> int:
    """`90000` (milliseconds, as on the wire), `90s`, `25m`, `26h`, `2d` as milliseconds."""
    m = re.match(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?\Z", raw.strip())
    if not m:
        raise ValueError("expected milliseconds, or a number with ms, s, m, h or d")
    scale = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000}[m.group(2) or "ms"]
    return int(float(m.group(1)) * scale)


FLAG, TEXT, LIST, REQUIRED = "flag", str, "list", object()
# command: {option: (type or choices, default)}. A hand-made parser: argparse
# would cost the daemon half a megabyte of resident memory.
COMMANDS: Dict[str, Dict[str, Tuple[Any, Any]]] = {
    "run": {},
    "once": {"--budget": (float, 40.0)},
    "status": {"--offline": (FLAG, False)},
    "event": {
        "--service": (TEXT, REQUIRED),
        "--status": (("ok", "warning", "critical", "unknown"), "ok"),
        "--ttl": (_ttl_ms, None),
        "--description": (TEXT, ""),
        "--value": (float, None),
        "--tag": (LIST, None),
        "--timeout": (float, 10.0),
    },
    "exec": {"--job": (TEXT, REQUIRED), "--timeout": (float, 10.0)},
    "check": {"--name": (TEXT, REQUIRED)},  # or NAME alone
    "install": {
        "--url": (TEXT, None),
        "--token": (TEXT, None),
        "--host": (TEXT, None),
        "--tags": (TEXT, None),
        "--set": (LIST, None),
        "--root": (TEXT, None),
        "--pyz": (TEXT, None),
        "--python": (TEXT, None),
        "--no-start": (FLAG, False),
    },
}
# What --help says. Kept apart: the user-data build leaves it out to fit EC2's 16 KB.
HELP = {
    "--config": "FILE: config file (default $FLEETPULSE_CONFIG or %s)" % DEFAULT_PATH,
    "--verbose": "log at debug level (also -v)",
    "run": "run as a daemon: sample, aggregate, spool and send",
    "once": "one cycle for cron: sample, spool, send with the backlog",
    "once --budget": "seconds to spend sending (default 40)",
    "status": "settings, last send and error, spool, reachability step by step",
    "status --offline": "skip the network checks",
    "event": "send a service event; with --ttl it is a heartbeat",
    "event --service": "service name, e.g. backup (required)",
    "event --status": "ok, warning, critical or unknown (default ok)",
    "event --ttl": "alert if no new event within this: milliseconds, or 90s/25m/26h/2d",
    "event --description": "free text",
    "event --value": "a number to go with the event",
    "event --tag": "a label (repeatable)",
    "event --timeout": "seconds to try delivering now (default 10)",
    "exec": "exec --job SLUG -- COMMAND [ARGS...]: run a command as a monitored job",
    "exec --job": "the job's slug; pings /ping/<ping_key>/<slug> (docs/JOBS.md)",
    "exec --timeout": "seconds to try delivering each ping now (default 10)",
    "check": "run one [check:NAME] now; print the event and the point it would send",
    "check --name": "the check's NAME (also without --name: check NAME)",
    "install": "install the agent, its config and a systemd unit, and start it",
    "install --url": "collector base URL",
    "install --token": "ingest token",
    "install --host": "host name (default: the machine's name at each start)",
    "install --tags": "host tags, e.g. role=web,env=prod",
    "install --set": "KEY=VALUE: any other setting (repeatable)",
    "install --root": "install under this directory (default $FLEETPULSE_ROOT or /)",
    "install --pyz": "zipapp to install (default: the one running, or built now)",
    "install --python": "interpreter for the unit (default: this one)",
    "install --no-start": "do not touch systemctl",
}
USAGE = "usage: %s [--config FILE] [-v] {%s} [options]" % (AGENT_NAME, ",".join(COMMANDS))


def usage() -> str:
    lines = [USAGE, ""]
    general: Dict[str, Any] = {"--config": None, "--verbose": None}
    for name, options in [("", general), *COMMANDS.items()]:
        if name:
            lines.append("\n%s: %s" % (name, HELP.get(name, "")))
        for option in options:
            lines.append("  %-15s %s" % (option, HELP.get((name + " " + option).strip(), "")))
    return "\n".join(lines)


def parse_args(argv: List[str]) -> SimpleNamespace:
    """The command line: `command`, `config`, `verbose` and the command's options."""
    args: Dict[str, Any] = {"config": None, "verbose": False, "command": None}
    items = list(argv)
    options: Dict[str, Any] = {}
    while items:
        item = items.pop(0)
        name, eq, inline = item.partition("=")
        if item == "--" and args["command"] == "exec":
            args["argv"] = items
            break
        if item in ("-h", "--help", "--version"):
            print(usage() if item != "--version" else "%s %s" % (AGENT_NAME, __version__))
            raise SystemExit(0)
        if item in ("-v", "--verbose"):
            args["verbose"] = True
        elif name == "--config":
            args["config"] = inline if eq else (items.pop(0) if items else "")
        elif args["command"] is None and item in COMMANDS:
            args["command"] = item
            options = COMMANDS[item]
            for option, (kind, default) in options.items():
                initial = [] if kind == LIST else default
                args[option[2:].replace("-", "_")] = None if initial is REQUIRED else initial
        elif name in options:
            kind = options[name][0]
            key = name[2:].replace("-", "_")
            if kind == FLAG:
                args[key] = True
                continue
            if not eq and not items:
                raise UsageError("%s needs a value" % name)
            value = inline if eq else items.pop(0)
            try:
                if kind == LIST:
                    args[key].append(value)
                elif isinstance(kind, tuple):
                    if value not in kind:
                        raise ValueError("expected one of %s" % ", ".join(kind))
                    args[key] = value
                else:
                    args[key] = kind(value)
            except ValueError as exc:
                raise UsageError(
                    "%s %r: %s" % (name, value, str(exc) or "not a valid value")
                ) from None
        elif args.get("name", 0) is None and item[:1] != "-":
            args["name"] = item  # `check NAME`
        else:
            raise UsageError("unknown argument %r" % item)
    if args["command"] is None:
        raise UsageError("a command is needed")
    for option, (_, default) in COMMANDS[args["command"]].items():
        if default is REQUIRED and args[option[2:].replace("-", "_")] is None:
            raise UsageError("%s is required" % option)
    if args["command"] == "exec" and not args.get("argv"):
        raise UsageError("exec needs a command after --")
    return SimpleNamespace(**args)


def setup_logging(level: str) -> None:
    # journald stamps each line itself; a terminal or a cron mail wants the time.
    log.setup(level, stamp=not os.environ.get("JOURNAL_STREAM"))


def main(argv: Optional[List[str]] = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print("%s\n%s: %s" % (USAGE, AGENT_NAME, exc), file=sys.stderr)
        return 2
    try:
        if args.command == "install":
            from fleetpulse_agent.install import install

            setup_logging("info")
            return install(args)
        cfg = load(args.config, require_url=args.command not in ("exec", "check"))
        if args.command == "exec" and not cfg.url:
            raise ConfigError("url is not set")
        checks = load_checks(cfg) if args.command in ("run", "once", "check") else []
    except (ConfigError, OSError) as exc:
        print("%s: %s" % (AGENT_NAME, exc), file=sys.stderr)
        if args.command == "exec":  # the job runs all the same, unmonitored
            from fleetpulse_agent.jobs import run

            return run(args.argv)[0]
        return 2 if isinstance(exc, ConfigError) else 1
    level = "debug" if args.verbose else cfg.log_level
    if args.command in ("once", "event", "exec") and not args.verbose:
        level = "warning" if level in ("debug", "info") else level  # cron mails whatever is printed
    setup_logging(level)
    if args.command == "check":
        return check_now(checks, args.name)
    if args.command == "status":
        from fleetpulse_agent.status import report

        return report(cfg, check_network=not getattr(args, "offline", False))
    from fleetpulse_agent.agent import Agent

    agent = Agent(cfg, checks=checks)
    if args.command == "run":
        agent.run()
        return 0
    if args.command == "once":
        return 0 if agent.once(args.budget) else 1
    if args.command == "exec":
        from fleetpulse_agent.jobs import exec_job

        return exec_job(agent, args)
    return send_event(agent, args)


def send_event(a: Any, args: SimpleNamespace) -> int:
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
