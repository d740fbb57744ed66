"""The agent as one file.

`build_pyz` makes the zipapp of agent/fleetpulse_agent with the stdlib
`zipapp` (`make agent` writes it to dist/fleetpulse-agent.pyz; standard library
only, so the build needs no virtualenv). `bundle` makes the compact form that
EC2 user-data embeds: every module in one `__main__.py`, docstrings,
annotations and comments gone, locals renamed. User-data is capped at 16 KB
and the readable package does not fit.
"""

from __future__ import annotations

import ast
import io
import sys
import zipapp
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
    out = io.BytesIO()
    zipapp.create_archive(source, out, INTERPRETER, MAIN, filter=_wanted, compressed=compressed)
    return out.getvalue()


# Modules in dependency order: a module comes after everything it imports.
BUNDLE_ORDER = (
    "__init__",
    "config",
    "collect",
    "aggregate",
    "spool",
    "send",
    "deliver",
    "statsd",
    "agent",
    "status",
    "install",
    "cli",
)


class _DropPackageImports(ast.NodeTransformer):
    """In one module, the package's own imports are names that are already there."""

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST | None:
        if node.module and node.module.split(".")[0] == "fleetpulse_agent":
            return None
        return node

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        body = getattr(node, "body", None)
        if isinstance(body, list) and not body and not isinstance(node, ast.Module):
            node.body = [ast.Pass()]  # type: ignore[attr-defined]
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


def bundle_source(source: Path = AGENT_SOURCE) -> str:
    """Every agent module as one module; raises ValueError when two define one name differently."""
    package = source / "fleetpulse_agent"
    found = sorted(p.stem for p in package.glob("*.py") if p.stem != "__main__")
    if sorted(BUNDLE_ORDER) != found:
        raise ValueError(f"BUNDLE_ORDER {sorted(BUNDLE_ORDER)} does not match the modules {found}")
    seen: dict[str, tuple[str, str]] = {}
    parts = []
    for module in BUNDLE_ORDER:
        tree = ast.parse((package / f"{module}.py").read_text())
        tree = _DropPackageImports().visit(tree)
        for name, dump in _top_level_names(tree).items():
            if name in seen and seen[name][1] != dump:
                raise ValueError(
                    f"{module}.{name} clashes with {seen[name][0]}.{name} in the bundle"
                )
            seen[name] = (module, dump)
        parts.append(ast.unparse(tree))
    parts.append("import sys\nsys.exit(main())")
    return "\n".join(parts) + "\n"


def bundle(source: Path = AGENT_SOURCE) -> str:
    """The bundle, minified: the same code in the fewest bytes."""
    import python_minifier  # a development tool: only building user-data needs it

    return str(
        python_minifier.minify(
            bundle_source(source),
            remove_annotations=True,
            remove_literal_statements=True,
            rename_locals=True,
            rename_globals=True,
            hoist_literals=False,
        )
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
