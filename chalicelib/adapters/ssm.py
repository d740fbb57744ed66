"""SSMParameterSecret: a SecureString parameter (or a Secrets Manager secret through SSM)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from chalicelib.core.ports import BackendUnavailable

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient


class SSMParameterSecret:
    """Reads one secret on first call and keeps it for the container's life.

    `name` is a parameter name, or `/aws/reference/secretsmanager/<secret>`
    to read a Secrets Manager secret through the same call. The value is
    never logged; errors name the parameter, not its value.
    """

    def __init__(self, client: Callable[[], SSMClient], name: str) -> None:
        self._client = client  # created on first read: no AWS client at import or wiring
        self.name = name
        self._value: str | None = None
        self._lock = threading.Lock()

    def __call__(self) -> str:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._read()
        return self._value

    def _read(self) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._client().get_parameter(Name=self.name, WithDecryption=True)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise BackendUnavailable(f"cannot read SSM parameter {self.name}: {code}") from exc
        except BotoCoreError as exc:
            raise BackendUnavailable(
                f"cannot read SSM parameter {self.name}: {type(exc).__name__}"
            ) from exc
        value = response.get("Parameter", {}).get("Value")
        if not value:
            raise BackendUnavailable(f"SSM parameter {self.name} is empty")
        return value

    def __repr__(self) -> str:
        return f"SSMParameterSecret({self.name!r})"
