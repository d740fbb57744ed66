"""The checks file: YAML on disk, read once per container and validated by the core."""

from __future__ import annotations

from pathlib import Path

from chalicelib.core.checks import Check, ChecksError, parse_checks

APP_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CHECKS = Path(__file__).resolve().parents[1] / "checks" / "default.yaml"


def checks_path(configured: str | None) -> Path:
    """The file to read: FLEETPULSE_CHECKS (relative to the app directory), else the default."""
    if not configured:
        return DEFAULT_CHECKS
    path = Path(configured)
    return path if path.is_absolute() else APP_ROOT / path


def load_checks(path: Path, default_location: str) -> tuple[Check, ...]:
    """Read and validate a checks file. Raises ChecksError naming the file, check and field."""
    import yaml

    try:
        text = path.read_text()
    except OSError as exc:
        raise ChecksError(
            str(path), [("", f"cannot read the checks file: {exc.strerror}")]
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ChecksError(str(path), [(where, f"not valid YAML: {problem}")]) from None
    return parse_checks(data, default_location, source=str(path))
