"""Retention: finished jobs older than JOB_RETENTION_DAYS are deleted, unfinished never.

Every data service replica sweeps every RETENTION_SWEEP_INTERVAL seconds (jittered, so
replicas started together do not sweep together; two sweeping at once is harmless, a
delete is idempotent). A sweep deletes in batches of BATCH jobs with a pause between
them, so a large backlog of old jobs never holds the database for long, and logs how
many it deleted. The age counts from ``finished_at``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import timedelta

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from backend.jobs import TERMINAL_STATUSES, utcnow
from backend.settings import StoreSettings
from backend.store.documents import collection

log = logging.getLogger(__name__)

BATCH = 1000
PAUSE = 0.2  # seconds between two batches of one sweep
_FINISHED = sorted(str(status) for status in TERMINAL_STATUSES)


async def sweep_once(jobs: AsyncCollection, days: float, *, batch: int = BATCH,
                     pause: float = PAUSE) -> int:
    """Delete the finished jobs that finished more than ``days`` ago; returns how many."""
    cutoff = utcnow() - timedelta(days=days)
    # Only a finished job has finished_at, and a finished job never changes again: what
    # the query finds may be deleted by id. (The status is checked too, in Python: a
    # MongoDB-wire server may not combine $in with a date comparison correctly.)
    old = {"finished_at": {"$lt": cutoff, "$ne": None}}
    deleted = 0
    while True:
        found = [doc async for doc in jobs.find(old, {"_id": 1, "status": 1}).limit(batch)]
        if not found:
            return deleted
        ids = [doc["_id"] for doc in found if doc.get("status") in _FINISHED]
        if ids:
            deleted += (await jobs.delete_many({"_id": {"$in": ids}})).deleted_count
        if len(found) < batch or not ids:
            return deleted
        await asyncio.sleep(pause)


async def keep_sweeping(settings: StoreSettings) -> None:
    """Sweep until cancelled (nothing at all when JOB_RETENTION_DAYS is 0)."""
    days, interval = settings.job_retention_days, settings.retention_sweep_interval
    if days <= 0:
        log.info("retention: finished jobs are kept forever (JOB_RETENTION_DAYS=0)")
        return
    wait = interval * random.uniform(0.1, 1.0)  # replicas started together spread out
    while True:
        await asyncio.sleep(wait)
        wait = interval * random.uniform(0.8, 1.2)
        try:
            deleted = await sweep_once(collection(), days)
        except PyMongoError as exc:
            log.warning("retention sweep failed (%s); trying again in about %.0f s", exc, wait)
            continue
        log.log(logging.INFO if deleted else logging.DEBUG,
                "retention sweep: deleted %d finished jobs older than %g days", deleted, days)
