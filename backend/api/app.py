"""The kernel API: wiring of routes, security, limits, dependencies, errors and lifespan."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import redis.asyncio as aioredis
from litestar import Litestar, Router
from litestar.config.compression import CompressionConfig
from litestar.config.cors import CORSConfig
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.status_codes import HTTP_404_NOT_FOUND
from redis import Redis as SyncRedis

from backend import tracing
from backend.api.auth import auth_routes
from backend.api.catalog import CATALOG_ROUTES
from backend.api.conditional import ConditionalGetMiddleware
from backend.api.dependencies import DEPENDENCIES, ensure_queue
from backend.api.errors import EXCEPTION_HANDLERS
from backend.api.events import EVENT_ROUTES, JobWatch
from backend.api.frontend import SKIP_COMPRESSION, frontend_router, spa_fallback
from backend.api.head import head_as_get
from backend.api.headers import SecurityHeadersMiddleware
from backend.api.health import HEALTH_ROUTES
from backend.api.idempotency import IdempotencyKeys
from backend.api.jobs import job_routes
from backend.api.limits import (
    STORE,
    FailOpenRedisStore,
    UnfinishedJobs,
    login_rate_limit,
    submit_rate_limit,
)
from backend.api.openapi_viewer import openapi_config
from backend.api.security import (
    CSRF_COOKIE,
    CSRF_HEADER,
    BearerAwareCSRFMiddleware,
    Identities,
    csrf_secret,
    make_auth,
)
from backend.api.stats import STATS_ROUTES
from backend.api.submit import Backlog, Submitter
from backend.api.webhook_secret import WEBHOOK_SECRET_ROUTES, WebhookOwners
from backend.metrics_http import metrics_middleware, metrics_routes
from backend.queues import make_queue
from backend.settings import Settings, get_settings
from backend.store.client import DataServiceClient
from backend.tasks import load_task_modules
from backend.web import before_request

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
COMPRESS_MIN_BYTES = 1024
# Paths whose answers are streamed as they happen (Server-Sent Events): never compressed.
NOT_COMPRESSED = [r"/events$"]

@asynccontextmanager
async def _lifespan(app: Litestar) -> AsyncIterator[None]:
    state = app.state
    settings: Settings = state.settings
    api = settings.api
    await state.client.start()
    await state.stream_client.start()
    state.submitter = Submitter(state.client, state.queue, state.redis, settings)
    state.backlog = Backlog(state.queue, state.redis, api.max_backlog)
    state.unfinished = UnfinishedJobs(state.redis, state.client,
                                      settings.auth.max_unfinished_jobs_per_user)
    state.idempotency = IdempotencyKeys(state.redis, api.idempotency_ttl)
    state.identities = Identities(state.client)
    state.webhook_owners = WebhookOwners(state.client)
    state.watch = JobWatch(state.stream_client, api.sse_poll_interval,
                           max_streams=api.sse_max_streams,
                           max_per_user=api.sse_max_streams_per_user)
    if settings.queue.queue_create:
        await ensure_queue(state)
    oidc = state.auth.token_cls.oidc
    if oidc is not None:  # the issuer's keys before the first token (never fatal)
        await anyio.to_thread.run_sync(oidc.refresh)
    try:
        yield
    finally:
        try:
            await state.watch.close()
            await state.submitter.close()
            await state.queue.close()
            await state.redis.aclose()
            state.rq_redis.close()
        finally:
            await state.client.stop()
            await state.stream_client.stop()


def cors_config(setting: str) -> CORSConfig | None:
    """CORS for the origins CORS_ORIGINS lists, with credentials (session cookies); none
    when it is empty. A wildcard or ``null`` would let any site, or any sandboxed frame,
    read a signed-in user's answers (Litestar echoes the caller's Origin when credentials
    are allowed): the kernel refuses to start with one."""
    origins = [origin.strip() for origin in setting.split(",") if origin.strip()]
    for origin in origins:
        if "*" in origin or origin.lower() == "null":
            raise SystemExit(f"CORS_ORIGINS may not contain {origin!r}: the kernel allows "
                             "credentials (session cookies) cross-origin, so a wildcard would "
                             "let any site act as its signed-in users. List each origin, e.g. "
                             "CORS_ORIGINS=https://app.example.com, or leave it empty.")
    return CORSConfig(allow_origins=origins, allow_credentials=True) if origins else None


def create_app(settings: Settings | None = None) -> Litestar:
    """The kernel app for ``settings`` (default: the process settings)."""
    settings = settings or get_settings()
    # Unknown task modules fail here, at start, rather than on the first submit.
    load_task_modules(settings.worker.task_module_names)
    api = settings.api
    auth = make_auth(settings.auth)
    redis = aioredis.Redis.from_url(settings.redis.redis_url, socket_connect_timeout=2.0,
                                    socket_timeout=5.0)
    state = State({
        "settings": settings,
        "auth": auth,
        "redis": redis,
        # RQ's own calls (its cancel) want a synchronous client.
        "rq_redis": SyncRedis.from_url(settings.redis.redis_url, socket_connect_timeout=2.0,
                                       socket_timeout=5.0),
        "client": DataServiceClient.from_settings(api),
        # Live streams read through a pool of their own: they never hold up a submit.
        "stream_client": DataServiceClient.from_settings(api, max_connections=4),
        "queue": make_queue(settings),
        "queue_ensured": False,
        "queue_ensure_tried": float("-inf"),
        # Set when the process is asked to stop: open event streams end at their next poll.
        "stopping": threading.Event(),
    })
    submit_limit = submit_rate_limit(settings.auth.submit_rate_limit)
    login_limit = login_rate_limit(settings.auth.login_rate_limit)

    handlers: list[Any] = [
        Router(API_PREFIX, route_handlers=[
            *job_routes([submit_limit.middleware] if submit_limit else []),
            *auth_routes([login_limit.middleware] if login_limit else []),
            *EVENT_ROUTES, *CATALOG_ROUTES, *STATS_ROUTES, *WEBHOOK_SECRET_ROUTES],
            # An ETag on each JSON answer; a 304 when the browser's copy still holds.
            middleware=[ConditionalGetMiddleware()]),
        *HEALTH_ROUTES,
        *metrics_routes(settings.observability),
    ]
    exception_handlers = dict(EXCEPTION_HANDLERS)
    dist = Path(api.frontend_dist)
    if dist.is_dir():
        handlers.append(frontend_router(dist))
        exception_handlers[HTTP_404_NOT_FOUND] = spa_fallback(dist)
    else:
        log.info("no built web app at %s: serving the API only", dist)

    csrf = CSRFConfig(secret=csrf_secret(settings.auth.auth_secret), cookie_name=CSRF_COOKIE,
                      header_name=CSRF_HEADER, cookie_samesite="strict",
                      cookie_secure=settings.auth.auth_cookie_secure)
    app = Litestar(
        route_handlers=handlers,
        dependencies=DEPENDENCIES,
        exception_handlers=exception_handlers,
        on_app_init=[auth.on_app_init],
        # gzip for answers of 1 KiB or more (job lists), except live streams (a compressor
        # holds events back until it has a block to send) and the web app's files, which
        # the build compressed once (backend/api/frontend.py).
        compression_config=CompressionConfig(backend="gzip", minimum_size=COMPRESS_MIN_BYTES,
                                             gzip_compress_level=6,
                                             exclude=NOT_COMPRESSED,
                                             exclude_opt_key=SKIP_COMPRESSION),
        middleware=[*metrics_middleware(settings.observability, "api"), SecurityHeadersMiddleware(),
                    DefineMiddleware(BearerAwareCSRFMiddleware, config=csrf)],
        stores={STORE: FailOpenRedisStore(redis, namespace="taskbroker:ratelimit")},
        cors_config=cors_config(api.cors_origins),
        # Swagger UI at /schema, its files served here (no CDN; passes the kernel's CSP).
        openapi_config=openapi_config(
            "/schema", title="taskbroker kernel API", version="0.1.0",
            description="Submit jobs, follow them to their result.",
        ),
        request_max_body_size=settings.store.max_body_bytes,
        # Logging is set up once by the process (backend.logs), honouring LOG_LEVEL.
        logging_config=None,
        before_request=before_request,
        lifespan=[_lifespan],
        # Server spans of each request (tracing on only); probes and scrapes make none.
        plugins=tracing.litestar_plugins(exclude=["^/metrics$", "^/healthz$", "^/readyz$"]),
        state=state,
    )
    # Outside the router, which would answer a HEAD of a GET route 405.
    app.asgi_handler = head_as_get(app.asgi_handler)
    return app
