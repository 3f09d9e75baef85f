"""What only the Redis Stream backend has: consumers in a group, a Redis that goes away."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from backend.errors import QueueError
from backend.queues import make_queue
from tests.integration.queues.conftest import queue_settings
from tests.integration.queues.test_contract import message, receive_until
from tests.services import ManagedProcess, start_redis


def consumers(redis_url: str, stream: str) -> dict[str, int]:
    client = redis.Redis.from_url(redis_url)
    try:
        return {c["name"].decode(): c["pending"]
                for c in client.xinfo_consumers(stream, "dispatchers")}
    finally:
        client.close()


async def test_closing_keeps_a_consumer_that_still_holds_messages(redis_url: str) -> None:
    idle = make_queue(queue_settings("redis", redis_url))
    busy = make_queue(queue_settings("redis", redis_url, standard_queue_name=idle.name))
    await idle.send_batch([message(), message()])
    assert len(await busy.receive(max_messages=1)) == 1
    [done] = await idle.receive(max_messages=1)
    await idle.ack(done)
    assert consumers(redis_url, idle.name) == {idle.consumer: 0, busy.consumer: 1}

    await idle.close()
    await busy.close()
    # The busy one's entry must stay claimable, so its consumer stays in the group.
    assert consumers(redis_url, idle.name) == {busy.consumer: 1}


async def test_a_deleted_stream_is_recreated(redis_url: str) -> None:
    queue = make_queue(queue_settings("redis", redis_url))
    try:
        await queue.send(message())
        await queue.ack((await receive_until(queue))[0])
        redis.Redis.from_url(redis_url).delete(queue.name)  # FLUSHDB, a manual DEL...

        sent = message()
        await queue.send(sent)
        assert [d.message.job_id for d in await receive_until(queue)] == [sent.job_id]
    finally:
        await queue.close()


async def test_redis_going_away_is_a_queue_error(
        log_dir: Path, processes: list[ManagedProcess]) -> None:
    server, url = start_redis(log_dir)
    processes.append(server)
    queue = make_queue(queue_settings("redis", url))
    try:
        await queue.send(message())
        await queue.ping()
        server.kill()
        with pytest.raises(QueueError, match="is unreachable"):
            await queue.send(message())
        with pytest.raises(QueueError, match="is unreachable"):
            await queue.receive(wait_seconds=1)
    finally:
        await queue.close()


async def test_dead_letter_entries_carry_the_fields_the_readme_names(redis_url: str) -> None:
    """What an operator sees with XRANGE on the dead-letter stream: every entry has body,
    reason, queue and dead_lettered_at; one moved after too many deliveries (or unreadable)
    also has source_id and receive_count; a job that failed for good does not."""
    queue = make_queue(queue_settings("redis", redis_url))
    try:
        exhausted, failed = message(), message()
        await queue.send(exhausted)
        assert len(await receive_until(queue)) == 1  # never acked: comes back, then moves
        assert len(await receive_until(queue)) == 1
        assert await receive_until(queue, deadline=3) == []
        await queue.send_dead_letter(failed, "failed for good")
        client = redis.Redis.from_url(redis_url)
        entries = [fields for _id, fields in client.xrange(queue.dead_letter_name, "-", "+")]
        client.close()
        assert [set(fields) for fields in entries] == [
            {b"body", b"reason", b"queue", b"dead_lettered_at", b"source_id",
             b"receive_count"},
            {b"body", b"reason", b"queue", b"dead_lettered_at"},
        ]
        first = entries[0]
        assert first[b"receive_count"] == b"3" and first[b"queue"] == queue.name.encode()
        assert exhausted.job_id.encode() in first[b"body"]
        assert entries[1][b"reason"] == b"failed for good"
    finally:
        await queue.close()
