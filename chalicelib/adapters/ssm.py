"""Secrets from SSM Parameter Store (SecureString), read once per container.

`SSMParameters` is the one reader; `SSMParameterSecret` is a single secret
seen through it, for stores that treat an unreadable secret as a backend fault.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from chalicelib.core.notify import SecretUnavailable
from chalicelib.core.ports import BackendUnavailable

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient


class SSMParameters:
    """Reads a parameter with decryption on first use and keeps it for the container's life.

    The client is made on the first read, never at wiring. A changed parameter
    is seen by new containers only (redeploy, or update the function's
    configuration, to start them). Values are never logged; errors name the
    parameter, never its value. `name` may also be
    `/aws/reference/secretsmanager/<secret>` to read a Secrets Manager secret.
    """

    def __init__(self, client: Callable[[], SSMClient]) -> None:
        self._client = client
        self._values: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> str:
        value = self._values.get(name)
        if value is not None:
            return value
        with self._lock:
            if name not in self._values:
                self._values[name] = self._read(name)
            return self._values[name]

    def _read(self, name: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        # At DEBUG, botocore logs every response body: here, the decrypted secret.
        logging.getLogger("botocore.parsers").setLevel(logging.INFO)
        try:
            response = self._client().get_parameter(Name=name, WithDecryption=True)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "ClientError")
            if code == "ParameterNotFound":
                raise SecretUnavailable(
                    f"SSM parameter {name} does not exist "
                    "(create it with `aws ssm put-parameter --type SecureString`)"
                ) from None
            raise SecretUnavailable(f"SSM parameter {name}: {code}") from None
        except BotoCoreError as exc:
            raise SecretUnavailable(f"SSM parameter {name}: {type(exc).__name__}") from None
        # `put-parameter --value file://...` keeps the file's final newline.
        value = response["Parameter"].get("Value", "").strip()
        if not value:
            raise SecretUnavailable(f"SSM parameter {name} is empty")
        return value


class SSMParameterSecret:
    """One secret through `SSMParameters`; an unreadable one is BackendUnavailable
    (the collector answers 503 and agents keep their data)."""

    def __init__(self, parameters: SSMParameters, name: str) -> None:
        self.parameters = parameters
        self.name = name

    def __call__(self) -> str:
        try:
            return self.parameters.get(self.name)
        except SecretUnavailable as exc:
            raise BackendUnavailable(str(exc)) from None

    def __repr__(self) -> str:
        return f"SSMParameterSecret({self.name!r})"
