"""Fixtures of the adapter tests: `backend` runs a test on the in-memory fake and on
DynamoDB (moto); `stores` is one fresh set of stores of that backend."""

from __future__ import annotations

from tests.support.stores import backend, stores

__all__ = ["backend", "stores"]
