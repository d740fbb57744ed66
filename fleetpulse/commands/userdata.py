"""`fleetpulse user-data`: the EC2 user-data script that installs and starts the agent.

The script embeds the agent (no PyPI, no download: the host needs Python 3.8+
and a route to the collector), writes its config, a wrapper and a systemd unit
with Restart=always, and starts the unit without waiting for it (`--no-block`:
cloud-init's own unit is still starting, and a start job waiting on another
can deadlock).

EC2 caps user-data at 16 KB before base64. cloud-init inflates gzip user-data
itself, and only the gzip form fits the agent, so it is the default. Even so
the embedded agent is a minified single module without the operator tools
`install` (this script does its job) and `status`; docs/AGENT.md says more.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import lzma
import re
import shlex
import sys
from pathlib import Path

from fleetpulse.agentbuild import REPO, bundle, unit_text

USER_DATA_LIMIT = 16 * 1024
LEAVE_OUT = ("install", "status", "jobs", "procs", "probes", "diagnose", "checks")
# Raw LZMA2 (no .xz container: its headers are bytes EC2 does not give) with a
# dictionary the script names when it unpacks.
XZ_FILTER = {
    "id": lzma.FILTER_LZMA2,
    "preset": 9 | lzma.PRESET_EXTREME,
    "dict_size": 1 << 20,
    "pb": 0,  # text has no 2- or 4-byte structure to align to
}
TEMPLATE = REPO / "infra" / "user-data.sh.tmpl"
_TAGS_RE = re.compile(
    r"([A-Za-z_][A-Za-z0-9_./-]*=[^,=\s]+)(,[A-Za-z_][A-Za-z0-9_./-]*=[^,=\s]+)*\Z"
)
_SETTING_RE = re.compile(r"[a-z_0-9]+=\S*\Z")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "user-data",
        help="render EC2 user-data that installs and starts the agent",
        description=__doc__,
    )
    parser.add_argument("--url", required=True, help="collector base URL, https://...")
    parser.add_argument("--token", required=True, help="ingest token the hosts post with")
    parser.add_argument("--tags", help="host tags, e.g. role=web,env=prod")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other agent setting (docs/AGENT.md), e.g. --set statsd=off",
    )
    parser.add_argument(
        "--gzip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="gzip the script, which cloud-init inflates (default: only when the plain "
        "script is over EC2's 16 KB, which it is while it embeds the agent)",
    )
    parser.add_argument("-o", "--output", help="write here instead of standard output")
    parser.set_defaults(handler=run)


def check(url: str, token: str, tags: str | None, settings: list[str]) -> None:
    """Raise ValueError naming the first option the agent would refuse at start."""
    if not re.match(r"https?://[^\s/]+(/\S*)?\Z", url):
        raise ValueError(f"--url {url!r}: expected http(s)://host[:port][/path]")
    if not token or any(c.isspace() for c in token):
        raise ValueError("--token: expected one word")
    if tags and not _TAGS_RE.match(tags):
        raise ValueError(f"--tags {tags!r}: expected name=value pairs separated by commas")
    for item in settings:
        if not _SETTING_RE.match(item):
            raise ValueError(f"--set {item!r}: expected key=value")


def render(
    url: str,
    token: str,
    tags: str | None = None,
    settings: list[str] | None = None,
    *,
    compressed: bool = False,
    template: Path = TEMPLATE,
) -> bytes:
    """The user-data bytes: a shell script, gzipped when `compressed`."""
    settings = settings or []
    check(url, token, tags, settings)
    # EC2's 16 KB holds the agent's run, once and event commands; the operator's
    # tools (install: the script does its job; status) stay in the full zipapp.
    code = bundle(leave_out=LEAVE_OUT, keep_help=False)
    # xz beats gzip on source by a tenth. Its base64 text costs a third more, which
    # the outer gzip of the compressed form takes back entirely: 64 symbols are
    # exactly 6 bits each.
    packed = base64.b64encode(
        lzma.compress(code.encode(), format=lzma.FORMAT_RAW, filters=[XZ_FILTER])
    ).decode()
    lines = [f"url = {url}", f"token = {token}"]
    if tags:
        lines.append(f"tags = {tags}")
    lines += [item.replace("=", " = ", 1) for item in settings]
    script = template.read_text()
    for marker, text in (
        ("@@PAYLOAD@@", packed),
        ("@@CONFIG@@", " ".join(shlex.quote(line) for line in lines)),
        ("@@UNIT@@", "\n".join(u for u in unit_text("$PY").splitlines() if u[:1] != "#")),
    ):
        script = script.replace(marker, text)
    data = script.encode()
    return gzip.compress(data, 9, mtime=0) if compressed else data


def run(args: argparse.Namespace) -> int:
    from fleetpulse.cli import CommandError

    try:
        data = render(args.url, args.token, args.tags, args.set, compressed=bool(args.gzip))
        if args.gzip is None and len(data) > USER_DATA_LIMIT:
            data = render(args.url, args.token, args.tags, args.set, compressed=True)
    except (ValueError, FileNotFoundError) as exc:
        raise CommandError(str(exc)) from None
    except ImportError as exc:
        raise CommandError(f"{exc}: install the dev requirements (make venv)") from None
    if len(data) > USER_DATA_LIMIT:
        hint = "" if args.gzip is not False else "; without --no-gzip it would be smaller"
        raise CommandError(
            f"user-data is {len(data)} bytes, over EC2's limit of {USER_DATA_LIMIT}{hint}"
        )
    gzipped = data[:2] == b"\x1f\x8b"
    if args.output:
        Path(args.output).write_bytes(data)
        form = "gzip" if gzipped else "plain"
        print(f"wrote {args.output}: {len(data)} bytes, {form}", file=sys.stderr)
    elif gzipped and sys.stdout.isatty():
        raise CommandError("refusing to write gzip to a terminal; use -o FILE")
    else:
        sys.stdout.buffer.write(data)
    return 0
