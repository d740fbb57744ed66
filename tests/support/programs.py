"""Real programs the tests run: found on PATH, or the test says it could not run.

Every test that needs a real program (influxd, chromium, a Python 3.8, and the
prometheus, collectd, redis-server... of later tests) asks for it here:

    influxd = require_program("influxd", "influxdb")

On a developer's machine a missing program skips the test, naming the Debian
package to install. When the environment variable CI is "true", it fails the
test instead: a green CI run must mean that every one of these tests ran. The
Debian packages the suite needs are listed in SYSTEM_PACKAGES in the Makefile
(`make system-deps` installs them).
"""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    """Whether this run is CI's, where nothing may be skipped for want of a program."""
    return os.environ.get("CI", "").strip().lower() == "true"


def require_program(
    name: str,
    package: str | None = None,
    *,
    aliases: tuple[str, ...] = (),
    path: str | None = None,
    hint: str = "",
) -> str:
    """The full path of the executable `name` (or of the first of `aliases` found).

    `path` searches there instead of PATH. When none is found the test skips,
    or fails under CI=true; the message names the Debian `package` to install,
    or says `hint`.
    """
    for candidate in (name, *aliases):
        found = shutil.which(candidate, path=path)
        if found:
            return found
    where = f" in {path}" if path else " on PATH"
    how = hint or (f"apt-get install {package}" if package else f"install {name}")
    message = f"{name} is not installed{where} ({how}); the test needs the real program"
    if in_ci():
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)
