#!/usr/bin/env python3
"""Cold start: `import app` against `import boto3` alone, from -X importtime, in fresh processes.

A Lambda container pays for every import at its first request. The collector
keeps boto3 (and requests, yaml) out of `import app`, so a health check or a
refused request never pays for them.

    .venv/bin/python bench/cold_start.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def import_us(module: str) -> int:
    """Cumulative microseconds `import <module>` took, as -X importtime reports it."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip() == module:
            return int(parts[1])
    raise RuntimeError(f"{module} not found in -X importtime output")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    app_us, boto_us, ratios = [], [], []
    for _ in range(args.runs):  # interleaved, pair by pair
        a, b = import_us("app"), import_us("boto3")
        app_us.append(a)
        boto_us.append(b)
        ratios.append(a / b)
    print(f"import app    median {statistics.median(app_us) / 1000:7.1f} ms")
    print(f"import boto3  median {statistics.median(boto_us) / 1000:7.1f} ms")
    print(
        f"ratio app/boto3  median {statistics.median(ratios):.2f}x "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f}); target under 1.3x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
