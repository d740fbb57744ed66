"""The alerting rules file: YAML on disk, read once per container and validated by the core."""

from __future__ import annotations

from pathlib import Path

from chalicelib.core.evaluation import AlertingPolicy
from chalicelib.core.rules import RulesError, RuleSet, parse_rules
from chalicelib.settings import Settings

APP_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RULES = Path(__file__).resolve().parents[1] / "rules" / "default.yaml"


def rules_path(configured: str | None) -> Path:
    """The file to read: FLEETPULSE_RULES (relative to the app directory), else the default."""
    if not configured:
        return DEFAULT_RULES
    path = Path(configured)
    return path if path.is_absolute() else APP_ROOT / path


def load_rules(path: Path) -> RuleSet:
    """Read and validate a rules file. Raises RulesError naming the file, rule and key."""
    import yaml

    try:
        text = path.read_text()
    except OSError as exc:
        raise RulesError(str(path), [("", f"cannot read the rules file: {exc.strerror}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RulesError(str(path), [(where, f"not valid YAML: {problem}")]) from None
    return parse_rules(data, source=str(path))


def load_policy(settings: Settings) -> AlertingPolicy:
    """The rules file named by the settings, with the deployment's heartbeat and outage knobs."""
    return AlertingPolicy(
        rules=load_rules(rules_path(settings.rules_path)),
        default_grace=settings.heartbeat_grace,
        outage_share=settings.outage_share,
        outage_min_hosts=settings.outage_min_hosts,
        retired_retention=settings.retired_retention,
        resolved_retention=settings.resolved_retention,
        status_url=settings.status_url,
    )
