"""The STANDARD queue on a Redis Stream with a consumer group (the embedded default).

Layout in Redis:

- the stream ``<name>`` holds one entry per message (field ``body``);
- the consumer group ``dispatchers`` hands each entry to one consumer and keeps it in
  the group's pending entries list (PEL) until it is acked;
- an ack is XACK + XDEL, so the stream only ever holds waiting and in-flight entries;
- an entry pending longer than the visibility timeout is taken over with XAUTOCLAIM by
  the next ``receive`` of any consumer: that is the redelivery. The PEL counts the
  deliveries; the delivery that would be number ``max_receives + 1`` moves the entry to
  the dead-letter stream ``<dead_letter_name>`` instead (fields ``body``, ``reason``,
  ``source_id``, ``receive_count``, ``queue``, ``dead_lettered_at``).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from backend.errors import QueueError
from backend.jobs import utcnow
from backend.queues.base import (
    MAX_WAIT_SECONDS,
    DeadLetter,
    RawDelivery,
    StandardQueue,
    decode_or_none,
)

log = logging.getLogger(__name__)

GROUP = "dispatchers"
BODY = b"body"
REASON = b"reason"
# A Redis that is down should fail a request in seconds; the kernel turns it into a 503.
CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 5.0


def consumer_name() -> str:
    """Unique per process: two dispatchers never share pending entries by accident."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisStreamQueue(StandardQueue):
    """A Redis Stream with a consumer group; see the module docstring for the layout."""

    max_batch = 1000  # one XREADGROUP / one pipeline of XADDs: no SQS limit here

    def __init__(self, redis_url: str, name: str, dead_letter_name: str, *,
                 visibility_timeout: int, max_receives: int, wait_seconds: int,
                 group: str = GROUP, consumer: str | None = None) -> None:
        super().__init__(name, dead_letter_name, visibility_timeout=visibility_timeout,
                         max_receives=max_receives, wait_seconds=wait_seconds)
        self.group = group
        self.consumer = consumer or consumer_name()
        parts = urlsplit(redis_url)
        # Named in error messages; never the URL itself, which may hold a password.
        self._where = (parts.path if parts.scheme == "unix"
                       else f"{parts.hostname or 'localhost'}:{parts.port or 6379}")
        # Few, quick retries: a restarting Redis is ridden over, a dead one is reported fast.
        common: dict[str, Any] = dict(socket_connect_timeout=CONNECT_TIMEOUT,
                                      retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2))
        self._redis = Redis.from_url(redis_url, socket_timeout=COMMAND_TIMEOUT, **common)
        # Blocking reads (long polling) need a socket timeout longer than the longest wait.
        self._blocking = Redis.from_url(
            redis_url, socket_timeout=MAX_WAIT_SECONDS + COMMAND_TIMEOUT, **common
        )
        self.redis_url = redis_url
        self._group_ready = False
        self._has_read = False
        # Reclaiming is a look at the pending list: a few times per visibility timeout is
        # enough, not on every receive (each look is a round trip).
        self._reclaim_every = max(0.05, min(1.0, visibility_timeout / 4))
        self._next_reclaim = 0.0
        # XAUTOCLAIM scans the PEL from here, so a long run of fresh in-flight entries at
        # its head cannot hide idle ones behind it.
        self._claim_cursor: bytes | str = "0-0"

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise QueueError(
                f"Redis at {self._where} is unreachable (trying to {action} queue "
                f"'{self.name}'): {exc}"
            ) from exc
        except RedisError as exc:
            raise QueueError(f"Redis refused to {action} queue '{self.name}': {exc}") from exc

    async def ensure(self) -> None:
        """Create the stream and its consumer group (reading from the start) if missing."""
        with self._errors("create"):
            await self._create_group()

    async def _create_group(self) -> None:
        try:
            # id 0: entries sent before the group existed are delivered too.
            await self._redis.xgroup_create(self.name, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def ping(self) -> None:
        with self._errors("reach"):
            await self._redis.ping()

    async def depth(self) -> int:
        """Entries not yet delivered: XLEN minus the entries in flight (pending).

        Acked entries are deleted, so XLEN counts waiting plus in-flight entries. An
        entry whose visibility timeout ran out counts as in flight until it is reclaimed.
        """
        with self._errors("measure"):
            length = await self._redis.xlen(self.name)
            try:
                pending = (await self._redis.xpending(self.name, self.group))["pending"]
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                pending = 0  # no group yet: nothing was ever delivered
            return max(0, int(length) - int(pending))

    async def dead_letter_depth(self) -> int:
        with self._errors("measure"):
            return int(await self._redis.xlen(self.dead_letter_name))

    async def close(self) -> None:
        if self._has_read:
            try:
                # A consumer without pending entries is only clutter in XINFO CONSUMERS.
                # One that still has some must stay: deleting it would drop them from the PEL.
                mine = await self._redis.xpending_range(
                    self.name, self.group, "-", "+", 1, consumername=self.consumer
                )
                if not mine:
                    await self._redis.xgroup_delconsumer(self.name, self.group, self.consumer)
            except RedisError as exc:
                log.debug("could not remove consumer %s: %s", self.consumer, exc)
        await self._redis.aclose()
        await self._blocking.aclose()

    async def _send(self, body: bytes) -> str:
        with self._errors("send to"):
            return _text(await self._redis.xadd(self.name, {BODY: body}))

    async def _send_batch(self, bodies: list[bytes]) -> list[str]:
        with self._errors("send to"):
            async with self._redis.pipeline(transaction=True) as pipe:
                for body in bodies:
                    pipe.xadd(self.name, {BODY: body})
                return [_text(entry_id) for entry_id in await pipe.execute()]

    async def _receive(self, max_messages: int, wait_seconds: int) -> list[RawDelivery]:
        with self._errors("receive from"):
            if not self._group_ready:
                await self._create_group()
            self._has_read = True
            try:
                return await self._reclaim_then_read(max_messages, wait_seconds)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # The stream was deleted under us (FLUSHDB, a manual DEL): start over.
                await self._create_group()
                return await self._reclaim_then_read(max_messages, wait_seconds)

    async def _reclaim_then_read(self, max_messages: int, wait_seconds: int) -> list[RawDelivery]:
        # Redeliveries first: they have waited longest.
        deliveries: list[RawDelivery] = []
        if time.monotonic() >= self._next_reclaim:
            self._next_reclaim = time.monotonic() + self._reclaim_every
            deliveries = await self._reclaim(max_messages)
        if len(deliveries) < max_messages:
            # Only wait when nothing was reclaimed; BLOCK 0 would mean forever.
            block = wait_seconds * 1000 if wait_seconds > 0 and not deliveries else None
            reply = await self._read_new(max_messages - len(deliveries), block)
            deliveries += [self._raw(entry_id, fields, 1) for entry_id, fields in reply]
        return deliveries

    async def _read_new(self, count: int, block: int | None) -> list[tuple[Any, dict]]:
        client = self._blocking if block else self._redis
        reply = await client.xreadgroup(self.group, self.consumer, {self.name: ">"},
                                        count=count, block=block)
        streams = reply.items() if isinstance(reply, dict) else (reply or [])
        entries: list[tuple[Any, dict]] = []
        for _stream, items in streams:
            # RESP3 nests the entries one level deeper than RESP2.
            entries += items[0] if items and isinstance(items[0], list) else items
        return entries

    async def _reclaim(self, count: int) -> list[RawDelivery]:
        """Take over entries pending longer than the visibility timeout (redeliveries)."""
        reply = await self._redis.xautoclaim(
            self.name, self.group, self.consumer, self.visibility_timeout * 1000,
            start_id=self._claim_cursor, count=count,
        )
        self._claim_cursor = reply[0]
        # Entries deleted while pending come back as None (Redis 6.2); nothing to deliver.
        claimed = [(entry_id, fields) for entry_id, fields in reply[1][:count]
                   if entry_id is not None and fields is not None]
        if not claimed:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id, _fields in claimed:
                pipe.xpending_range(self.name, self.group, entry_id, entry_id, 1)
            pending = await pipe.execute()
        deliveries = []
        for (entry_id, fields), info in zip(claimed, pending, strict=True):
            # XAUTOCLAIM already counted this delivery.
            times = int(info[0]["times_delivered"]) if info else 1
            raw = self._raw(entry_id, fields, times)
            if times > self.max_receives:
                log.warning("dead-lettering %s: not acked after %d deliveries",
                            raw.message_id, times - 1)
                await self._dead_letter(
                    raw, f"not acked after {times - 1} deliveries "
                         f"(max_receives={self.max_receives})"
                )
            else:
                deliveries.append(raw)
        return deliveries

    @staticmethod
    def _raw(entry_id: bytes | str, fields: dict, receive_count: int) -> RawDelivery:
        entry = _text(entry_id)
        return RawDelivery(fields.get(BODY, b""), entry, entry, receive_count)

    async def _ack(self, receipt: str) -> None:
        with self._errors("ack on"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xack(self.name, self.group, receipt)
                pipe.xdel(self.name, receipt)
                await pipe.execute()

    def shares_redis(self, redis_url: str) -> bool:
        return redis_url == self.redis_url

    def add_ack(self, pipe: Any, receipts: list[str]) -> None:
        """Add the ack of ``receipts`` to a pipeline on the same Redis (see shares_redis)."""
        pipe.xack(self.name, self.group, *receipts)
        pipe.xdel(self.name, *receipts)

    async def _ack_many(self, receipts: list[str]) -> None:
        with self._errors("ack on"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xack(self.name, self.group, *receipts)
                pipe.xdel(self.name, *receipts)
                await pipe.execute()

    def _dead_letter_fields(self, body: bytes, reason: str) -> dict[bytes, Any]:
        return {BODY: body, REASON: reason, b"queue": self.name,
                b"dead_lettered_at": utcnow().isoformat()}

    async def _dead_letter(self, item: RawDelivery, reason: str) -> None:
        fields = self._dead_letter_fields(item.body, reason)
        fields |= {b"source_id": item.message_id, b"receive_count": item.receive_count}
        with self._errors("dead-letter on"):
            # One transaction: the entry is never in both streams or in neither.
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xadd(self.dead_letter_name, fields)
                pipe.xack(self.name, self.group, item.receipt)
                pipe.xdel(self.name, item.receipt)
                await pipe.execute()

    async def _send_dead_letter(self, body: bytes, reason: str) -> None:
        with self._errors("dead-letter on"):
            await self._redis.xadd(self.dead_letter_name, self._dead_letter_fields(body, reason))

    async def _dead_letter_range(self, limit: int) -> list[dict]:
        with self._errors("read the dead letters of"):
            entries = await self._redis.xrange(self.dead_letter_name, "-", "+", count=limit)
        return [fields for _entry_id, fields in entries]

    async def _peek_dead_letters(self, limit: int) -> list[bytes]:
        return [fields.get(BODY, b"") for fields in await self._dead_letter_range(limit)]

    async def _peek_dead_letter_entries(self, limit: int) -> list[DeadLetter]:
        entries = []
        for fields in await self._dead_letter_range(limit):
            body = fields.get(BODY, b"")
            entries.append(DeadLetter(body, _text(fields.get(REASON, b"")), decode_or_none(body)))
        return entries
