"""The STANDARD queue on AWS SQS or any SQS-compatible endpoint (ElasticMQ, LocalStack, moto).

boto3 is blocking, so every call runs in a thread. SQS itself does the redelivery
(visibility timeout) and the dead-lettering after ``max_receives`` receives (the main
queue's RedrivePolicy); ``ensure`` creates both queues that way when QUEUE_CREATE is on.
A dead-lettered message carries its ``reason`` (and ``source_message_id``,
``receive_count``) as message attributes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from backend.errors import QueueError
from backend.queues.base import (
    MAX_MESSAGE_BYTES,
    MAX_WAIT_SECONDS,
    DeadLetter,
    RawDelivery,
    StandardQueue,
    decode_or_none,
)
from backend.settings import QueueSettings

log = logging.getLogger(__name__)

# A down endpoint should fail a request in seconds (the kernel answers 503), not minutes.
CONNECT_TIMEOUT = 3
MAX_ATTEMPTS = 3
DLQ_RETENTION_SECONDS = 1_209_600  # 14 days, SQS's longest: time to look at what failed
MAX_REASON_CHARS = 1024
PEEK_HIDE_SECONDS = 30
_ALREADY_EXISTS = {"QueueAlreadyExists", "QueueNameExists",
                   "AWS.SimpleQueueService.QueueNameExists"}
_NOT_FOUND = {"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _attribute(value: str | int, data_type: str = "String") -> dict[str, str]:
    return {"DataType": data_type, "StringValue": str(value)}


def _size_batches(bodies: list[bytes]) -> list[list[tuple[int, bytes]]]:
    """Split a batch so no request is over the size limit (it applies to the sum)."""
    batches: list[list[tuple[int, bytes]]] = [[]]
    size = 0
    for index, body in enumerate(bodies):
        if batches[-1] and size + len(body) > MAX_MESSAGE_BYTES:
            batches.append([])
            size = 0
        batches[-1].append((index, body))
        size += len(body)
    return batches


class SqsQueue(StandardQueue):
    """An SQS queue with a dead-letter queue through a redrive policy."""

    def __init__(self, settings: QueueSettings, name: str, dead_letter_name: str, *,
                 visibility_timeout: int, max_receives: int, wait_seconds: int) -> None:
        super().__init__(name, dead_letter_name, visibility_timeout=visibility_timeout,
                         max_receives=max_receives, wait_seconds=wait_seconds)
        self._create = settings.queue_create
        endpoint = settings.sqs_endpoint_url or None
        region = settings.aws_default_region or None
        self._where = endpoint or f"AWS SQS ({region or 'default region'})"
        config = Config(
            connect_timeout=CONNECT_TIMEOUT,
            # A long poll holds the request open for up to MAX_WAIT_SECONDS.
            read_timeout=MAX_WAIT_SECONDS + 10,
            retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        )
        credentials: dict[str, str] = {}
        if settings.aws_access_key_id and settings.aws_secret_access_key:
            credentials = {"aws_access_key_id": settings.aws_access_key_id,
                           "aws_secret_access_key": settings.aws_secret_access_key}
        # Empty keys fall back to boto3's chain (instance or pod role, ~/.aws).
        # A session per queue: sessions are not thread-safe, clients are.
        self._client = boto3.session.Session().client(
            "sqs", endpoint_url=endpoint, region_name=region, config=config, **credentials
        )
        self._url: str | None = None
        self._dlq_url: str | None = None

    async def _run(self, call: Callable[..., Any], **kwargs: Any) -> Any:
        """Run one blocking boto3 call in a thread; every failure becomes a QueueError."""
        try:
            return await asyncio.to_thread(call, **kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise QueueError(
                f"SQS refused {exc.operation_name} on queue '{self.name}': "
                f"{error.get('Code')}: {error.get('Message')}"
            ) from exc
        except BotoCoreError as exc:
            raise QueueError(f"SQS at {self._where} is unreachable (queue '{self.name}'): "
                             f"{exc}") from exc

    async def _urls(self) -> tuple[str, str]:
        if self._url is None or self._dlq_url is None:
            await self.ensure()
        assert self._url is not None and self._dlq_url is not None
        return self._url, self._dlq_url

    async def ensure(self) -> None:
        """Create both queues (QUEUE_CREATE=true) or look them up; remember their URLs."""
        await self._run(self._ensure_sync)

    def _ensure_sync(self) -> None:
        if not self._create:
            self._dlq_url = self._existing_url(self.dead_letter_name)
            self._url = self._existing_url(self.name)
            return
        dlq_url = self._create_queue(self.dead_letter_name,
                                     {"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)})
        dlq_arn = self._client.get_queue_attributes(
            QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(self.max_receives)}
        self._url = self._create_queue(self.name, {
            "VisibilityTimeout": str(self.visibility_timeout),
            "RedrivePolicy": json.dumps(redrive),
        })
        self._dlq_url = dlq_url

    def _create_queue(self, name: str, attributes: dict[str, str]) -> str:
        try:
            return str(self._client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])
        except ClientError as exc:
            if _code(exc) not in _ALREADY_EXISTS:
                raise
        # It exists with other settings (changed QUEUE_MAX_RECEIVES...): apply ours.
        url = str(self._client.get_queue_url(QueueName=name)["QueueUrl"])
        self._client.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        return url

    def _existing_url(self, name: str) -> str:
        try:
            return str(self._client.get_queue_url(QueueName=name)["QueueUrl"])
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                raise QueueError(
                    f"SQS queue '{name}' does not exist at {self._where}; create it "
                    f"or set QUEUE_CREATE=true to let the service create it"
                ) from exc
            raise

    async def ping(self) -> None:
        url, _ = await self._urls()
        await self._run(self._client.get_queue_attributes, QueueUrl=url,
                        AttributeNames=["QueueArn"])

    async def depth(self) -> int:
        """ApproximateNumberOfMessages: visible messages, not those in flight."""
        url, _ = await self._urls()
        reply = await self._run(self._client.get_queue_attributes, QueueUrl=url,
                                AttributeNames=["ApproximateNumberOfMessages"])
        return int(reply["Attributes"]["ApproximateNumberOfMessages"])

    async def dead_letter_depth(self) -> int:
        _, dlq_url = await self._urls()
        reply = await self._run(self._client.get_queue_attributes, QueueUrl=dlq_url,
                                AttributeNames=["ApproximateNumberOfMessages"])
        return int(reply["Attributes"]["ApproximateNumberOfMessages"])

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)

    async def _send(self, body: bytes) -> str:
        url, _ = await self._urls()
        reply = await self._run(self._client.send_message, QueueUrl=url,
                                MessageBody=body.decode())
        return str(reply["MessageId"])

    async def _send_batch(self, bodies: list[bytes]) -> list[str]:
        url, _ = await self._urls()
        ids: dict[int, str] = {}
        failed: list[str] = []
        for batch in _size_batches(bodies):
            reply = await self._run(
                self._client.send_message_batch, QueueUrl=url,
                Entries=[{"Id": str(index), "MessageBody": body.decode()}
                         for index, body in batch],
            )
            ids |= {int(ok["Id"]): ok["MessageId"] for ok in reply.get("Successful", [])}
            failed += [f"message {bad['Id']}: {bad.get('Code')}: {bad.get('Message', '')}"
                       for bad in reply.get("Failed", [])]
        if failed:
            raise QueueError(
                f"SQS did not take {len(failed)} of {len(bodies)} messages on queue "
                f"'{self.name}' (the others were sent): " + "; ".join(failed)
            )
        return [ids[index] for index in range(len(bodies))]

    async def _receive(self, max_messages: int, wait_seconds: int) -> list[RawDelivery]:
        url, _ = await self._urls()
        reply = await self._run(
            self._client.receive_message, QueueUrl=url, MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=wait_seconds, VisibilityTimeout=self.visibility_timeout,
            # The old and the new name, for SQS-compatible servers that know only one.
            AttributeNames=["ApproximateReceiveCount"],
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        deliveries = []
        for message in reply.get("Messages", []):
            count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            raw = RawDelivery(message["Body"].encode(), message["ReceiptHandle"],
                              message["MessageId"], count)
            if count > self.max_receives:
                # Only when the queue lacks our redrive policy (made by hand, QUEUE_CREATE
                # off): do what it would have done.
                await self._dead_letter(raw, f"received {count} times without an ack "
                                             f"(max_receives={self.max_receives})")
            else:
                deliveries.append(raw)
        return deliveries

    async def _ack(self, receipt: str) -> None:
        url, _ = await self._urls()
        await self._run(self._client.delete_message, QueueUrl=url, ReceiptHandle=receipt)

    async def _ack_many(self, receipts: list[str]) -> None:
        url, _ = await self._urls()
        for start in range(0, len(receipts), 10):
            entries = [{"Id": str(index), "ReceiptHandle": receipt}
                       for index, receipt in enumerate(receipts[start:start + 10])]
            answer = await self._run(self._client.delete_message_batch, QueueUrl=url,
                                     Entries=entries)
            failed = answer.get("Failed") or []
            if failed:
                raise QueueError(f"SQS did not delete {len(failed)} acked messages of queue "
                                 f"'{self.name}': {failed[0].get('Message', failed[0])}")

    async def _dead_letter(self, item: RawDelivery, reason: str) -> None:
        url, dlq_url = await self._urls()
        # Send first, then delete: a crash in between leaves a duplicate, never a loss.
        await self._run(
            self._client.send_message, QueueUrl=dlq_url, MessageBody=item.body.decode(),
            MessageAttributes={
                "reason": _attribute(reason[:MAX_REASON_CHARS]),
                "source_message_id": _attribute(item.message_id),
                "receive_count": _attribute(item.receive_count, "Number"),
            },
        )
        await self._run(self._client.delete_message, QueueUrl=url, ReceiptHandle=item.receipt)

    async def _send_dead_letter(self, body: bytes, reason: str) -> None:
        _, dlq_url = await self._urls()
        await self._run(self._client.send_message, QueueUrl=dlq_url, MessageBody=body.decode(),
                        MessageAttributes={"reason": _attribute(reason[:MAX_REASON_CHARS])})

    async def _peek(self, limit: int) -> list[dict[str, Any]]:
        """Read the dead-letter queue without taking anything out of it.

        Messages seen are hidden while the scan goes on (so the next receive brings
        others), then made visible again at once. A crash mid-scan hides them for
        PEEK_HIDE_SECONDS at most.
        """
        _, dlq_url = await self._urls()
        seen: dict[str, dict[str, Any]] = {}
        try:
            while len(seen) < limit:
                reply = await self._run(
                    self._client.receive_message, QueueUrl=dlq_url,
                    MaxNumberOfMessages=min(10, limit - len(seen)),
                    VisibilityTimeout=PEEK_HIDE_SECONDS,
                    # A short poll samples only some SQS servers and may come back empty;
                    # the first round long-polls briefly so a non-empty queue shows up.
                    WaitTimeSeconds=0 if seen else 1,
                    MessageAttributeNames=["All"],
                )
                new = [m for m in reply.get("Messages", []) if m["MessageId"] not in seen]
                if not new:
                    break
                seen |= {m["MessageId"]: m for m in new}
        finally:
            await self._release(dlq_url, list(seen.values()))
        return list(seen.values())

    async def _release(self, url: str, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start:start + 10]
            await self._run(
                self._client.change_message_visibility_batch, QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"],
                          "VisibilityTimeout": 0} for i, m in enumerate(chunk)],
            )

    async def _peek_dead_letters(self, limit: int) -> list[bytes]:
        return [m["Body"].encode() for m in await self._peek(limit)]

    async def _peek_dead_letter_entries(self, limit: int) -> list[DeadLetter]:
        entries = []
        for m in await self._peek(limit):
            body = m["Body"].encode()
            reason = m.get("MessageAttributes", {}).get("reason", {}).get("StringValue", "")
            entries.append(DeadLetter(body, reason, decode_or_none(body)))
        return entries
