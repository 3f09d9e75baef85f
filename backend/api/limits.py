"""Limits per user, shared by every kernel replica through Redis.

* a submit rate per user (SUBMIT_RATE_LIMIT) and a sign-in rate per client address
  (LOGIN_RATE_LIMIT): Litestar's ``RateLimitConfig`` with a Redis store. The address is
  the peer's, or what X-Forwarded-For names when the peer is one of TRUSTED_PROXIES;
* failed sign-ins per user name, from any address (LOGIN_FAILURES_PER_ACCOUNT): beyond
  them the name's sign-ins wait, 30 s doubled at each further failure, never longer than
  LOGIN_LOCKOUT_MAX. Many addresses cannot guess one password faster than that; the price
  is that whoever keeps failing for a name keeps its password sign-in waiting (each wait
  is bounded, sessions and API tokens already held keep working);
* at most MAX_UNFINISHED_JOBS_PER_USER unfinished jobs: the count comes from the data
  service at most every COUNT_TTL seconds per user and is kept in Redis, where every
  replica adds its accepted submits to it, so no replica asks the store per submit.

Admins are exempt from the submit limits. A limit reached is a 429 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import msgspec
import redis.asyncio as aioredis
from litestar import Request
from litestar.datastructures import MutableScopeHeaders
from litestar.exceptions import TooManyRequestsException
from litestar.middleware.rate_limit import (
    DURATION_VALUES,
    RateLimitConfig,
    RateLimitMiddleware,
    get_remote_address,
)
from litestar.stores.redis import RedisStore
from litestar.types import Message, Receive, Scope, Send
from redis.exceptions import RedisError

from backend.errors import DataServiceError, OverloadedError
from backend.store.client import DataServiceClient

log = logging.getLogger(__name__)

STORE = "rate_limit"  # the app's store (Redis) the rate limits keep their counts in
COUNT_TTL = 10  # seconds a user's unfinished count (plus the submits since) is trusted
FIRST_LOCKOUT = 30  # seconds a user name waits after LOGIN_FAILURES_PER_ACCOUNT failures
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")
_HIT = ("local hits = redis.call('incr', KEYS[1]) "
        "if hits == 1 then redis.call('pexpire', KEYS[1], ARGV[1]) end "
        "local ttl = redis.call('pttl', KEYS[1]) "
        "if ttl < 0 then redis.call('pexpire', KEYS[1], ARGV[1]) ttl = tonumber(ARGV[1]) end "
        "return {hits, ttl}")
# A sign-in for a name: refused (the ms to wait) while the name waits; else counted as a
# failure until it proves otherwise, so concurrent guesses cannot pass the count together.
# KEYS[1] the failures, KEYS[2] the wait; ARGV: the failures allowed, the first wait and
# the longest (ms). Failures outlive the longest wait, so one that ends gives one guess
# (and the next wait), not a fresh allowance.
_SIGN_IN = ("local wait = redis.call('pttl', KEYS[2]) "
            "if wait > 0 then return wait end "
            "local failures = redis.call('incr', KEYS[1]) "
            "redis.call('pexpire', KEYS[1], 2 * tonumber(ARGV[3])) "
            "local over = failures - tonumber(ARGV[1]) "
            "if over >= 0 then redis.call('set', KEYS[2], 1, 'px', "
            "math.min(tonumber(ARGV[3]), tonumber(ARGV[2]) * 2 ^ math.min(over, 30))) end "
            "return 0")
# Undo the count of a sign-in that checked no password, and the wait it may have begun.
_NOT_A_FAILURE = ("if redis.call('exists', KEYS[1]) == 1 and "
                  "redis.call('decr', KEYS[1]) < tonumber(ARGV[1]) then "
                  "redis.call('del', KEYS[2]) end return 0")
RESERVED, UNCOUNTED = -1, -2
# ARGV[1] the limit, ARGV[2] the places wanted (1, or a batch's jobs).
_RESERVE = ("local v = redis.call('get', KEYS[1]) "
            "if not v then return -2 end "
            "if tonumber(v) + tonumber(ARGV[2]) > tonumber(ARGV[1]) then return tonumber(v) end "
            "redis.call('incrby', KEYS[1], ARGV[2]) return -1")
_RELEASE = ("if redis.call('exists', KEYS[1]) == 1 then "
            "return redis.call('decrby', KEYS[1], ARGV[1]) end return 0")
_ADD_IF_COUNTED = ("if redis.call('exists', KEYS[1]) == 1 then "
                   "return redis.call('incrby', KEYS[1], ARGV[1]) end return 0")


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


@dataclass(slots=True)
class _Window:
    """One rate-limit window as Redis counted it: hits so far (this one included), and
    the time (epoch seconds) it ends."""

    hits: int
    reset: int


class AtomicRateLimitMiddleware(RateLimitMiddleware):
    """Litestar's rate limit middleware (its config, keys, exemptions, headers and 429),
    counting each request with one atomic Redis call (:meth:`FailOpenRedisStore.hit`: a
    fixed window) instead of a read and a write under a lock of this process: one round
    trip per submit, and replicas counting at once never lose a hit."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = scope["litestar_app"]
        request: Request[Any, Any, Any] = app.request_class(scope)
        if await self.should_check_request(request=request):
            send = await self._count(request, self._store(app), send)
        await self.app(scope, receive, send)

    def _store(self, app: Any) -> FailOpenRedisStore:
        store = self.config.get_store_from_app(app)
        assert isinstance(store, FailOpenRedisStore)
        return store

    async def _count(self, request: Request[Any, Any, Any], store: FailOpenRedisStore,
                     send: Send) -> Send:
        """Count the request in its window: a 429 beyond the limit, else ``send`` with the
        rate limit headers."""
        window = await store.hit(self.cache_key_from_request(request),
                                 DURATION_VALUES[self.unit])
        if window.hits > self.max_requests:
            raise TooManyRequestsException(headers=self._headers(window))
        if self.config.set_rate_limit_headers:
            return self._with_headers(send, self._headers(window))
        return send

    def _headers(self, window: _Window) -> dict[str, str]:
        config = self.config
        return {
            config.rate_limit_policy_header_key:
                f"{self.max_requests}; w={DURATION_VALUES[self.unit]}",
            config.rate_limit_limit_header_key: str(self.max_requests),
            config.rate_limit_remaining_header_key: str(max(0, self.max_requests - window.hits)),
            config.rate_limit_reset_header_key: str(max(0, window.reset - int(time.time()))),
        }

    @staticmethod
    def _with_headers(send: Send, headers: dict[str, str]) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                MutableScopeHeaders(message).update(headers)
            await send(message)
        return wrapped


def submit_rate_limit(value: str) -> RateLimitConfig | None:
    rate = parse_rate(value, "SUBMIT_RATE_LIMIT")
    if rate is None:
        return None
    return RateLimitConfig(rate_limit=rate, store=STORE,  # type: ignore[arg-type]
                           identifier_for_request=_submitter,
                           check_throttle_handler=_not_admin,
                           middleware_class=AtomicRateLimitMiddleware)


class _SignIn(msgspec.Struct):
    """The one field of a sign-in body the limits look at (the handler checks the rest)."""

    username: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


_SIGN_IN_BODY = msgspec.json.Decoder(_SignIn)


class SignInLimitMiddleware(AtomicRateLimitMiddleware):
    """The sign-in routes' limits: LOGIN_RATE_LIMIT per client address (the rate limit
    middleware's count), then LOGIN_FAILURES_PER_ACCOUNT per user name, whatever the
    address. A name that waits is refused before its password is checked (no hash is
    spent on it); the answer says the same for names that exist and names that do not."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = scope["litestar_app"]
        request: Request[Any, Any, Any] = app.request_class(scope, receive)
        store = self._store(app)
        if self.max_requests:  # 0: LOGIN_RATE_LIMIT is empty
            send = await self._count(request, store, send)
        auth = app.state.settings.auth
        name = None
        if auth.login_failures_per_account:
            try:  # read once: the handler gets the same body from the request's state
                name = _SIGN_IN_BODY.decode(await request.body()).username
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
                pass  # not a sign-in body: the handler answers 400
        if name is None:
            await self.app(scope, receive, send)
            return
        wait = await store.sign_in(name, auth.login_failures_per_account, FIRST_LOCKOUT,
                                   auth.login_lockout_max)
        if wait:
            raise TooManyRequestsException(
                detail="too many failed sign-ins for this user name",
                headers={self.config.rate_limit_reset_header_key: str(wait)})
        statuses: list[int] = []

        async def observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            await store.signed_in(name, statuses[0] if statuses else 500,
                                  auth.login_failures_per_account)


def login_rate_limit(value: str) -> RateLimitConfig:
    """The sign-in routes' limits (:class:`SignInLimitMiddleware`); an empty
    LOGIN_RATE_LIMIT turns off the count per address only."""
    rate = parse_rate(value, "LOGIN_RATE_LIMIT") or ("minute", 0)
    return RateLimitConfig(rate_limit=rate, store=STORE,  # type: ignore[arg-type]
                           identifier_for_request=_address,
                           middleware_class=SignInLimitMiddleware)


class FailOpenRedisStore(RedisStore):
    """Litestar's Redis store for the rate limits; a Redis that does not answer counts
    nothing rather than refuse every request (the queue's own checks still answer)."""

    def __init__(self, redis: aioredis.Redis, namespace: str) -> None:
        super().__init__(redis, namespace=namespace)
        self._hit_script = redis.register_script(_HIT)
        self._sign_in_script = redis.register_script(_SIGN_IN)
        self._not_a_failure = redis.register_script(_NOT_A_FAILURE)

    def _sign_in_keys(self, name: str) -> list[str]:
        # Fixed prefixes that differ before the name: no user name reaches another's keys.
        return [self._make_key(f"sign-in:failures:{name}"),
                self._make_key(f"sign-in:wait:{name}")]

    async def sign_in(self, name: str, failures: int, first_wait: int, longest: int) -> int:
        """0 if a sign-in for user ``name`` may check its password now (then it is counted
        as a failure until :meth:`signed_in` says otherwise), else the seconds it must wait."""
        try:
            wait_ms = await self._sign_in_script(
                keys=self._sign_in_keys(name), args=[failures, first_wait * 1000, longest * 1000])
        except RedisError as exc:
            log.warning("failed sign-ins not counted: Redis: %s", exc)
            return 0
        return math.ceil(int(wait_ms) / 1000)

    async def signed_in(self, name: str, status: int, failures: int) -> None:
        """The outcome of a sign-in :meth:`sign_in` let through: a success clears the
        name's failures and its wait; an answer that checked no password (a bad body, the
        data service down) is no failure."""
        try:
            if 200 <= status < 300:
                await self._redis.delete(*self._sign_in_keys(name))
            elif status != 401:
                await self._not_a_failure(keys=self._sign_in_keys(name), args=[failures])
        except RedisError as exc:
            log.warning("sign-in outcome not counted: Redis: %s", exc)

    async def hit(self, key: str, window_seconds: int) -> _Window:
        """Count one request in ``key``'s current window (created, with its expiry, by the
        window's first hit), in one atomic call."""
        try:
            hits, ttl_ms = await self._hit_script(keys=[self._make_key(key)],
                                                  args=[window_seconds * 1000])
        except RedisError as exc:
            log.warning("rate limits not counted: Redis: %s", exc)
            return _Window(0, int(time.time()) + window_seconds)
        return _Window(int(hits), int(time.time() + max(0, int(ttl_ms)) / 1000))

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
        self._reserve = connection.register_script(_RESERVE)
        self._release = connection.register_script(_RELEASE)
        # One count at a time per user in this process: when the kept count expires, the
        # submits in flight wait for that one count instead of each asking the store.
        self._counting: dict[str, asyncio.Future[int]] = {}

    @staticmethod
    def key(user: str) -> str:
        return f"taskbroker:user:{user}:unfinished"

    async def reserve(self, user: str, places: int = 1) -> bool:
        """Count ``places`` more unfinished jobs of ``user`` (one atomic Redis call), or
        raise :class:`OverloadedError` if that would be more than allowed. False when
        nothing was counted (no count could be had: the data service's own answer decides).
        :meth:`release` gives the places back if the submit then fails."""
        try:
            answer = int(await self._reserve(keys=[self.key(user)], args=[self.limit, places]))
            if answer == RESERVED:
                return True
            if answer == UNCOUNTED:  # first submit in COUNT_TTL: ask the store once
                answer = await self._count(user)
                if answer + places <= self.limit:
                    await self._add(keys=[self.key(user)], args=[places])
                    return True
        except (RedisError, DataServiceError):
            return False
        wanted = "" if places == 1 else f" and asks for {places} more"
        raise OverloadedError(
            f"user {user} has {answer} unfinished jobs{wanted}, over the limit "
            f"(MAX_UNFINISHED_JOBS_PER_USER={self.limit}); wait for some to finish", 5)

    async def release(self, user: str, places: int = 1) -> None:
        try:
            await self._release(keys=[self.key(user)], args=[places])
        except RedisError:
            pass  # the count is read again from the store within COUNT_TTL

    async def _count(self, user: str) -> int:
        counting = self._counting.get(user)
        if counting is not None:
            try:
                return await asyncio.shield(counting)
            except asyncio.CancelledError:
                if not counting.cancelled():
                    raise  # this request was cancelled
                return await self._count(user)  # the one counting was: count here
        counting = asyncio.get_running_loop().create_future()
        self._counting[user] = counting
        try:
            value = await self.client.count_unfinished(user)
            await self.redis.set(self.key(user), value, ex=COUNT_TTL, nx=True)
        except asyncio.CancelledError:
            counting.cancel()
            raise
        except Exception as exc:
            counting.set_exception(exc)
            counting.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        else:
            counting.set_result(value)
            return value
        finally:
            del self._counting[user]
