"""The per-user limits' Redis logic, on fakeredis (fast; the same paths run against a real
Redis and real kernel processes in tests/integration/api/test_auth.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis
import pytest

from backend.api.limits import FailOpenRedisStore, UnfinishedJobs
from backend.api.submit import OverloadedError
from backend.errors import DataServiceError


class CountingStore:
    """The data service's unfinished count, with how often it was asked."""

    def __init__(self, count: int, fail: bool = False) -> None:
        self.count, self.fail, self.asked = count, fail, 0

    async def count_unfinished(self, user: str) -> int:
        self.asked += 1
        await asyncio.sleep(0.01)
        if self.fail:
            raise DataServiceError("down")
        return self.count


@pytest.fixture
def redis() -> Any:
    return fakeredis.FakeAsyncRedis()


async def test_a_window_counts_every_hit_once_and_ends(redis: Any) -> None:
    store = FailOpenRedisStore(redis, namespace="t")
    hits = await asyncio.gather(*(store.hit("alice", 1) for _ in range(5)))
    assert sorted(w.hits for w in hits) == [1, 2, 3, 4, 5]  # atomic: no hit lost
    assert (await store.hit("bob", 1)).hits == 1  # per key
    await asyncio.sleep(1.1)
    assert (await store.hit("alice", 1)).hits == 1  # a new window


async def test_a_window_fails_open_when_redis_is_gone() -> None:
    broken = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    broken.connection_pool.connection_kwargs["server"].connected = False
    window = await FailOpenRedisStore(broken, namespace="t").hit("alice", 60)
    assert window.hits == 0


async def test_unfinished_jobs_are_counted_once_then_reserved_in_redis(redis: Any) -> None:
    store = CountingStore(count=2)
    limits = UnfinishedJobs(redis, store, limit=4)  # type: ignore[arg-type]
    # Concurrent first submits share one count from the store.
    reserved = await asyncio.gather(limits.reserve("alice"), limits.reserve("alice"))
    assert reserved == [True, True] and store.asked == 1
    with pytest.raises(OverloadedError, match="4 unfinished jobs"):
        await limits.reserve("alice")
    await limits.release("alice")  # a submit that failed gives its place back
    assert await limits.reserve("alice") is True
    assert store.asked == 1


async def test_without_a_count_the_limit_admits(redis: Any) -> None:
    limits = UnfinishedJobs(redis, CountingStore(0, fail=True), limit=1)  # type: ignore[arg-type]
    assert await limits.reserve("alice") is False  # nothing counted, nothing to release
