"""The agent's own health, shipped as an event so the collector shows why data is thin.

A warning carries the last problem the agent logged (a reader failing, sends
failing, batches dropped) for an interval that had one; the first interval
without a problem after that sends `ok`. Quiet intervals send nothing.
"""

from __future__ import annotations

from fleetpulse_agent.log import log

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations stay strings at run time (PEP 563): typing is never loaded
    from typing import Any, Dict, List

SELF_SERVICE = "fleetpulse-agent"


class Diagnosis:
    def __init__(self) -> None:
        self.seen = log.problems
        self.troubled = False

    def events(self, now_ms: int) -> List[Dict[str, Any]]:
        """The `fleetpulse-agent` event this interval owes, if any."""
        count = log.problems
        if count != self.seen:
            text = "%d problem(s); last: %s" % (count - self.seen, log.last_problem)
            self.seen, self.troubled, status = count, True, "warning"
        elif self.troubled:
            text, self.troubled, status = "no problems since the last interval", False, "ok"
        else:
            return []
        return [
            {"service": SELF_SERVICE, "status": status, "description": text[:1000], "time": now_ms}
        ]
