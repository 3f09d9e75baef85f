"""Idempotent submits: the ``Idempotency-Key`` header.

A client that retries a submit (after a timeout, a dropped connection, a 503) sends the
same key again; within IDEMPOTENCY_TTL seconds the kernel answers the first job's id and
creates nothing. The key is claimed in Redis *before* anything is recorded, with one
atomic call (SET if absent), under a name scoped to the caller, holding the job id the
kernel chose and a hash of the request (body and executor):

* the claim wins: this request records and queues the job, then marks the key done;
  if it fails (4xx, 429, 503) the key is released, so a retry can succeed;
* the key is done: the answer is the first job's id (the same request) or a 422 (the
  key was used for another request);
* the key is pending (the two requests race): this one waits briefly for the first's
  outcome and answers the same id, or claims the key if the first one failed.

Every kernel replica shares the keys through Redis. Without Redis a request that carries
a key is refused (503): it could not be made safe to retry.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import msgspec
import redis.asyncio as aioredis
from litestar.exceptions import ClientException
from litestar.status_codes import HTTP_409_CONFLICT, HTTP_422_UNPROCESSABLE_ENTITY
from redis.exceptions import RedisError
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from backend.errors import IdempotencyUnavailableError
from backend.web import invalid

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
_VALID = re.compile(r"^[\x20-\x7e]{1,128}$")
WAIT_SECONDS = 15.0  # how long a racing request waits for the first one's outcome
# A claim whose request never ended (its kernel died) frees its key after this long; a
# submit takes at most DATA_SERVICE_DEADLINE plus the queue's send timeout.
PENDING_SECONDS = 120
_POLL_SECONDS = 0.05
SETTLE_SECONDS = 5.0  # how long marking a key done is tried again

# KEYS[1] the key; ARGV[1] the claim, ARGV[2] its lifetime (s). The current value, or nil
# when this call claimed the key.
_CLAIM = ("local v = redis.call('get', KEYS[1]) if v then return v end "
          "redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2]) return false")
# Replace (ARGV[2], lifetime ARGV[3]) or delete (ARGV[2] empty) the claim ARGV[1], only if
# it is still this request's.
_SETTLE = ("if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end "
           "if ARGV[2] == '' then redis.call('del', KEYS[1]) "
           "else redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[3]) end return 1")


class _Claim(msgspec.Struct, kw_only=True):
    job_id: str
    request: str  # hash of the request the key was first used for
    done: bool = False


@dataclass
class Outcome:
    """What a keyed submit should do: ``replay`` answers ``job_id`` (recorded before);
    otherwise record and queue the job under ``job_id`` (the claim is this request's)."""

    job_id: str
    replay: bool


def check_key(value: str | None) -> str | None:
    """The header's value, or a 400 naming the rule."""
    if value is None:
        return None
    if not _VALID.match(value):
        message = "must be 1 to 128 printable ASCII characters (no control characters)"
        raise invalid(HEADER, message, "header")
    return value


def request_hash(body: msgspec.Struct, executor: str | None) -> str:
    """A hash of what a submit asks for: the decoded body (field and key order do not
    matter) and the executor."""
    canonical = msgspec.json.encode([executor or "", body], order="sorted")
    return hashlib.sha256(canonical).hexdigest()


class IdempotencyKeys:
    """The keys of every user, in Redis, for ``ttl`` seconds each."""

    def __init__(self, connection: aioredis.Redis, ttl: int) -> None:
        self.redis = connection
        self.ttl = ttl
        self._claim = connection.register_script(_CLAIM)
        self._settle = connection.register_script(_SETTLE)

    @staticmethod
    def redis_key(user: str, key: str) -> str:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return f"taskbroker:idempotency:{user}:{digest}"

    @asynccontextmanager
    async def claim(self, user: str, key: str, request: str, job_id: str,
                    ) -> AsyncIterator[Outcome]:
        """Claim ``key`` of ``user`` for this request (which would create ``job_id``).

        Yields the outcome; when it is this request's to record, the key is marked done if
        the block ends normally, and released if it raises. Raises a 422 if the key was
        used for another request, a 409 if the first request is still running after
        :data:`WAIT_SECONDS`, :class:`IdempotencyUnavailableError` without Redis.
        """
        name = self.redis_key(user, key)
        mine = msgspec.json.encode(_Claim(job_id=job_id, request=request))
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            current = await self._call(self._claim, name, mine,
                                       min(self.ttl, PENDING_SECONDS))
            if current is None:
                break
            claim = msgspec.json.decode(current, type=_Claim)
            if claim.request != request:
                raise ClientException(
                    status_code=HTTP_422_UNPROCESSABLE_ENTITY,
                    detail=f"{HEADER} {key!r} was already used for a different request "
                           f"(another body or executor) within IDEMPOTENCY_TTL "
                           f"({self.ttl} s); use a new key for a new job",
                    extra={"key": HEADER, "source": "header", "job_id": claim.job_id})
            if claim.done:
                yield Outcome(claim.job_id, replay=True)
                return
            if time.monotonic() > deadline:
                raise ClientException(
                    status_code=HTTP_409_CONFLICT,
                    detail=f"a request with {HEADER} {key!r} is still being handled; "
                           "try again shortly",
                    extra={"key": HEADER, "source": "header", "job_id": claim.job_id})
            await asyncio.sleep(_POLL_SECONDS)
        try:
            yield Outcome(job_id, replay=False)
        except BaseException:
            await asyncio.shield(self._release(name, mine))
            raise
        done = msgspec.json.encode(_Claim(job_id=job_id, request=request, done=True))
        try:
            # The job is recorded and queued: its key must say so, or a retry after the
            # pending claim expires would make a second job. Redis gets a few tries.
            async for attempt in AsyncRetrying(
                    retry=retry_if_exception_type(IdempotencyUnavailableError),
                    stop=stop_after_delay(SETTLE_SECONDS), wait=wait_exponential(0.1, max=2),
                    reraise=True):
                with attempt:
                    await self._call(self._settle, name, mine, done, self.ttl)
        except IdempotencyUnavailableError as exc:
            # Still pending: a retry within PENDING_SECONDS gets a 409; after that the
            # key is free again and a retry would make a second job.
            log.error("job %s is submitted but its %s could not be marked done: %s",
                      job_id, HEADER, exc)

    async def _release(self, name: str, mine: bytes) -> None:
        try:
            await self._call(self._settle, name, mine, b"", 0)
        except IdempotencyUnavailableError:
            pass  # the claim expires with its TTL

    @staticmethod
    async def _call(script: object, name: str, *args: object) -> bytes | None:
        try:
            return await script(keys=[name], args=list(args))  # type: ignore[operator]
        except RedisError as exc:
            raise IdempotencyUnavailableError(
                f"idempotency keys are kept in Redis, which did not answer: {exc}") from exc
