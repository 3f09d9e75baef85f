"""The webhook sender: due deliveries from Redis, POSTed signed, retried with backoff.

Deliveries wait in Redis (:mod:`backend.webhook_signing`): a sorted set of job ids by due time
and a hash per delivery (URL, body, attempts). Every dispatcher replica runs a sender;
each claims due deliveries with one Lua call that also pushes their due time a lease
ahead, so no other sender takes them meanwhile, and a sender killed mid-delivery only
delays them by the lease: at least once, never lost.

A delivery ends with a 2xx answer, or after WEBHOOK_MAX_ATTEMPTS (logged as given up);
any other outcome (an error status, a redirect, which is never followed, a timeout, no
connection) makes it due again after ``WEBHOOK_BACKOFF_BASE * 2**(attempt - 1)``
seconds (at most WEBHOOK_BACKOFF_MAX, with some jitter). The URL is checked against
WEBHOOK_ALLOWED_HOSTS again before each attempt. Slow receivers hold up nothing but
their own delivery: at most CONCURRENCY are in flight, each bounded by WEBHOOK_TIMEOUT.

Each attempt is signed with the job owner's secret, derived from WEBHOOK_SECRET and the
owner's key id (:func:`backend.webhook_signing.derive_secret`), which the data service keeps and
this sender caches for KEY_CACHE_SECONDS: a rotation takes effect within that time. An
owner without a key id (who never made a webhook secret) gets no request: the attempt
counts as failed, so one made meanwhile signs the next; WEBHOOK_SECRET itself never
signs anything. While the data service is down, deliveries wait without using attempts.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from urllib.parse import urlsplit

import aiohttp
import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from backend.dispatcher.pause import pause
from backend.errors import CallbackRefusedError, DataServiceError, DataServiceRefusedError
from backend.settings import WebhookSettings
from backend.store.client import DataServiceClient
from backend.webhook_signing import (
    DUE_KEY,
    JOB_ID_HEADER,
    KEEP_DONE,
    SIGNATURE_HEADER,
    check_callback_url,
    delivery_key,
    derive_secret,
    signature,
)

log = logging.getLogger(__name__)

CONCURRENCY = 16  # deliveries in flight per sender
POLL = 0.5  # seconds between two looks for due deliveries when none was due
LEASE_EXTRA = 5.0  # seconds a claim outlives twice the delivery's timeout
KEY_CACHE_SECONDS = 30.0  # how long a user's key id is used before it is read again
KEY_CACHE_MAX = 10_000  # users whose keys are cached at once (then the cache starts over)
DATA_SERVICE_RETRY = 5.0  # seconds a delivery waits when the data service did not answer

# KEYS: due set. ARGV: most to claim, lease (ms). Claims due ids, due again a lease ahead.
_CLAIM = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), id) end
return due
"""
# KEYS: due set. ARGV: job id, delay (ms). Due again after the delay (if still scheduled).
_DUE_IN = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
return redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
"""


class _Owner(msgspec.Struct):
    """What the sender reads of a delivery's body (the job): whose secret signs it."""

    user_id: str


def backoff(attempt: int, settings: WebhookSettings) -> float:
    """Seconds before the attempt after ``attempt`` (the first retry waits the base)."""
    delay = settings.webhook_backoff_base * 2 ** min(attempt - 1, 30)
    return min(settings.webhook_backoff_max, delay) * random.uniform(0.9, 1.1)


class WebhookSender:
    """Delivers due webhooks until :meth:`stop`."""

    def __init__(self, settings: WebhookSettings, connection: Redis,
                 client: DataServiceClient, *, concurrency: int = CONCURRENCY,
                 key_cache: float = KEY_CACHE_SECONDS) -> None:
        self.settings = settings
        self.redis = connection
        self.client = client
        self.concurrency = concurrency
        self.key_cache = key_cache
        self._secrets: dict[str, tuple[float, str | None]] = {}  # user -> (read at, secret)
        # A claim outlasts the delivery (Redis calls and a POST bounded by the timeout).
        self.lease_ms = int((2 * settings.webhook_timeout + LEASE_EXTRA) * 1000)
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        if not self.settings.webhook_secret:
            log.error("WEBHOOK_SECRET is not set: this dispatcher delivers no webhook (they "
                      "wait in Redis until a dispatcher has the secret)")
            await self._stopping.wait()
            return
        hosts = ", ".join(self.settings.allowed_hosts) or "none (WEBHOOK_ALLOWED_HOSTS is empty)"
        log.info("delivering webhooks; allowed hosts: %s", hosts)
        timeout = aiohttp.ClientTimeout(total=self.settings.webhook_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            self._session = session
            while not self._stopping.is_set():
                try:
                    claimed = await self.deliver_due()
                except RedisError as exc:
                    log.warning("webhooks: Redis unavailable (%s); trying again in 1 s", exc)
                    await pause(self._stopping, 1.0)
                    continue
                if not claimed:
                    await pause(self._stopping, POLL)
            # What is in flight gets its timeout; a claim cut short is delivered again.
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=self.settings.webhook_timeout + 1)
            for task in list(self._tasks):
                task.cancel()
        self._session = None

    async def deliver_due(self) -> int:
        """Claim due deliveries (as many as there is room for) and start them; returns how
        many were claimed."""
        room = self.concurrency - len(self._tasks)
        if room <= 0:
            return 0
        claimed = await self.redis.eval(_CLAIM, 1, DUE_KEY, room, self.lease_ms)
        for raw in claimed:
            job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            task = asyncio.create_task(self._deliver_logged(job_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(claimed)

    async def _deliver_logged(self, job_id: str) -> None:
        try:
            await self.deliver(job_id)
        except RedisError as exc:  # the claim expires: delivered again after the lease
            log.warning("webhook of job %s: Redis failed mid-delivery (%s); it is delivered "
                        "again later", job_id, exc)
        except Exception:  # a bug must not stop the sender; the claim expires
            log.exception("webhook of job %s: delivery failed", job_id)

    async def deliver(self, job_id: str) -> bool:
        """One attempt of the job's delivery; True when it ended (delivered or given up)."""
        key = delivery_key(job_id)
        fields = await self.redis.hgetall(key)
        if not fields or b"state" in fields or b"url" not in fields:
            await self.redis.zrem(DUE_KEY, job_id)  # ended meanwhile, or a stray entry
            return True
        url, body = fields[b"url"].decode(), fields.get(b"body", b"")
        where = urlsplit(url).netloc
        try:
            owner = msgspec.json.decode(body, type=_Owner).user_id
        except msgspec.DecodeError as exc:
            return await self._end(job_id, "given up", f"its body is not a job: {exc}", 0)
        try:
            secret = await self.secret_of(owner)
        except DataServiceError as exc:  # our fault, not the receiver's: no attempt used
            log.warning("webhook of job %s waits: the data service did not give %s's key "
                        "(%s)", job_id, owner, exc)
            await self.redis.eval(_DUE_IN, 1, DUE_KEY, job_id, int(DATA_SERVICE_RETRY * 1000))
            return False
        attempt = int(await self.redis.hincrby(key, "attempts", 1))
        try:
            check_callback_url(url, self.settings.allowed_hosts)
        except CallbackRefusedError as exc:
            return await self._end(job_id, "given up", f"{where}: {exc.reason}", attempt)
        if secret is None:
            problem = (f"not sent: user {owner!r} has no webhook secret yet (they make one "
                       "with `taskbroker webhooks rotate-secret`)")
        else:
            problem = await self._post(job_id, url, body, secret)
        if problem is None:
            log.info("webhook of job %s delivered to %s (attempt %d)", job_id, where, attempt)
            return await self._end(job_id, "delivered", None, attempt)
        if attempt >= self.settings.webhook_max_attempts:
            return await self._end(job_id, "given up", f"{where} {problem}", attempt)
        delay = backoff(attempt, self.settings)
        log.warning("webhook of job %s to %s failed (attempt %d of %d: %s); next try in "
                    "%.1f s", job_id, where, attempt, self.settings.webhook_max_attempts,
                    problem, delay)
        await self.redis.eval(_DUE_IN, 1, DUE_KEY, job_id, int(delay * 1000))
        return False

    async def secret_of(self, user_id: str) -> str | None:
        """The user's signing secret (None: they have none yet), their key id read from
        the data service at most every ``key_cache`` seconds; raises
        :class:`DataServiceError` when it does not answer."""
        now = time.monotonic()
        cached = self._secrets.get(user_id)
        if cached is not None and now - cached[0] < self.key_cache:
            return cached[1]
        try:
            key = await self.client.get_webhook_key(user_id)
        except DataServiceRefusedError:  # an id the data service never keeps a key for
            key = None
        secret = (derive_secret(self.settings.webhook_secret, user_id, key.key_id)
                  if key is not None else None)
        if len(self._secrets) >= KEY_CACHE_MAX:
            self._secrets.clear()
        self._secrets[user_id] = (now, secret)
        return secret

    async def _post(self, job_id: str, url: str, body: bytes, secret: str) -> str | None:
        """POST the body signed with ``secret``; None on a 2xx, else what went wrong."""
        assert self._session is not None
        headers = {"Content-Type": "application/json", JOB_ID_HEADER: job_id,
                   SIGNATURE_HEADER: signature(secret, url, body),
                   "User-Agent": "taskbroker-webhooks"}
        try:
            async with self._session.post(url, data=body, headers=headers,
                                          allow_redirects=False) as answer:
                status = answer.status
        except TimeoutError:
            return f"did not answer within {self.settings.webhook_timeout:g} s"
        except aiohttp.ClientError as exc:
            return f"could not be reached ({type(exc).__name__}: {exc})"[:500]
        if 200 <= status < 300:
            return None
        if 300 <= status < 400:
            return f"answered {status} (redirects are not followed)"
        return f"answered {status}"

    async def _end(self, job_id: str, state: str, problem: str | None, attempt: int) -> bool:
        if problem is not None:
            log.error("webhook of job %s %s after %d attempts: %s", job_id, state, attempt,
                      problem)
        key = delivery_key(job_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(DUE_KEY, job_id)
            pipe.hset(key, "state", state)
            pipe.hdel(key, "body")
            pipe.expire(key, KEEP_DONE)
            await pipe.execute()
        return True
