"""The agent as one file.

`build_pyz` makes the zipapp of agent/fleetpulse_agent (`make agent` writes it
to dist/fleetpulse-agent.pyz; standard library only, so the build needs no
virtualenv). `bundle` makes the compact form that
EC2 user-data embeds: every module in one `__main__.py`, docstrings,
annotations and comments gone, locals renamed. User-data is capped at 16 KB
and the readable package does not fit.
"""

from __future__ import annotations

import ast
import importlib
import io
import keyword
import re
import string
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
AGENT_SOURCE = REPO / "agent"
MAIN = "fleetpulse_agent.cli:main"
INTERPRETER = "/usr/bin/env python3"


def _wanted(path: Path) -> bool:
    # Only the package's own modules: no caches, no editor or test leftovers.
    return path.parts[0] == "fleetpulse_agent" and (len(path.parts) == 1 or path.suffix == ".py")


def build_pyz(source: Path = AGENT_SOURCE, *, compressed: bool = True) -> bytes:
    """The zipapp's bytes. Uncompressed members suit an archive that is compressed as a whole."""
    if not (source / "fleetpulse_agent" / "cli.py").is_file():
        raise FileNotFoundError(f"agent source not found under {source}")
    # zipapp's own `main=` entry point drops the function's return value, and with it
    # the exit status (`exec` must exit with its command's): write __main__.py here.
    out = io.BytesIO()
    out.write(b"#!" + INTERPRETER.encode() + b"\n")
    method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(out, "w", compression=method) as archive:
        for path in sorted(source.rglob("*")):
            relative = path.relative_to(source)
            if _wanted(relative):
                archive.write(path, relative.as_posix())
        module, _, function = MAIN.partition(":")
        archive.writestr(
            "__main__.py", f"import sys\nfrom {module} import {function}\nsys.exit({function}())\n"
        )
    return out.getvalue()


# Modules in dependency order: a module comes after everything it imports.
BUNDLE_ORDER = (
    "__init__",
    "log",
    "config",
    "collect",
    "aggregate",
    "spool",
    "send",
    "deliver",
    "checks",
    "statsd",
    "diagnose",
    "imds",
    "probes",
    "procs",
    "agent",
    "jobs",
    "status",
    "install",
    "cli",
)


class _DropPackageImports(ast.NodeTransformer):
    """In one module, the package's own imports are names that are already there.

    Typing-only blocks go too: annotations are stripped, so they import nothing used.
    """

    def visit_If(self, node: ast.If) -> ast.AST | None:
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return None
        return self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> ast.AST | None:
        names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        return None if names == ["TYPE_CHECKING"] else node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST | None:
        if node.module and node.module.split(".")[0] in ("fleetpulse_agent", "__future__"):
            return None  # the bundle starts with the one __future__ import
        return node

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        body = getattr(node, "body", None)
        if isinstance(body, list) and not body and not isinstance(node, ast.Module):
            node.body = [ast.Pass()]  # type: ignore[attr-defined]
        return node


class _TrimCommands(ast.NodeTransformer):
    """The CLI of a build without some modules: their options and (optionally) all help gone."""

    def __init__(self, leave_out: tuple[str, ...], keep_help: bool) -> None:
        self.leave_out = leave_out
        self.keep_help = keep_help

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        if node.name == "usage" and not self.keep_help:
            node.body = [ast.Return(ast.Name("USAGE", ast.Load()))]
        return node

    def visit_Assign(self, node: ast.Assign) -> ast.AST:
        target = node.targets[0]
        name = target.id if isinstance(target, ast.Name) else ""
        if name == "HELP" and not self.keep_help:
            node.value = ast.Dict(keys=[], values=[])
        elif name == "COMMANDS" and isinstance(node.value, ast.Dict):
            # The command stays, so its stub can say where it went; its options go.
            node.value.values = [
                ast.Dict(keys=[], values=[])
                if isinstance(k, ast.Constant)
                and COMMAND_MODULES.get(str(k.value), "") in self.leave_out
                else v
                for k, v in zip(node.value.keys, node.value.values, strict=True)
            ]
        return node


def _top_level_names(tree: ast.Module) -> dict[str, str]:
    names: dict[str, str] = {}
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names[node.name] = ast.dump(node)
        elif isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for t in targets:
            if isinstance(t, ast.Name):
                names[t.id] = ast.dump(node)
    return names


# The module each command's code lives in, where the two names differ.
COMMAND_MODULES = {"install": "install", "status": "status", "exec": "jobs"}

# What a module left out of a bundle leaves behind: its entry point, saying so.
LEFT_OUT = {
    "jobs": (
        "def exec_job(a, args):\n"
        "    print('this build of the agent has no exec command: use the zipapp `make agent` builds')\n"
        "    return 2\n"
    ),
    "install": (
        "def install(args, log=print):\n"
        "    log('this build of the agent has no install command: use the zipapp `make agent` builds')\n"
        "    return 2\n"
    ),
    "checks": (
        "def load_checks(cfg):\n"
        "    if set(cfg.sections) - {'agent'} or os.path.isdir(cfg.checks_dir):\n"
        "        log.warning('this build of the agent runs no exec checks: use the zipapp `make agent` builds')\n"
        "    return []\n"
        "def check_now(checks, name):\n"
        "    print('this build of the agent has no check command: use the zipapp `make agent` builds')\n"
        "    return 2\n"
    ),
    "status": (
        "def report(cfg, check_network=True, out=print):\n"
        "    out('this build of the agent has no status command: use the zipapp `make agent` builds')\n"
        "    return 2\n"
    ),
    # Process metrics and service discovery: no watcher, so no probes either.
    "procs": "class Processes:\n    def of(cfg):\n        return None\n",
    "diagnose": "class Diagnosis:\n    def events(self, now_ms):\n        return []\n",
    "probes": "",
}


def bundle_source(
    source: Path = AGENT_SOURCE, leave_out: tuple[str, ...] = (), keep_help: bool = True
) -> str:
    """Every agent module as one module; raises ValueError when two define one name differently.

    Modules in `leave_out` (only those LEFT_OUT knows) are replaced by a stub and
    their commands dropped; without `keep_help`, --help lists options bare.
    """
    package = source / "fleetpulse_agent"
    found = sorted(p.stem for p in package.glob("*.py") if p.stem != "__main__")
    if sorted(BUNDLE_ORDER) != found:
        raise ValueError(f"BUNDLE_ORDER {sorted(BUNDLE_ORDER)} does not match the modules {found}")
    seen: dict[str, tuple[str, str]] = {}
    parts = ["from __future__ import annotations"]
    for module in BUNDLE_ORDER:
        if module in leave_out:
            parts.append(LEFT_OUT[module])
            continue
        tree = ast.parse((package / f"{module}.py").read_text())
        tree = _DropPackageImports().visit(tree)
        if module == "cli":
            tree = _TrimCommands(leave_out, keep_help).visit(tree)
        for name, dump in _top_level_names(tree).items():
            if name in seen and seen[name][1] != dump:
                raise ValueError(
                    f"{module}.{name} clashes with {seen[name][0]}.{name} in the bundle"
                )
            seen[name] = (module, dump)
        parts.append(ast.unparse(tree))
    parts.append("import sys\nsys.exit(main())")
    return "\n".join(parts) + "\n"


# Attribute names reached by name rather than by `.name` in the code itself.
KEEP_ATTRIBUTES = frozenset(
    # Collector readers: their __name__ is what "cannot collect <name>" logs.
    {"cpu", "memory", "system", "processes", "disk_usage", "disk_io", "network", "tcp", "own"}
)


def _foreign_attributes(modules: set[str]) -> set[str]:
    """Every attribute name of the standard library objects and `modules` the agent touches."""
    import collections
    import http.client
    import os
    import socket
    import ssl
    import subprocess
    import threading
    import types
    import zlib

    objects: list[object] = [
        str,
        bytes,
        bytearray,
        dict,
        list,
        set,
        frozenset,
        tuple,
        int,
        float,
        object,
        type,
        OSError,
        BaseException,
        memoryview,
        collections.deque(),
        types.SimpleNamespace(),
        socket.socket,
        ssl.SSLSocket,
        ssl.SSLContext,
        ssl.get_default_verify_paths(),
        threading.Thread,
        threading.Event(),
        threading.Lock(),
        re.compile(""),
        re.match("", ""),
        zlib.compressobj(),
        zlib.decompressobj(),
        os.stat("/"),
        os.statvfs("/"),
        os.times(),
        subprocess.CompletedProcess,
        os.DirEntry,
        io.StringIO(),
        io.RawIOBase,
        io.BufferedReader,
        http.client.HTTPConnection("localhost"),
        http.client.HTTPResponse,
    ]
    names = {n for o in objects for n in dir(o)}
    for name in modules:
        names.update(dir(importlib.import_module(name)))
    return names


class _RenameAttributes(ast.NodeTransformer):
    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self.generic_visit(node)
        node.attr = self.names.get(node.attr, node.attr)
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        for item in node.body:
            if isinstance(item, ast.FunctionDef):
                item.name = self.names.get(item.name, item.name)
        return self.generic_visit(node)


def rename_attributes(code: str) -> str:
    """Give the agent's own attributes and methods one- or two-letter names.

    Only names the agent defines on its classes are candidates, and any name
    that a standard library object also has, that appears in a string (getattr,
    namedtuple fields, settings keys) or that is reached by name stays as it is.
    """
    tree = ast.parse(code)
    mine: set[str] = set()
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for node in ast.walk(cls):
            if isinstance(node, ast.FunctionDef) and node in cls.body:
                mine.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                mine.add(node.attr)
    # Names that reach attributes as strings: getattr/SimpleNamespace keys (whole
    # identifier strings), command-line options (`--no-start` is `args.no_start`)
    # and namedtuple fields (`namedtuple("Response", "status reason headers body")`).
    strings = {
        n.value.lstrip("-").replace("-", "_")
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }
    strings = {w for w in strings if w.isidentifier()}
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "namedtuple":
            strings.update(str(getattr(call.args[1], "value", "")).split())
    modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    blocked = _foreign_attributes(modules) | strings | KEEP_ATTRIBUTES | set(keyword.kwlist)
    candidates = sorted(n for n in mine if not n.startswith("__") and n not in blocked)
    short = (a + b for a in ("", *string.ascii_letters) for b in string.ascii_letters)
    names = {}
    for name in candidates:
        new = next(short)
        while new in blocked or new in used or new in mine:
            new = next(short)
        names[name] = new
    return ast.unparse(_RenameAttributes(names).visit(tree))


def positional_only(code: str) -> str:
    """Make every parameter that no call passes by keyword positional-only.

    The bundle is a closed world, so this is checked, not guessed: a name used
    as a keyword anywhere stays a keyword parameter everywhere. The minifier
    may rename positional-only parameters; it must keep the others.
    """
    tree = ast.parse(code)
    ours = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        ours.update(f.name for f in cls.body if isinstance(f, ast.FunctionDef))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    # Keywords only count on calls that may reach our code: standard library
    # calls (`Thread(name=...)`) say nothing about our parameters.
    by_keyword = {
        k.arg
        for c in calls
        if getattr(c.func, "id", getattr(c.func, "attr", "")) in ours
        for k in c.keywords
        if k.arg
    }
    spread = [c for c in calls if any(k.arg is None for k in c.keywords)]
    if any(getattr(c.func, "id", "") not in ("dict", "y", "SimpleNamespace") for c in spread):
        return code  # a **mapping call might reach our functions: change nothing
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.Lambda):
            continue
        args = fn.args
        params = args.posonlyargs + args.args
        cut = 0
        while cut < len(params) and params[cut].arg not in by_keyword:
            cut += 1
        args.posonlyargs, args.args = params[:cut], params[cut:]
    return ast.unparse(tree)


def bundle(
    source: Path = AGENT_SOURCE, leave_out: tuple[str, ...] = (), keep_help: bool = True
) -> str:
    """The bundle, minified: the same code in the fewest bytes."""
    import python_minifier  # a development tool: only building user-data needs it

    return str(
        python_minifier.minify(
            positional_only(rename_attributes(bundle_source(source, leave_out, keep_help))),
            remove_annotations=True,
            remove_literal_statements=True,
            rename_locals=True,
            rename_globals=True,
            hoist_literals=False,
            convert_posargs_to_args=False,
        )
    )


def unit_text(python: str) -> str:
    """The systemd unit `install` writes, for an agent run by `python`."""
    tree = ast.parse((AGENT_SOURCE / "fleetpulse_agent" / "install.py").read_text())
    values: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue  # computed from other names: not needed here
    pyz = values["PYZ"]
    state = values["SPOOL"].rsplit("/", 1)[0]
    return values["UNIT_TEXT"].format(
        python=python, pyz=pyz, conf="/etc/fleetpulse/agent.conf", state=state
    )


def bundle_pyz(code: str) -> bytes:
    """A zipapp whose `__main__.py` is `code` (what the user-data script rebuilds on the host)."""
    out = io.BytesIO()
    out.write(f"#!{INTERPRETER}\n".encode())
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("__main__.py", code)
    return out.getvalue()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0] if args else "dist/fleetpulse-agent.pyz")
    target.parent.mkdir(parents=True, exist_ok=True)
    data = build_pyz()
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o755)
    tmp.replace(target)
    print(f"built {target} ({len(data)} bytes)")


if __name__ == "__main__":
    main()
