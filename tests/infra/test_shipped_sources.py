"""What the Lambda package is made of holds no code that only tests and tools use.

`chalice package`/`deploy` ship app.py, the whole chalicelib/ directory and the wheels of
requirements.txt; tests/infra/test_chalice_package.py checks the built archive too (slow).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def shipped_sources() -> dict[str, ast.Module]:
    files = [ROOT / "app.py", *sorted((ROOT / "chalicelib").rglob("*.py"))]
    return {str(f.relative_to(ROOT)): ast.parse(f.read_text(), str(f)) for f in files}


def in_memory_stores(tree: ast.Module) -> list[str]:
    return [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and node.name.startswith("InMemory")
    ]


def imported_modules(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_in_memory_store_ships_in_the_lambda_package():
    sources = shipped_sources()
    assert "chalicelib/adapters/dynamodb/hosts.py" in sources  # the walk sees the adapters
    found = {path: names for path, tree in sources.items() if (names := in_memory_stores(tree))}
    assert found == {}


def test_shipped_code_imports_nothing_that_stays_home():
    home = ("tests", "fleetpulse", "bench", "agent", "moto", "hypothesis", "pytest")
    found = {
        path: sorted(m for m in imported_modules(tree) if m.split(".")[0] in home)
        for path, tree in shipped_sources().items()
    }
    assert {path: mods for path, mods in found.items() if mods} == {}
