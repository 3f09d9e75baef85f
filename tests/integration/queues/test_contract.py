"""The STANDARD queue's contract: the same tests against a real Redis and a real SQS API (moto).

Delivery is at least once: a message that is not acked within the visibility timeout
comes back, and after ``max_receives`` deliveries it moves to the dead-letter queue.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from backend.errors import MessageTooLargeError, QueueError
from backend.jobs import QueueMessage
from backend.local.embedded import free_port
from backend.queues import MAX_MESSAGE_BYTES, Delivery, StandardQueue, make_queue
from tests.integration.queues.conftest import VISIBILITY, QueueFactory, queue_settings

DEADLINE = 20.0  # generous: the machine may be busy


def message(**fields: object) -> QueueMessage:
    fields = {"job_id": uuid.uuid4().hex[:24], "name": "echo", **fields}
    return QueueMessage(**fields)  # type: ignore[arg-type]


async def receive_until(queue: StandardQueue, count: int = 1,
                        deadline: float = DEADLINE) -> list[Delivery]:
    """Receive until ``count`` deliveries arrived (or the deadline passed)."""
    got: list[Delivery] = []
    end = time.monotonic() + deadline
    while len(got) < count and time.monotonic() < end:
        got += await queue.receive(wait_seconds=1)
    return got


async def receive_for(queue: StandardQueue, seconds: float) -> list[Delivery]:
    """Everything delivered during ``seconds`` (to show that nothing comes back)."""
    got: list[Delivery] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        got += await queue.receive(wait_seconds=1)
    return got


async def dead_letter_ids(queue: StandardQueue, expected: set[str],
                          deadline: float = DEADLINE) -> set[str]:
    """Job ids in the dead-letter queue, polled until ``expected`` are all there."""
    end = time.monotonic() + deadline
    while True:
        ids = {m.job_id for m in await queue.dead_letters()}
        if expected <= ids or time.monotonic() > end:
            return ids
        await queue.receive(wait_seconds=1)  # SQS moves a message on a receive


async def test_send_receive_ack(queue: StandardQueue) -> None:
    sent = message(params={"text": "hello"}, executor="priority", trace_id="t-1")
    await queue.send(sent)

    [delivery] = await receive_until(queue)
    assert delivery.message == sent
    assert delivery.receive_count == 1
    await queue.ack(delivery)

    # Acked: it stays gone even after the visibility timeout has passed.
    assert await receive_for(queue, VISIBILITY + 2) == []
    assert await queue.depth() == 0


async def test_not_acked_is_redelivered_to_another_consumer(
        queue: StandardQueue, queue_factory: QueueFactory) -> None:
    sent = message()
    await queue.send(sent)
    [first] = await receive_until(queue)  # this consumer then "dies" without acking

    other = queue_factory(same_as=queue)
    [again] = await receive_until(other)
    assert again.message.job_id == sent.job_id
    assert again.receive_count == 2
    await other.ack(again)
    assert await receive_for(other, VISIBILITY + 2) == []
    assert first.message.job_id == sent.job_id


async def test_dead_lettered_after_max_receives(queue: StandardQueue) -> None:
    sent = message()
    await queue.send(sent)
    counts = [d.receive_count for d in await receive_until(queue)]
    counts += [d.receive_count for d in await receive_until(queue)]
    assert counts == [1, 2]  # max_receives=2, never acked

    assert sent.job_id in await dead_letter_ids(queue, {sent.job_id})
    assert await receive_for(queue, VISIBILITY + 1) == []
    assert await queue.depth() == 0


async def test_batch_of_ten(queue: StandardQueue) -> None:
    sent = [message(params={"n": n}) for n in range(10)]
    ids = await queue.send_batch(sent)
    assert len(set(ids)) == 10

    got = await receive_until(queue, 10)
    assert sorted(d.message.job_id for d in got) == sorted(m.job_id for m in sent)
    for delivery in got:
        await queue.ack(delivery)
    assert await receive_for(queue, VISIBILITY + 2) == []


async def test_a_batch_over_the_backends_limit_is_refused(queue: StandardQueue) -> None:
    # SQS takes 10 per call; a Redis Stream takes a pipeline of 1000.
    assert queue.max_batch == (10 if queue.__class__.__name__ == "SqsQueue" else 1000)
    with pytest.raises(ValueError, match=f"at most {queue.max_batch}"):
        await queue.send_batch([message() for _ in range(queue.max_batch + 1)])


async def test_any_number_of_messages_goes_out_in_batches_and_all_arrive(
        queue: StandardQueue) -> None:
    sent = [message() for _ in range(25)]
    await queue.send_many(sent)
    got: list[str] = []
    for _ in range(20):
        deliveries = await queue.receive(100, wait_seconds=1)
        got += [d.message.job_id for d in deliveries]
        await queue.ack_many(deliveries)
        if len(got) >= len(sent):
            break
    assert sorted(got) == sorted(m.job_id for m in sent)


async def test_message_over_the_size_limit_is_refused(queue: StandardQueue) -> None:
    big = message(params={"blob": "x" * MAX_MESSAGE_BYTES})
    with pytest.raises(MessageTooLargeError, match=f"limit is {MAX_MESSAGE_BYTES} bytes"):
        await queue.send(big)
    with pytest.raises(MessageTooLargeError, match=big.job_id):
        await queue.send_batch([message(), big])
    # Nothing of the refused batch went out.
    assert await receive_for(queue, 1) == []


async def test_large_batch_under_the_limit_is_sent(queue: StandardQueue) -> None:
    # Each message is under the limit, together they are over it (SQS counts the sum).
    sent = [message(params={"blob": "y" * 100_000}) for _ in range(4)]
    await queue.send_batch(sent)
    got = await receive_until(queue, 4)
    assert sorted(d.message.job_id for d in got) == sorted(m.job_id for m in sent)


async def test_unreadable_message_goes_to_the_dead_letter_queue(queue: StandardQueue) -> None:
    # What a foreign or broken producer might put there; _send skips encoding on purpose.
    await queue._send(b"not json at all")
    await queue._send(b'{"job_id": "not-an-object-id", "name": "echo"}')
    good = message()
    await queue.send(good)

    got = await receive_until(queue)
    assert [d.message.job_id for d in got] == [good.job_id]

    entries = await queue.dead_letter_entries()
    assert sorted(e.body for e in entries) == sorted(
        [b"not json at all", b'{"job_id": "not-an-object-id", "name": "echo"}'])
    assert all(e.message is None and "unreadable" in e.reason for e in entries)
    assert await queue.dead_letters() == []  # unreadable bodies are not QueueMessages


async def test_depth_counts_waiting_messages(queue_factory: QueueFactory) -> None:
    queue = queue_factory(queue_visibility_timeout=60)  # nothing comes back during the test
    await queue.ensure()
    assert await queue.depth() == 0
    await queue.send_batch([message() for _ in range(3)])
    assert await queue.depth() == 3

    [delivery] = await queue.receive(max_messages=1, wait_seconds=1)
    assert await queue.depth() == 2  # one in flight
    await queue.ack(delivery)
    assert await queue.depth() == 2


async def test_explicit_dead_letter(queue: StandardQueue) -> None:
    failed, direct = message(), message()
    await queue.send(failed)
    [delivery] = await receive_until(queue)
    await queue.dead_letter(delivery, "task failed for good")
    await queue.send_dead_letter(direct, "failed after 3 attempts")

    entries = {e.message.job_id: e.reason for e in await queue.dead_letter_entries()
               if e.message is not None}
    assert entries == {failed.job_id: "task failed for good",
                       direct.job_id: "failed after 3 attempts"}
    assert await receive_for(queue, VISIBILITY + 2) == []
    # Inspecting does not consume: the dead letters are still there.
    assert {m.job_id for m in await queue.dead_letters()} == {failed.job_id, direct.job_id}


@pytest.mark.parametrize("operation", ["ensure", "ping", "send", "receive", "depth"])
async def test_down_backend_raises_queue_error(
        backend_url: tuple[str, str], operation: str) -> None:
    backend, _ = backend_url
    closed = free_port()  # nothing listens there
    url = f"redis://127.0.0.1:{closed}/0" if backend == "redis" else f"http://127.0.0.1:{closed}"
    queue = make_queue(queue_settings(backend, url))
    calls = {"ensure": queue.ensure, "ping": queue.ping, "depth": queue.depth,
             "send": lambda: queue.send(message()), "receive": queue.receive}
    try:
        with pytest.raises(QueueError, match=f"127.0.0.1:{closed} is unreachable"):
            # A guard against hanging, not a timing claim: it fails within seconds.
            await asyncio.wait_for(calls[operation](), timeout=60)
    finally:
        await queue.close()
