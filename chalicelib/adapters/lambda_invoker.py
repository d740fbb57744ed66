"""Starts check runners: one asynchronous Lambda invocation per batch (InvocationType Event)."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.core.ports import BackendUnavailable

# Lambda refuses an asynchronous invocation's payload over 256 KB; moto does not.
MAX_EVENT_PAYLOAD = 256 * 1024


class LambdaInvoker:
    def __init__(self, client: Any, function_name: str) -> None:
        self.client = client
        self.function_name = function_name

    def invoke(self, payload: dict[str, Any]) -> None:
        """Queue one invocation; the runner's own failures are Lambda's to retry."""
        from botocore.exceptions import BotoCoreError, ClientError

        body = json.dumps(payload, separators=(",", ":")).encode()
        if len(body) > MAX_EVENT_PAYLOAD:
            runs = payload.get("runs", [])
            if len(runs) < 2:
                raise BackendUnavailable(f"one run's payload is {len(body)} bytes: too large")
            half = len(runs) // 2
            self.invoke({**payload, "runs": runs[:half]})
            self.invoke({**payload, "runs": runs[half:]})
            return
        try:
            self.client.invoke(
                FunctionName=self.function_name, InvocationType="Event", Payload=body
            )
        except (ClientError, BotoCoreError) as exc:
            raise BackendUnavailable(f"runner {self.function_name}: {exc}") from exc
