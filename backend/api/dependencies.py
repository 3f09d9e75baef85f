"""What the route handlers get injected: the settings, the data service client, the queue.

All three live on ``app.state`` for the app's lifetime (see :mod:`backend.api.app`).
"""

from __future__ import annotations

import logging
import time
from typing import Annotated

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import Parameter

from backend.jobs import OBJECT_ID_PATTERN
from backend.queues import StandardQueue
from backend.settings import Settings
from backend.store.client import DataServiceClient

log = logging.getLogger(__name__)

# While the queue is down, a submit fails anyway; do not add a create call to every one.
ENSURE_RETRY_SECONDS = 5.0

# What a handler asks for by parameter name (client, queue, settings).
Client = NamedDependency[DataServiceClient]
Queue = NamedDependency[StandardQueue]
AppSettings = NamedDependency[Settings]

# Path parameter of every /jobs/{job_id} route: a malformed id is a 400 naming job_id.
JobIdParam = Annotated[
    str, Parameter(pattern=OBJECT_ID_PATTERN, description="Job id: 24 lower-case hex digits.")
]


def provide_settings(state: State) -> Settings:
    return state.settings


def provide_client(state: State) -> DataServiceClient:
    return state.client


async def provide_queue(state: State) -> StandardQueue:
    """The STANDARD queue; retries ``ensure()`` (now and then) if it failed at start."""
    queue: StandardQueue = state.queue
    if (not state.queue_ensured and state.settings.queue.queue_create
            and time.monotonic() - state.queue_ensure_tried >= ENSURE_RETRY_SECONDS):
        await ensure_queue(state)
    return queue


async def ensure_queue(state: State) -> bool:
    """Create the queues if asked to; a queue that is down must not stop the kernel starting."""
    state.queue_ensure_tried = time.monotonic()
    try:
        await state.queue.ensure()
    except Exception as exc:  # whatever the backend raises, the kernel starts; readyz tells
        log.warning("could not create the STANDARD queue yet: %s", exc)
        return False
    state.queue_ensured = True
    return True


DEPENDENCIES = {
    "settings": Provide(provide_settings, sync_to_thread=False),
    "client": Provide(provide_client, sync_to_thread=False),
    "queue": Provide(provide_queue),
}
