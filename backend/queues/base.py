"""The STANDARD queue: one interface, one file per backend.

Delivery is at least once. A received message stays invisible for the visibility
timeout; if it is not acked by then it is delivered again, and after
``max_receives`` deliveries it moves to the dead-letter queue instead. Public methods
here do the encoding, size checks and poison handling; backends implement the small
``_hooks``.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass

import msgspec

from backend.errors import MessageTooLargeError
from backend.jobs import QueueMessage

log = logging.getLogger(__name__)

# SQS's own limit; the Redis backend keeps the same one so both behave alike.
MAX_MESSAGE_BYTES = 262_144
MAX_BATCH = 10
# SQS's longest long poll; the Redis backend keeps it too (and sizes its socket timeout on it).
MAX_WAIT_SECONDS = 20

_decoder = msgspec.json.Decoder(QueueMessage)


@dataclass(frozen=True)
class Delivery:
    """One received message and the handle that acks it."""

    message: QueueMessage
    receipt: str
    message_id: str
    receive_count: int


@dataclass(frozen=True)
class RawDelivery:
    body: bytes
    receipt: str
    message_id: str
    receive_count: int


@dataclass(frozen=True)
class DeadLetter:
    """One entry of the dead-letter queue, as an operator inspects it.

    ``message`` is None when the body is not a readable :class:`QueueMessage` (a poison
    message); ``body`` always holds what was sent.
    """

    body: bytes
    reason: str
    message: QueueMessage | None


def decode_or_none(body: bytes) -> QueueMessage | None:
    try:
        return _decoder.decode(body)
    except msgspec.DecodeError:
        return None


class StandardQueue(ABC):
    """The queue between the kernel and the dispatcher."""

    # Most messages one receive or one send call takes (SQS's limit; a backend may allow more).
    max_batch = MAX_BATCH

    def __init__(self, name: str, dead_letter_name: str, *, visibility_timeout: int,
                 max_receives: int, wait_seconds: int) -> None:
        self.name = name
        self.dead_letter_name = dead_letter_name
        self.visibility_timeout = visibility_timeout
        self.max_receives = max_receives
        self.wait_seconds = wait_seconds

    @staticmethod
    def encode(message: QueueMessage) -> bytes:
        body = msgspec.json.encode(message)
        if len(body) > MAX_MESSAGE_BYTES:
            raise MessageTooLargeError(
                f"queue message for job {message.job_id} is {len(body)} bytes; "
                f"the limit is {MAX_MESSAGE_BYTES} bytes (make params smaller)"
            )
        return body

    async def send(self, message: QueueMessage) -> str:
        """Put one message on the queue; returns the backend's message id."""
        return await self._send(self.encode(message))

    async def send_batch(self, messages: list[QueueMessage]) -> list[str]:
        """Put up to ten messages on the queue in one call."""
        if len(messages) > self.max_batch:
            raise ValueError(f"a batch holds at most {self.max_batch} messages")
        return await self._send_batch([self.encode(m) for m in messages])

    async def receive(self, max_messages: int = MAX_BATCH,
                      wait_seconds: int | None = None) -> list[Delivery]:
        """Up to ``max_messages`` deliveries, waiting up to ``wait_seconds`` for the first."""
        wait = self.wait_seconds if wait_seconds is None else wait_seconds
        wait = max(0, min(wait, MAX_WAIT_SECONDS))
        raw = await self._receive(min(max_messages, self.max_batch), wait)
        deliveries = []
        for item in raw:
            try:
                message = _decoder.decode(item.body)
            except msgspec.DecodeError as exc:  # also covers ValidationError
                # A message no consumer can read would be redelivered forever.
                log.error("dead-lettering unreadable message %s: %s", item.message_id, exc)
                await self._dead_letter(item, f"unreadable message: {exc}")
                continue
            deliveries.append(
                Delivery(message, item.receipt, item.message_id, item.receive_count)
            )
        return deliveries

    async def ack(self, delivery: Delivery) -> None:
        """The message was handled: delete it for good."""
        await self._ack(delivery.receipt)

    def shares_redis(self, redis_url: str) -> bool:
        """Whether this queue lives in the Redis at ``redis_url`` (then a dispatcher acks
        in the same round trip as it enqueues, see :meth:`add_ack`)."""
        return False

    def add_ack(self, pipe: object, receipts: list[str]) -> None:
        raise NotImplementedError("only a queue that shares_redis() acks in a pipeline")

    async def ack_many(self, deliveries: list[Delivery]) -> None:
        """Ack a batch of deliveries (one call where the backend allows it)."""
        if deliveries:
            await self._ack_many([delivery.receipt for delivery in deliveries])

    async def send_many(self, messages: list[QueueMessage]) -> list[str]:
        """Put any number of messages on the queue, in batches of :attr:`max_batch`."""
        ids: list[str] = []
        for start in range(0, len(messages), self.max_batch):
            ids += await self.send_batch(messages[start:start + self.max_batch])
        return ids

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move a delivered message to the dead-letter queue and ack it."""
        raw = RawDelivery(self.encode(delivery.message), delivery.receipt,
                          delivery.message_id, delivery.receive_count)
        await self._dead_letter(raw, reason)

    async def dead_letters(self, limit: int = 100) -> list[QueueMessage]:
        """Messages in the dead-letter queue (read without removing, for inspection).

        Unreadable (poison) bodies are left out; :meth:`dead_letter_entries` shows them.
        """
        messages = [decode_or_none(body) for body in await self._peek_dead_letters(limit)]
        return [m for m in messages if m is not None]

    async def dead_letter_entries(self, limit: int = 100) -> list[DeadLetter]:
        """Dead-letter entries with the reason each was moved there (read without removing)."""
        return await self._peek_dead_letter_entries(limit)

    async def send_dead_letter(self, message: QueueMessage, reason: str) -> None:
        """Put a message straight on the dead-letter queue (a job that failed for good)."""
        await self._send_dead_letter(self.encode(message), reason)

    @abstractmethod
    async def ensure(self) -> None:
        """Create the queue and its dead-letter queue if they do not exist."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise :class:`backend.errors.QueueError` if the queue cannot be reached."""

    @abstractmethod
    async def depth(self) -> int:
        """Messages waiting (not counting those in flight)."""

    @abstractmethod
    async def dead_letter_depth(self) -> int:
        """Messages in the dead-letter queue (for metrics and the statistics)."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def _send(self, body: bytes) -> str: ...

    @abstractmethod
    async def _send_batch(self, bodies: list[bytes]) -> list[str]: ...

    @abstractmethod
    async def _receive(self, max_messages: int, wait_seconds: int) -> list[RawDelivery]: ...

    @abstractmethod
    async def _ack(self, receipt: str) -> None: ...

    async def _ack_many(self, receipts: list[str]) -> None:
        for receipt in receipts:
            await self._ack(receipt)

    @abstractmethod
    async def _dead_letter(self, item: RawDelivery, reason: str) -> None: ...

    @abstractmethod
    async def _send_dead_letter(self, body: bytes, reason: str) -> None: ...

    @abstractmethod
    async def _peek_dead_letters(self, limit: int) -> list[bytes]: ...

    async def _peek_dead_letter_entries(self, limit: int) -> list[DeadLetter]:
        # Backends that store the reason override this; the fallback only knows bodies.
        return [DeadLetter(body, "", decode_or_none(body))
                for body in await self._peek_dead_letters(limit)]
