"""Settings: built-in defaults, then the config file, then FLEETPULSE_* variables (they win).

The file is INI with an `[agent]` section, and `[check:NAME]` sections that
checks.py reads. Every key `some_key` has the variable `FLEETPULSE_SOME_KEY`.
"""

from __future__ import annotations

import os
import re
import socket
from types import SimpleNamespace

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations stay strings at run time (PEP 563): typing is never loaded
    from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple


DEFAULT_PATH = "/etc/fleetpulse/agent.conf"
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*\Z")
HOST_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
# Names the metric store keeps for itself; a tag with one of them cannot be stored.
RESERVED = ("time", "measure_name")
RESERVED_PREFIXES = ("measure_value", "ts_")
# What a gauge may send beside its average, as `<field>_<stat>` (aggregate.py).
STATS = ("count", "min", "max", "stddev")


class ConfigError(Exception):
    """A setting that cannot be used. The message names the key and the form it expects."""


def valid_name(name: str, max_bytes: int = 128) -> bool:
    """True when the collector accepts `name` as a measurement, field or tag name."""
    return (
        bool(NAME_RE.match(name))
        and len(name.encode()) <= max_bytes
        and name not in RESERVED
        and not name.startswith(RESERVED_PREFIXES)
    )


def _number(kind: type, lo: float, hi: float) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        value = kind(raw)
        if not lo <= value <= hi:
            raise ValueError
        return value

    return parse


def _bool(raw: str) -> bool:
    low = raw.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError


def _url(raw: str) -> str:
    if not raw:
        return raw  # unset: load() says so, naming where to set it
    m = re.match(r"(https?)://([^/:\s]+|\[[0-9a-fA-F:]+\])(:\d{1,5})?(/\S*)?\Z", raw)
    if not m:
        raise ValueError
    return raw.rstrip("/")


def _token(raw: str) -> str:
    if any(c.isspace() for c in raw):
        raise ValueError
    return raw


def _host(raw: str) -> str:
    if raw and not (HOST_RE.match(raw) and len(raw) <= 253):
        raise ValueError
    return raw


def parse_tags(raw: str) -> Dict[str, str]:
    """`role=web,env=prod` as a dict; raises ValueError on a bad name or an empty value."""
    tags = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not valid_name(key, 60) or not value or len(value.encode()) > 256:
            raise ValueError
        tags[key] = value
    return tags


def parse_address(raw: str, default_port: int) -> Optional[Tuple[str, int]]:
    """`host:port` (or `host`) as a tuple; `off` or empty gives None."""
    if raw.lower() in ("", "off", "none", "false", "0"):
        return None
    host, sep, port = raw.rpartition(":")
    if not sep or "]" in port:
        host, port = raw, str(default_port)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError
    return host, int(port)


def _resolvers(raw: str) -> List[Tuple[str, int]]:
    out = []
    for item in raw.split(","):
        address = parse_address(item.strip(), 53)
        if address:
            out.append(address)
    return out


def _stats(raw: str) -> Tuple[str, ...]:
    names = {s.strip() for s in raw.split(",")} - {""}
    if names - set(STATS):
        raise ValueError
    return tuple(s for s in STATS if s in names)


def _level(raw: str) -> str:
    if raw.lower() not in ("debug", "info", "warning", "error"):
        raise ValueError
    return raw.lower()


# key: (default, parser, expected form). Defaults are strings so they go through
# the same parser as file and environment values.
SETTINGS: Dict[str, Tuple[str, Callable[[str], Any], str]] = {
    "url": ("", _url, "the collector's base URL, http(s)://host[:port][/path]"),
    "token": ("", _token, "the ingest token, one word"),
    "ping_key": ("", _token, "a ping token, for exec"),
    "host": ("", _host, "a host name: letters, digits and . _ - (empty: the machine's name)"),
    "tags": ("", parse_tags, "comma-separated name=value pairs, e.g. role=web,env=prod"),
    "spool_dir": ("/var/lib/fleetpulse/spool", str, "a directory path"),
    "spool_max_mb": ("256", _number(float, 0.01, 1e6), "megabytes, a number > 0"),
    "memory_queue_mb": ("16", _number(float, 0.01, 4096), "megabytes, a number > 0"),
    "sample_interval": ("10", _number(float, 0.01, 3600), "seconds, 0.01 to 3600"),
    "send_interval": ("60", _number(float, 0.01, 86400), "seconds, 0.01 to 86400"),
    "stats": ("min,max", _stats, "a comma list among count, min, max, stddev, or empty"),
    "statsd": ("127.0.0.1:8125", lambda r: parse_address(r, 8125), "host:port, or off"),
    "statsd_max_series": ("2000", _number(int, 1, 10**6), "a whole number > 0"),
    "connect_timeout": ("5", _number(float, 0.01, 600), "seconds"),
    "tls_timeout": ("10", _number(float, 0.01, 600), "seconds"),
    "read_timeout": ("60", _number(float, 0.01, 3600), "seconds"),
    "request_cap": ("300", _number(float, 0.01, 86400), "seconds"),
    # The VPC's resolver (the Route 53 Resolver at 169.254.169.253) answers in every VPC;
    # public resolvers only when configured.
    "dns_fallback": ("169.254.169.253", _resolvers, "comma-separated ip[:port] resolvers"),
    "ca_file": ("", str, "a path to a PEM CA bundle, or empty for the system's"),
    "retry_base": ("1", _number(float, 0.001, 3600), "seconds"),
    "max_backoff": ("300", _number(float, 0.01, 86400), "seconds"),
    "auth_backoff": ("600", _number(float, 0.01, 86400), "seconds"),
    "shutdown_timeout": ("10", _number(float, 0, 3600), "seconds"),
    "ec2_tags": ("true", _bool, "true or false"),
    "imds_url": ("http://169.254.169.254", _url, "a URL"),
    "processes": ("true", _bool, "true or false"),
    "process_top": ("5", _number(int, 0, 1000), "0 to 1000"),
    "systemctl": ("systemctl", str, "a command"),
    "nginx_status_url": ("", _url, "a URL, or empty"),
    "log_level": ("info", _level, "debug, info, warning or error"),
    "checks_dir": ("/etc/fleetpulse/checks.d", str, "a directory path"),
}


def config_path(explicit: Optional[str], env: Mapping[str, str]) -> Tuple[str, bool]:
    """The file to read and whether it was asked for (a missing default file is fine)."""
    if explicit:
        return explicit, True
    if env.get("FLEETPULSE_CONFIG"):
        return env["FLEETPULSE_CONFIG"], True
    return DEFAULT_PATH, False


def read_file(path: str) -> Dict[str, Dict[str, str]]:
    """Every section of the INI file (see parse_ini); raises ConfigError if unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError("cannot read config file %s: %s" % (path, exc.strerror)) from None
    return parse_ini(text, path)


def parse_ini(text: str, path: str) -> Dict[str, Dict[str, str]]:
    """`key = value` lines by section, `[agent]` or `[check:NAME]`; `#` and `;` start comments."""
    sections: Dict[str, Dict[str, str]] = {}
    section = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line[0] == "[" and line[-1] == "]":
            section = line[1:-1].strip()
            if section != "agent" and section[:6] != "check:":
                raise ConfigError(
                    "config file %s: unknown section [%s]; use [agent] or [check:NAME]"
                    % (path, section)
                )
            sections.setdefault(section, {})
            continue
        cut = min(i for i in (line.find("="), line.find(":"), len(line)) if i >= 0)
        if section is None or cut == len(line):
            raise ConfigError(
                "config file %s line %d: expected `key = value` under [%s], got %r"
                % (path, number, section or "agent", line[:60])
            )
        sections[section][line[:cut].strip().lower()] = line[cut + 1 :].strip()
    return sections


def load(
    path: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
    require_url: bool = True,
) -> SimpleNamespace:
    """Read, merge and check every setting; raises ConfigError naming the first bad key."""
    env = os.environ if env is None else env
    file_path, explicit = config_path(path, env)
    sections = {}
    if explicit or os.path.exists(file_path):
        sections = read_file(file_path)
    raw = sections.get("agent", {})
    for key in raw:
        if key not in SETTINGS:
            raise ConfigError(
                "%s: unknown key %r (known: %s)" % (file_path, key, ", ".join(sorted(SETTINGS)))
            )
    values = {"config_path": file_path if sections or explicit else "", "sections": sections}
    for key, (default, parse, form) in SETTINGS.items():
        var = "FLEETPULSE_" + key.upper()
        source, text = "default", default
        if key in raw:
            source, text = file_path, raw[key]
        if var in env:
            source, text = var, env[var]
        try:
            values[key] = parse(text.strip())
        except (ValueError, TypeError):
            raise ConfigError(
                "%s: %s=%r is not valid; expected %s" % (source, key, text, form)
            ) from None
    cfg = SimpleNamespace(**values)
    if require_url:
        for key in ("url", "token"):
            if not getattr(cfg, key):
                raise ConfigError(
                    "%s is not set; put it in %s or set FLEETPULSE_%s"
                    % (key, file_path, key.upper())
                )
    if cfg.send_interval < cfg.sample_interval:
        raise ConfigError(
            "send_interval=%g is shorter than sample_interval=%g; expected send_interval >= "
            "sample_interval" % (cfg.send_interval, cfg.sample_interval)
        )
    if not cfg.host:
        cfg.host = machine_name()
    return cfg


def machine_name() -> str:
    """The host's fully qualified name when it has one, else its short name."""
    name = socket.getfqdn()
    if "." not in name or name.startswith("localhost"):
        name = socket.gethostname()
    name = re.sub(r"[^A-Za-z0-9._-]", "-", name).lstrip("._-")[:253]
    return name or "unknown-host"


def ingest_url(cfg: SimpleNamespace) -> str:
    """The full ingest endpoint; a URL that already ends in /v1/ingest is taken as is."""
    return cfg.url if cfg.url.endswith("/v1/ingest") else cfg.url + "/v1/ingest"
