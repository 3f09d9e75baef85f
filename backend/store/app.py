"""The data service's Litestar app: routes, error handling, and the MongoDB lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from beanie import init_beanie
from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from backend import tracing
from backend.metrics_http import metrics_middleware, metrics_routes
from backend.settings import Settings, get_settings
from backend.store import retention
from backend.store.accounts import AccountController, ApiTokenDocument, UserDocument
from backend.store.documents import JobDocument, bind_collection
from backend.store.exception_handlers import EXCEPTION_HANDLERS
from backend.store.guards import service_token_guard
from backend.store.routes import (
    BatchController,
    JobController,
    count_unfinished,
    delete_job_seed_path,
    healthz,
    list_user_jobs,
    readyz,
)
from backend.store.webhook_keys import WebhookKeyController, WebhookKeyDocument
from backend.web import before_request

log = logging.getLogger("backend.store")


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the data service from ``settings`` (the process settings by default).

    The lifespan opens one MongoDB client, binds the Beanie documents to
    DATABASE_NAME/COLLECTION_NAME (creating the indexes), runs the retention sweep
    (:mod:`backend.store.retention`), and closes it all on shutdown.
    Beanie's document classes are process-global, so one process serves one store.
    """
    settings = settings or get_settings()
    mongo = settings.mongo
    token = settings.api.data_service_token
    if not token:
        raise SystemExit("the data service needs DATA_SERVICE_TOKEN (a shared secret its "
                         "callers send); the local run generates one under DATA_DIR")

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        client: AsyncMongoClient = AsyncMongoClient(
            mongo.mongodb_url, tz_aware=True, serverSelectionTimeoutMS=mongo.mongodb_timeout_ms,
            connectTimeoutMS=mongo.mongodb_timeout_ms, timeoutMS=mongo.mongodb_timeout_ms,
        )
        app.state.mongo_client = client
        try:
            bind_collection(mongo.collection_name)
            try:
                await init_beanie(database=client[mongo.database_name],
                                  document_models=[JobDocument, UserDocument, ApiTokenDocument,
                                                   WebhookKeyDocument])
            except PyMongoError as exc:
                log.error("cannot start: MongoDB (MONGODB_URL) did not answer: %s", exc)
                raise
            log.info("jobs in %s.%s", mongo.database_name, mongo.collection_name)
            sweeper = asyncio.create_task(retention.keep_sweeping(settings.store))
            try:
                yield
            finally:
                sweeper.cancel()
                await asyncio.gather(sweeper, return_exceptions=True)
        finally:
            await client.close()

    return Litestar(
        route_handlers=[JobController, BatchController, AccountController, WebhookKeyController,
                        list_user_jobs,
                        count_unfinished, delete_job_seed_path, healthz, readyz,
                        *metrics_routes(settings.observability)],
        guards=[service_token_guard(token)],
        middleware=metrics_middleware(settings.observability, "store"),
        # Server spans of each request (tracing on only), continuing the caller's trace.
        plugins=tracing.litestar_plugins(exclude=["^/metrics$", "^/healthz$", "^/readyz$"]),
        # Logging is set up once by the process (backend.logs), honouring LOG_LEVEL.
        logging_config=None,
        before_request=before_request,
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.store.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="taskbroker data service",
            version="0.1.0",
            description="Owns the job documents; every other part reads and writes jobs here.",
            path="/schema",
        ),
    )
