"""The per-user limits' Redis logic, on fakeredis (fast; the same paths run against a real
Redis and real kernel processes in tests/integration/api/test_auth.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis
import pytest

from backend.api.limits import FailOpenRedisStore, UnfinishedJobs
from backend.errors import DataServiceError, OverloadedError


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


async def test_concurrent_guesses_for_one_name_pass_the_failure_count_together_never(
        redis: Any) -> None:
    store = FailOpenRedisStore(redis, namespace="t")
    waits = await asyncio.gather(*(store.sign_in("alice", 5, 30, 900)
                                   for _ in range(20)))
    assert sorted(waits) == [0] * 5 + [30] * 15  # five checked, then the name waits
    assert await store.sign_in("bob", 5, 30, 900) == 0  # per name


async def test_the_wait_doubles_per_further_failure_up_to_its_bound(redis: Any) -> None:
    store = FailOpenRedisStore(redis, namespace="t")
    waits = []
    for _ in range(6):
        assert await store.sign_in("alice", 2, 30, 100) == 0
        await store.signed_in("alice", 401, 2)
        waits.append(await redis.pttl("t:sign-in:wait:alice"))
        await redis.delete("t:sign-in:wait:alice")  # as if the wait were over
    assert waits[0] < 0 and [round(w / 1000) for w in waits[1:]] == [30, 60, 100, 100, 100]
    # Forgotten only after twice the longest wait without a failure: a wait that ends
    # gives one more guess, not a fresh allowance.
    assert 100_000 < await redis.pttl("t:sign-in:failures:alice") <= 200_000


async def test_a_success_clears_the_name_and_a_check_that_never_ran_is_no_failure(
        redis: Any) -> None:
    store = FailOpenRedisStore(redis, namespace="t")
    for status in (401, 503, 400):
        assert await store.sign_in("alice", 2, 30, 900) == 0
        await store.signed_in("alice", status, 2)
    assert int(await redis.get("t:sign-in:failures:alice")) == 1  # the 401 only
    assert await store.sign_in("alice", 2, 30, 900) == 0
    assert await store.sign_in("alice", 2, 30, 900) == 30
    await store.signed_in("alice", 200, 2)
    assert await redis.exists("t:sign-in:failures:alice", "t:sign-in:wait:alice") == 0
    assert await store.sign_in("alice", 2, 30, 900) == 0


async def test_failed_sign_ins_fail_open_when_redis_is_gone() -> None:
    broken = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    broken.connection_pool.connection_kwargs["server"].connected = False
    store = FailOpenRedisStore(broken, namespace="t")
    assert await store.sign_in("alice", 1, 30, 900) == 0
    await store.signed_in("alice", 401, 1)  # logged, not raised


async def test_no_user_name_reaches_another_names_count_or_wait(redis: Any) -> None:
    store = FailOpenRedisStore(redis, namespace="t")
    assert await store.sign_in("alice", 1, 30, 900) == 0  # alice now waits 30 s
    for crafted in ("alice:wait", "wait:alice", "failures:alice", "sign-in:wait:alice"):
        for _ in range(3):
            await store.sign_in(crafted, 1, 30, 900)
    assert int(await redis.get("t:sign-in:failures:alice")) == 1
    assert 0 < await redis.pttl("t:sign-in:wait:alice") <= 30_000  # not made longer
