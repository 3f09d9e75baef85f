"""The kernel API: wiring of routes, dependencies, error handling and lifespan."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.status_codes import HTTP_404_NOT_FOUND

from backend.api.catalog import CATALOG_ROUTES
from backend.api.dependencies import DEPENDENCIES, ensure_queue
from backend.api.errors import EXCEPTION_HANDLERS
from backend.api.events import EVENT_ROUTES
from backend.api.frontend import frontend_router, spa_fallback
from backend.api.health import HEALTH_ROUTES
from backend.api.jobs import JOB_ROUTES
from backend.api.sweeper import run_sweeper
from backend.client import DataServiceClient
from backend.queues import make_queue
from backend.settings import Settings, get_settings
from backend.tasks import load_task_modules

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"


@asynccontextmanager
async def _lifespan(app: Litestar) -> AsyncIterator[None]:
    state = app.state
    await state.client.start()
    if state.settings.queue.queue_create:
        await ensure_queue(state)
    try:
        async with anyio.create_task_group() as background:
            if state.settings.api.stale_sweep_interval > 0:
                background.start_soon(run_sweeper, state, name="stale-job sweeper")
            try:
                yield
            finally:
                # The sweeper uses the queue and the client: stop it before closing them.
                background.cancel_scope.cancel()
    finally:
        try:
            await state.queue.close()
        finally:
            await state.client.stop()


def create_app(settings: Settings | None = None) -> Litestar:
    """The kernel app for ``settings`` (default: the process settings)."""
    settings = settings or get_settings()
    # Unknown task modules fail here, at start, rather than on the first submit.
    load_task_modules(settings.worker.task_module_names)
    api = settings.api
    state = State({
        "settings": settings,
        "client": DataServiceClient(api.data_service_url, timeout=api.data_service_timeout,
                                    deadline=api.data_service_deadline),
        "queue": make_queue(settings),
        "queue_ensured": False,
        "queue_ensure_tried": float("-inf"),
        # Set when the process is asked to stop: open event streams end at their next poll.
        "stopping": threading.Event(),
    })

    handlers: list[Any] = [
        Router(API_PREFIX, route_handlers=[*JOB_ROUTES, *EVENT_ROUTES, *CATALOG_ROUTES]),
        *HEALTH_ROUTES,
    ]
    exception_handlers = dict(EXCEPTION_HANDLERS)
    dist = Path(api.frontend_dist)
    if dist.is_dir():
        handlers.append(frontend_router(dist))
        exception_handlers[HTTP_404_NOT_FOUND] = spa_fallback(dist)
    else:
        log.info("no built web app at %s: serving the API only", dist)

    origins = [origin.strip() for origin in api.cors_origins.split(",") if origin.strip()]
    return Litestar(
        route_handlers=handlers,
        dependencies=DEPENDENCIES,
        exception_handlers=exception_handlers,
        cors_config=CORSConfig(allow_origins=origins) if origins else None,
        openapi_config=OpenAPIConfig(
            title="taskbroker kernel API", version="0.1.0", path="/schema",
            description="Submit jobs, follow them to their result.",
        ),
        request_max_body_size=settings.store.max_body_bytes,
        lifespan=[_lifespan],
        state=state,
    )
