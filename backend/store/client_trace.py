"""Each request of the data service client, observed through aiohttp's ``TraceConfig``:
its latency by route (``taskbroker_data_service_request_seconds``) and, with tracing
on, a client span whose W3C ``traceparent`` the request carries (so the data service's
own request span joins the caller's trace).

Routes are the path with its ids replaced (``/job/{id}``, ``/users/{username}``), so the
metric keeps a handful of series whatever the jobs and users.
"""

from __future__ import annotations

import re
import time
from types import SimpleNamespace

import aiohttp
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from backend import metrics, tracing
from backend.metrics import DATA_SERVICE_SECONDS

_ID = re.compile(r"^[0-9a-f]{24}$|^[0-9a-f]{32}$")
_WORD = re.compile(r"^[a-z_-]{1,30}$")


def route_of(path: str) -> str:
    """``path`` with every id (and any segment that is not a plain word) replaced."""
    parts = path.split("/")
    for index, part in enumerate(parts):
        if not part:
            continue
        if _ID.match(part):
            parts[index] = "{id}"
        elif index >= 2 and parts[index - 1] == "users" and part != "check":
            parts[index] = "{username}"
        elif not _WORD.match(part):
            parts[index] = "{param}"
    return "/".join(parts) or "/"


async def _start(session: aiohttp.ClientSession, ctx: SimpleNamespace,
                 params: aiohttp.TraceRequestStartParams) -> None:
    ctx.started = time.perf_counter()
    ctx.route = route_of(params.url.path)
    ctx.span = None
    if tracing.enabled():
        span = tracing.tracer().start_span(
            f"data service {params.method} {ctx.route}", kind=SpanKind.CLIENT,
            attributes={"http.request.method": params.method, "url.path": ctx.route})
        carrier: dict[str, str] = {}
        tracing.inject_into(carrier, span)
        params.headers.update(carrier)
        ctx.span = span


def _done(ctx: SimpleNamespace, method: str, outcome: str, error: BaseException | None) -> None:
    _observe(ctx, method, outcome)
    span: trace.Span | None = ctx.span
    if span is not None:
        span.set_attribute("taskbroker.outcome", outcome)
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        elif outcome == "5xx":
            span.set_status(Status(StatusCode.ERROR, outcome))
        span.end()


async def _end(session: aiohttp.ClientSession, ctx: SimpleNamespace,
               params: aiohttp.TraceRequestEndParams) -> None:
    _done(ctx, params.method, f"{params.response.status // 100}xx", None)


async def _failed(session: aiohttp.ClientSession, ctx: SimpleNamespace,
                  params: aiohttp.TraceRequestExceptionParams) -> None:
    _done(ctx, params.method, "error", params.exception)


def observed() -> bool:
    """Whether requests are observed at all (metrics or tracing on)."""
    return metrics.enabled() or tracing.enabled()


def _observe(ctx: SimpleNamespace, method: str, outcome: str) -> None:
    if metrics.enabled():
        DATA_SERVICE_SECONDS.labels(method, ctx.route, outcome).observe(
            time.perf_counter() - ctx.started)


def data_service_trace() -> aiohttp.TraceConfig:
    """The ``TraceConfig`` of the data service client's session."""
    config = aiohttp.TraceConfig()
    config.on_request_start.append(_start)
    config.on_request_end.append(_end)
    config.on_request_exception.append(_failed)
    return config


__all__ = ["data_service_trace", "route_of"]
