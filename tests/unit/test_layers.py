"""The layering the code relies on: a pure core, and an app that imports no AWS SDK."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = {"boto3", "botocore", "chalice", "requests", "aws_lambda_powertools", "yaml"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_imports_no_outside_system():
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_modules(path) & OUTSIDE)
        for path in (ROOT / "chalicelib" / "core").rglob("*.py")
        if imported_modules(path) & OUTSIDE
    }
    assert offenders == {}


def test_importing_the_app_loads_no_aws_sdk_or_http_client():
    # Cold start: boto3 alone costs ~100 ms; it must wait for the first request
    # that needs it (a health check never does). Powertools imports the bare
    # `botocore` package for its user agent, which costs nothing.
    heavy = ("boto3", "botocore.session", "botocore.client", "requests", "yaml", "urllib3")
    code = f"import sys, app; print(','.join(sorted(m for m in {heavy!r} if m in sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
