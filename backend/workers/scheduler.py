"""RQ's scheduler (due retries move from the scheduled registry to their queue), with a
lock that a dead host cannot hold for long.

RQ's scheduler holds a per-queue lock for ``interval + 60`` seconds and refreshes it on
every run, so when the host holding it dies, no retry moves for a minute. Here the lock
lives ``lock_ttl`` seconds (a few heartbeats): another executor takes over within that.
"""

from __future__ import annotations

from datetime import datetime

from rq.scheduler import RQScheduler
from rq.scripts import acquire_or_refresh_lock


class Scheduler(RQScheduler):
    """An RQScheduler run in-line by the worker executor, with a short lock."""

    def __init__(self, queues: list[str], *, lock_ttl: int, **kwargs: object) -> None:
        super().__init__(queues, **kwargs)  # type: ignore[arg-type]
        self.lock_ttl = max(2, lock_ttl)

    def acquire_locks(self, auto_start: bool = False) -> set[str]:
        """Acquire or refresh the lock of each queue; returns the queues this one owns."""
        owned = set()
        for name in self._queue_names:
            outcome = acquire_or_refresh_lock(self.connection, self.get_locking_key(name),
                                              self.name, self.lock_ttl)
            if outcome in ("acquired", "refreshed"):
                owned.add(name)
        if owned != self._acquired_locks:
            self._scheduled_job_registries = []  # rebuilt for the queues now owned
        self._acquired_locks = owned
        self.lock_acquisition_time = datetime.now()
        return owned

    def move_due_jobs(self) -> None:
        """Move every due job of the queues whose lock this scheduler holds."""
        if self.acquire_locks():
            self.enqueue_scheduled_jobs()
