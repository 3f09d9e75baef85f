"""The idempotency keys' Redis logic on fakeredis (fast; the same paths run against a real
Redis through the kernel in tests/integration/api/test_idempotency.py)."""

from __future__ import annotations

import fakeredis
import pytest
from litestar.exceptions import ClientException

from backend.api.idempotency import IdempotencyKeys
from backend.errors import IdempotencyUnavailableError


async def test_a_key_is_marked_done_even_if_redis_fails_once_when_settling(monkeypatch):
    keys = IdempotencyKeys(fakeredis.FakeAsyncRedis(), ttl=60)
    real_call, failures = keys._call, []

    async def flaky(script, name, *args):
        if script is keys._settle and not failures:
            failures.append(name)
            raise IdempotencyUnavailableError("Redis did not answer")
        return await real_call(script, name, *args)

    monkeypatch.setattr(keys, "_call", flaky)
    async with keys.claim("alice", "k-1", "request-a", "a" * 24) as first:
        assert not first.replay
    assert failures  # the first try to mark the key done failed...
    async with keys.claim("alice", "k-1", "request-a", "b" * 24) as again:
        # ...and the retry marked it: the same key answers the first job, at once.
        assert again.replay and again.job_id == "a" * 24


async def test_a_key_used_for_another_request_is_refused():
    keys = IdempotencyKeys(fakeredis.FakeAsyncRedis(), ttl=60)
    async with keys.claim("alice", "k-2", "request-a", "a" * 24):
        pass
    with pytest.raises(ClientException, match="already used for a different request"):
        async with keys.claim("alice", "k-2", "request-b", "b" * 24):
            pass
