"""Limits per user, shared by every kernel replica through Redis.

* a submit rate per user (SUBMIT_RATE_LIMIT) and a sign-in rate per address
  (LOGIN_RATE_LIMIT): Litestar's ``RateLimitConfig`` with a Redis store;
* at most MAX_UNFINISHED_JOBS_PER_USER unfinished jobs: the count comes from the data
  service at most every COUNT_TTL seconds per user and is kept in Redis, where every
  replica adds its accepted submits to it, so no replica asks the store per submit.

Admins are exempt from the submit limits. A limit reached is a 429 with ``Retry-After``.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis
from litestar import Request
from litestar.middleware.rate_limit import RateLimitConfig, get_remote_address
from litestar.stores.redis import RedisStore
from redis.exceptions import RedisError

from backend.api.submit import OverloadedError
from backend.client import DataServiceClient
from backend.errors import DataServiceError

log = logging.getLogger(__name__)

STORE = "rate_limit"  # the app's store (Redis) the rate limits keep their counts in
COUNT_TTL = 2  # seconds a user's unfinished count is trusted
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")
_ADD_IF_COUNTED = ("if redis.call('exists', KEYS[1]) == 1 then "
                   "return redis.call('incr', KEYS[1]) end return 0")


def parse_rate(value: str, setting: str) -> tuple[str, int] | None:
    """``"20/second"`` -> ``("second", 20)``; empty -> None (no limit)."""
    if not value.strip():
        return None
    match = _RATE.match(value)
    if match is None or int(match.group(1)) < 1:
        raise SystemExit(f"{setting}={value!r}: write it as N/second, N/minute, N/hour or N/day")
    return match.group(2), int(match.group(1))


def _submitter(request: Request[Any, Any, Any]) -> str:
    return f"submit:{request.user.username}"


def _address(request: Request[Any, Any, Any]) -> str:
    return f"login:{get_remote_address(request)}"


async def _not_admin(request: Request[Any, Any, Any]) -> bool:
    return not request.user.admin


def submit_rate_limit(value: str) -> RateLimitConfig | None:
    rate = parse_rate(value, "SUBMIT_RATE_LIMIT")
    if rate is None:
        return None
    return RateLimitConfig(rate_limit=rate, store=STORE,  # type: ignore[arg-type]
                           identifier_for_request=_submitter,
                           check_throttle_handler=_not_admin)


def login_rate_limit(value: str) -> RateLimitConfig | None:
    rate = parse_rate(value, "LOGIN_RATE_LIMIT")
    if rate is None:
        return None
    return RateLimitConfig(rate_limit=rate, store=STORE,  # type: ignore[arg-type]
                           identifier_for_request=_address)


class FailOpenRedisStore(RedisStore):
    """Litestar's Redis store for the rate limits; a Redis that does not answer counts
    nothing rather than refuse every request (the queue's own checks still answer)."""

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        try:
            return await super().get(key, renew_for)
        except RedisError as exc:
            log.warning("rate limits not counted: Redis: %s", exc)
            return None

    async def set(self, key: str, value: str | bytes, expires_in: int | timedelta | None = None,
                  ) -> None:
        try:
            await super().set(key, value, expires_in)
        except RedisError:
            pass


class UnfinishedJobs:
    """MAX_UNFINISHED_JOBS_PER_USER, counted in Redis (see the module doc)."""

    def __init__(self, connection: aioredis.Redis, client: DataServiceClient, limit: int) -> None:
        self.redis = connection
        self.client = client
        self.limit = limit
        self._add = connection.register_script(_ADD_IF_COUNTED)

    @staticmethod
    def key(user: str) -> str:
        return f"taskbroker:user:{user}:unfinished"

    async def admit(self, user: str) -> None:
        """Raise :class:`OverloadedError` if ``user`` has as many unfinished jobs as allowed.
        A count that cannot be had admits (the data service's own answer decides)."""
        try:
            value = await self.redis.get(self.key(user))
            if value is None:
                value = await self.client.count_unfinished(user)
                await self.redis.set(self.key(user), value, ex=COUNT_TTL, nx=True)
        except (RedisError, DataServiceError):
            return
        if int(value) >= self.limit:
            raise OverloadedError(
                f"user {user} has {int(value)} unfinished jobs, the limit "
                f"(MAX_UNFINISHED_JOBS_PER_USER={self.limit}); wait for some to finish", 5)

    async def accepted(self, user: str) -> None:
        try:
            await self._add(keys=[self.key(user)])
        except RedisError:
            pass  # the count is read again from the store within COUNT_TTL
