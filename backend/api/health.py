"""Liveness and readiness probes."""

from __future__ import annotations

import logging
from typing import Any

import anyio
from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from backend.api.dependencies import Client
from backend.store.client import DataServiceClient
from backend.web import problem

log = logging.getLogger(__name__)

# A probe must answer before the orchestrator's own probe timeout (often 1 to 5 s).
PING_TIMEOUT = 3.0


@get("/healthz", summary="Liveness", tags=["health"], exclude_from_auth=True)
async def healthz() -> dict[str, str]:
    """The process is up (it checks nothing else, so it never restarts a healthy pod)."""
    return {"status": "ok"}


async def _queue_check(state: State) -> str:
    try:
        with anyio.fail_after(PING_TIMEOUT):
            await state.queue.ping()
    except TimeoutError:
        return f"no answer within {PING_TIMEOUT:g}s"
    except Exception as exc:  # any backend error means "not ready", never a 500
        # The details (addresses included) go to the log, not to whoever asks.
        log.warning("readiness: the queue failed: %s", exc)
        return "unreachable (the kernel's log says why)"
    return "ok"


async def _store_check(client: DataServiceClient) -> str:
    return "ok" if await client.ready() else "not ready or unreachable"


@get("/readyz", summary="Readiness", tags=["health"], exclude_from_auth=True)
async def readyz(request: Request, state: State, client: Client) -> Response[Any]:
    """200 when the data service and the STANDARD queue both answer, else 503 naming which."""
    checks: dict[str, str] = {}

    async def run(name: str, check: Any, *args: Any) -> None:
        checks[name] = await check(*args)

    async with anyio.create_task_group() as group:
        group.start_soon(run, "data_service", _store_check, client)
        group.start_soon(run, "queue", _queue_check, state)
    failed = [name for name, result in checks.items() if result != "ok"]
    if failed:
        return problem(request, HTTP_503_SERVICE_UNAVAILABLE,
                       f"not ready: {', '.join(sorted(failed))} failed", checks=checks)
    return Response({"status": "ready", "checks": checks}, status_code=HTTP_200_OK)


HEALTH_ROUTES = [healthz, readyz]
