"""An in-memory JobStore with the DynamoDB store's conditions, for fast tests."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime

from chalicelib.core.jobs import Job, JobSpec, new_job


class InMemoryJobStore:
    def __init__(self) -> None:
        self.items: dict[str, Job] = {}
        self.requests = 0
        self._lock = threading.Lock()

    def get(self, slug: str) -> Job | None:
        with self._lock:
            self.requests += 1
            return self.items.get(slug)

    def by_ping_id(self, ping_id: str) -> Job | None:
        with self._lock:
            self.requests += 1
            return next((j for j in self.items.values() if j.ping_id == ping_id), None)

    def scan(self) -> list[Job]:
        with self._lock:
            self.requests += 1
            return list(self.items.values())

    def define(self, spec: JobSpec, ping_id: str, now: datetime) -> Job:
        with self._lock:
            self.requests += 1
            known = self.items.get(spec.slug)
            job = (
                new_job(spec, ping_id, now)
                if known is None
                else replace(known, spec=spec, version=known.version)
            )
            job = replace(job, version=job.version + 1)
            self.items[spec.slug] = job
            return job

    def create(self, job: Job) -> bool:
        with self._lock:
            self.requests += 1
            if job.spec.slug in self.items:
                return False
            self.items[job.spec.slug] = job
            return True

    def put(self, job: Job, expected_version: int) -> bool:
        with self._lock:
            self.requests += 1
            known = self.items.get(job.spec.slug)
            if known is None or known.version != expected_version or known.ping_id != job.ping_id:
                return False
            self.items[job.spec.slug] = job
            return True

    def delete(self, slug: str) -> bool:
        with self._lock:
            self.requests += 1
            return self.items.pop(slug, None) is not None
