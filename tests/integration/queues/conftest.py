"""A queue of each backend, on the real servers of tests/conftest.py, with a fresh name per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from backend.queues import StandardQueue, make_queue
from backend.settings import QueueSettings, RedisSettings, Settings

BACKENDS = ["redis", "sqs"]
# Short enough to keep the suite fast, long enough for a noisy machine to ack in time.
VISIBILITY = 1

QueueFactory = Callable[..., StandardQueue]


def queue_settings(backend: str, url: str, **overrides: object) -> Settings:
    """Settings as a deployment would have them, pointed at the test's server."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    fields: dict[str, object] = dict(
        queue_backend=backend, standard_queue_name=name, queue_visibility_timeout=VISIBILITY,
        queue_max_receives=2, queue_wait_seconds=1, queue_create=True,
        aws_access_key_id="test", aws_secret_access_key="test", aws_default_region="us-east-1",
        sqs_endpoint_url=url if backend == "sqs" else "",
    )
    settings = Settings()
    settings.queue = QueueSettings(**(fields | overrides))
    settings.redis = RedisSettings(redis_url=url if backend == "redis" else "redis://127.0.0.1:1/0")
    return settings


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(backend, server URL); only the server that the backend needs is started."""
    backend = request.param
    return backend, request.getfixturevalue(f"{backend}_url")


@pytest.fixture
async def queue_factory(backend_url: tuple[str, str]) -> AsyncIterator[QueueFactory]:
    """Builds queues through make_queue; ``same_as=q`` gives a second consumer of q's queue."""
    backend, url = backend_url
    made: list[StandardQueue] = []

    def factory(same_as: StandardQueue | None = None, **overrides: object) -> StandardQueue:
        if same_as is not None:
            overrides = {"standard_queue_name": same_as.name, **overrides}
        queue = make_queue(queue_settings(backend, url, **overrides))
        made.append(queue)
        return queue

    yield factory
    for queue in made:
        await queue.close()


@pytest.fixture
async def queue(queue_factory: QueueFactory) -> StandardQueue:
    queue = queue_factory()
    await queue.ensure()
    return queue
