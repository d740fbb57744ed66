#!/usr/bin/env python3
"""How long `make demo` takes: the scripted story on the local stack, step by step.

The command promises a story of about a minute at its own pace; the test
(tests/cli/test_local_demo.py) runs it at the fast pace and checks only that
every step happens, in order. This prints each step's time, the whole run,
and its ratio to the minute the command promises.

    .venv/bin/python bench/demo_story.py [--fast]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleetpulse.demo import FAST, Pace, run_demo

PROMISED_S = 60.0
STEP = re.compile(r"^\s*ok\s+(?P<what>.+) \((?P<seconds>[\d.]+) s\)$")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--fast", action="store_true", help="the test's pace instead of the command's"
    )
    args = parser.parse_args()
    pace = FAST if args.fast else Pace()
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="fleetpulse-demo-bench-") as tmp:
        started = time.monotonic()
        status = run_demo(state_dir=Path(tmp), pace=pace, out=lines.append)
        took = time.monotonic() - started
    if status != 0:
        print("\n".join(lines))
        print("the demo failed: no figures")
        return 1
    print(f"pace: {'fast, as the test runs it' if args.fast else 'the command'} ({pace})\n")
    print(f"{'step':50} {'seconds':>8}")
    for line in lines:
        m = STEP.match(line.partition("]")[2] if line.startswith("[") else line)
        if m:
            print(f"{m['what']:50} {float(m['seconds']):8.1f}")
    print(f"\n{'whole run':50} {took:8.1f}")
    print(f"{'ratio to the promised minute':50} {took / PROMISED_S:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
