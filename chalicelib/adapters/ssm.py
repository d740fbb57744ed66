"""SSMParameters: SecureString secrets from Parameter Store, read once per container."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from chalicelib.core.notify import SecretUnavailable

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient


class SSMParameters:
    """Reads a parameter with decryption on first use and keeps it for the container's life.

    A changed parameter is seen by new containers only (redeploy, or update
    the function's configuration, to start them). Values are never logged;
    errors name the parameter, never its value.
    """

    def __init__(self, client: SSMClient) -> None:
        self.client = client
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
            response = self.client.get_parameter(Name=name, WithDecryption=True)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "ClientError")
            if code == "ParameterNotFound":
                raise SecretUnavailable(
                    f"SSM parameter {name} does not exist (docs/NOTIFICATIONS.md, Secrets)"
                ) from None
            raise SecretUnavailable(f"SSM parameter {name}: {code}") from None
        except BotoCoreError as exc:
            raise SecretUnavailable(f"SSM parameter {name}: {type(exc).__name__}") from None
        # `put-parameter --value file://...` keeps the file's final newline.
        value = response["Parameter"].get("Value", "").strip()
        if not value:
            raise SecretUnavailable(f"SSM parameter {name} is empty")
        return value
