"""In-process stand-ins for the data service and the dead-letter queue.

They keep the rules that matter to the workers: status moves follow
``backend.jobs.TRANSITIONS`` and an illegal move is a TransitionError (the 409). Both can
"go down" (``down = True``): every call then fails as the real ones do when unreachable.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

from backend.errors import DataServiceError, JobNotFoundError, QueueError, TransitionError
from backend.jobs import (
    TERMINAL_STATUSES,
    CreateJob,
    Job,
    JobStatus,
    QueueMessage,
    UpdateJob,
    can_move,
    utcnow,
)
from backend.settings import Settings, WorkerSettings
from backend.workers.services import WorkerServices


class FakeDataService:
    """The data service's job rules, in memory; the sync client's methods."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.updates: list[tuple[str, dict[str, Any]]] = []
        self.requests: list[tuple[str, str]] = []  # (method, job id) of every call answered
        self.down = False
        self.latency = 0.0  # seconds each update takes, to let concurrent callers overlap
        self._lock = threading.Lock()

    def _answer(self) -> None:
        if self.down:
            raise DataServiceError("data service unavailable (fake is down)")

    def add(self, name: str, params: dict[str, Any] | None = None, *,
            status: JobStatus = JobStatus.QUEUED, estimated_time: float | None = None,
            executor: str = "standard", attempts: int = 0) -> Job:
        now = utcnow()
        job = Job(id=secrets.token_hex(12), name=name, user_id="tester", params=params,
                  estimated_time=estimated_time, executor=executor, status=status,
                  attempts=attempts, created_at=now, updated_at=now)
        self.jobs[job.id] = job
        return job

    def create_empty_job(self, job: CreateJob) -> str:
        return self.add(job.name, job.params, status=JobStatus.CREATED,
                        estimated_time=job.estimated_time, executor=job.executor).id

    def get_job(self, job_id: str) -> Job:
        self._answer()
        self.requests.append(("GET", job_id))
        return self._find(job_id)

    def _find(self, job_id: str) -> Job:
        try:
            return self.jobs[job_id]
        except KeyError:
            raise JobNotFoundError(f"job {job_id} not found") from None

    def update_job(self, job_id: str, update: UpdateJob) -> Job:
        self._answer()
        self.requests.append(("PUT", job_id))
        time.sleep(self.latency)
        with self._lock:
            job = self._find(job_id)
            fields = update.fields_set()
            target = fields.get("status")
            if target is not None and not can_move(job.status, target):
                raise TransitionError(f"cannot move {job.status} -> {target}", str(job.status))
            if target is None and job.status in TERMINAL_STATUSES:
                raise TransitionError(f"job is {job.status}", str(job.status))
            self.updates.append((job_id, fields))
            for name, value in fields.items():
                setattr(job, name, value)
            job.updated_at = utcnow()
            if target == JobStatus.RUNNING:
                job.started_at = job.updated_at
            if target in TERMINAL_STATUSES:
                job.finished_at = job.updated_at
            return job

    def requests_for(self, job_id: str) -> list[str]:
        """The methods of every request made about the job, in order."""
        return [method for method, j in self.requests if j == job_id]

    def attempts_reported(self, job_id: str) -> list[int]:
        """The attempt numbers the job was reported ``running`` with, in order."""
        return [f["attempts"] for j, f in self.updates if j == job_id and "attempts" in f]

    def statuses(self, job_id: str) -> list[str]:
        """Every status reported for the job, in order."""
        return [str(f["status"]) for j, f in self.updates if j == job_id and "status" in f]

    def close(self) -> None:
        pass


class FakeDeadLetters:
    def __init__(self) -> None:
        self.sent: list[tuple[QueueMessage, str]] = []
        self.down = False

    def send(self, message: QueueMessage, reason: str) -> None:
        if self.down:
            raise QueueError("dead-letter queue unavailable (fake is down)")
        self.sent.append((message, reason))

    def close(self) -> None:
        pass


def worker_settings(**overrides: Any) -> Settings:
    """Settings with fast retries; ``overrides`` are WorkerSettings fields."""
    settings = Settings()
    values: dict[str, Any] = dict(max_attempts=3, retry_backoff_base=0.0, retry_backoff_max=0.0,
                                  report_interval=0.0, worker_heartbeat=0.2,
                                  executors="standard,priority")
    values.update(overrides)
    settings.worker = WorkerSettings(**values)
    return settings


def fake_services(settings: Settings, redis_client: Any = None) -> WorkerServices:
    return WorkerServices(settings, redis_client=redis_client, client=FakeDataService(),  # type: ignore[arg-type]
                          dead_letters=FakeDeadLetters())  # type: ignore[arg-type]
