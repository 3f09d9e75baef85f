"""The outbox: how an attempt ended is kept in Redis until the data service has it.

The last report of an attempt (``succeeded`` with its result, ``failed`` with its error,
``retrying``, ``cancelled``) goes to the data service over HTTP, which the client retries
for ``DATA_SERVICE_DEADLINE``. A data service down for longer would lose that report and
leave the job ``running`` for good. So the report is first recorded in the Redis hash
``taskbroker:outbox`` (one field per job id, no expiry), then sent, and removed only
once the data service took it (200) or refused it for good (409: the job moved on;
404: it was deleted; another 4xx). A failed job's dead-letter message rides in the same
entry and goes out once the job is recorded as failed; if the queue is down, the entry
stays with just that message.

What is left is sent again by every worker executor's periodic sweep (:func:`sweep`),
oldest first, and by the worker about to start the job's next attempt (:func:`flush`),
so a late ``retrying`` never lands on top of the next ``running``. Every send holds the
entry's lock (one Redis lock per job), so executors sweeping side by side send an entry
once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import msgspec
from msgspec.structs import replace
from redis.exceptions import LockError

from backend.client import DataServiceRefusedError
from backend.errors import DataServiceError, JobNotFoundError, TransitionError
from backend.jobs import JobStatus, QueueMessage, UpdateJob

if TYPE_CHECKING:
    from backend.workers.services import WorkerServices

log = logging.getLogger(__name__)

OUTBOX_KEY = "taskbroker:outbox"
LOCK_KEY = "taskbroker:outbox:lock:{}"

# The data service's answers that settle a report for good: it is not sent again.
REFUSED = (TransitionError, JobNotFoundError, DataServiceRefusedError)


class Entry(msgspec.Struct, kw_only=True):
    """One job's report not yet settled; ``update`` is None once the data service has it."""

    job_id: str
    attempt: int
    recorded_at: float
    update: UpdateJob | None
    dead_letter: QueueMessage | None = None
    reason: str = ""


_decoder = msgspec.json.Decoder(Entry)


def report(services: WorkerServices, job_id: str, attempt: int, update: UpdateJob,
           dead_letter: QueueMessage | None = None, reason: str = "") -> None:
    """Record how attempt ``attempt`` of ``job_id`` ended, then send it.

    ``dead_letter`` (with ``reason``) goes to the dead-letter queue once the job is
    recorded as failed. Raises what the data service answered: a refusal for good
    (TransitionError, JobNotFoundError, DataServiceRefusedError; the entry is gone) or
    DataServiceError (the entry stays for the sweep).
    """
    entry = Entry(job_id=job_id, attempt=attempt, recorded_at=time.time(), update=update,
                  dead_letter=dead_letter, reason=reason)
    with _locked(services, job_id, wait=True) as held:
        if not held:  # cannot happen unless its lock is taken again as soon as it expires
            raise DataServiceError(f"job {job_id}: its outbox entry stayed locked; "
                                   "the report is NOT recorded")
        services.redis.hset(OUTBOX_KEY, job_id, msgspec.json.encode(entry))
        _send(services, entry)


def flush(services: WorkerServices, job_id: str) -> None:
    """Settle the job's pending report, if any, before anything else is reported for it.

    Raises DataServiceError if it is still pending (the data service is down, or
    someone else is sending it right now).
    """
    if not services.redis.hexists(OUTBOX_KEY, job_id):
        return
    with _locked(services, job_id, wait=False) as held:
        if not held:
            raise DataServiceError(f"job {job_id}: a report of an earlier attempt is being sent")
        entry = _load(services, job_id)
        if entry is not None:
            try:
                _send(services, entry)
            except REFUSED as exc:
                log.info("job %s: its pending report was refused for good: %s", job_id, exc)


def pending(services: WorkerServices) -> list[Entry]:
    """Every report still in the outbox, oldest first."""
    entries = []
    for job_id, raw in services.redis.hgetall(OUTBOX_KEY).items():
        try:
            entries.append(_decoder.decode(raw))
        except msgspec.DecodeError:  # left for an operator; never blocks the others
            log.error("outbox entry of job %r is unreadable: %r", job_id, raw[:200])
    return sorted(entries, key=lambda entry: entry.recorded_at)


def sweep(services: WorkerServices) -> list[str]:
    """Send every pending report again, oldest first; returns the ids of the jobs settled.

    Stops at the first DataServiceError: the data service is still down, and each try
    would wait out the client's deadline.
    """
    settled = []
    entries = pending(services)
    for entry in entries:
        with _locked(services, entry.job_id, wait=False) as held:
            if not held:
                continue  # another executor, or the worker itself, is sending it
            current = _load(services, entry.job_id)  # it may have been settled meanwhile
            if current is None:
                continue
            try:
                _send(services, current)
            except DataServiceError as exc:
                log.warning("outbox: %s; %d reports wait for the next sweep", exc,
                            len(entries) - len(settled))
                break
            except REFUSED as exc:
                log.info("job %s: its pending report was refused for good: %s",
                         current.job_id, exc)
            else:
                log.info("job %s: delivered its pending report of attempt %d",
                         current.job_id, current.attempt)
            settled.append(current.job_id)
    return settled


def _send(services: WorkerServices, entry: Entry) -> None:
    """Send ``entry`` (its lock held) and settle it; raises as :func:`report` does."""
    if entry.update is not None:
        try:
            services.client.update_job(entry.job_id, entry.update)
        except TransitionError as exc:
            # "Already failed" may be our own earlier send that landed unanswered.
            _settle(services, entry, dead_letter=exc.current == JobStatus.FAILED)
            raise
        except (JobNotFoundError, DataServiceRefusedError) as exc:
            # A failure the data service would not record still goes to the dead-letter
            # queue, for an operator; a deleted job's does not.
            _settle(services, entry, dead_letter=isinstance(exc, DataServiceRefusedError))
            raise
    _settle(services, entry, dead_letter=True)


def _settle(services: WorkerServices, entry: Entry, *, dead_letter: bool) -> None:
    if dead_letter and entry.dead_letter is not None:
        try:
            services.dead_letters.send(entry.dead_letter, entry.reason)
        except Exception as exc:  # any queue failure: keep the message for the sweep
            log.warning("job %s: dead-letter queue unavailable (%s); kept in the outbox",
                        entry.job_id, exc)
            services.redis.hset(OUTBOX_KEY, entry.job_id,
                                msgspec.json.encode(replace(entry, update=None)))
            return
    services.redis.hdel(OUTBOX_KEY, entry.job_id)


def _load(services: WorkerServices, job_id: str) -> Entry | None:
    raw = services.redis.hget(OUTBOX_KEY, job_id)
    return _decoder.decode(raw) if raw is not None else None


@contextmanager
def _locked(services: WorkerServices, job_id: str, *, wait: bool) -> Iterator[bool]:
    """Hold the entry's lock (yields False if not acquired).

    It expires after longer than any send can take (the client gives up after its
    deadline plus one request's timeout), so it outlives its holder only if that died.
    """
    api = services.settings.api
    ttl = 2 * (api.data_service_deadline + api.data_service_timeout) + 5
    lock = services.redis.lock(LOCK_KEY.format(job_id), timeout=ttl, blocking=wait,
                               blocking_timeout=ttl + 1)
    held = bool(lock.acquire())
    try:
        yield held
    finally:
        if held:
            try:
                lock.release()
            except LockError:  # expired meanwhile: nothing of ours to release
                log.warning("job %s: its outbox lock expired during a send", job_id)
