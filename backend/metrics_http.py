"""``/metrics`` of the two Litestar apps (the kernel and the data service).

Litestar's ``PrometheusConfig`` middleware counts and times every request by route
template (``/api/v1/jobs/{job_id:str}``, never the job's id) and its
``PrometheusController`` serves the process's registry. The route needs no sign-in and
no service token; with METRICS_TOKEN set it wants that token as a bearer token.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController

from backend.metrics import CALL_BUCKETS, HTTP_PREFIX, METRICS_PATH, authorized
from backend.settings import ObservabilitySettings


def metrics_middleware(settings: ObservabilitySettings, app_name: str) -> list[Any]:
    """The request metrics middleware, unless METRICS_ENABLED is false."""
    return [prometheus_config(app_name).middleware] if settings.metrics_enabled else []


def metrics_routes(settings: ObservabilitySettings) -> list[Any]:
    """The ``/metrics`` route, unless METRICS_ENABLED is false."""
    return [metrics_controller(settings.metrics_token)] if settings.metrics_enabled else []


def prometheus_config(app_name: str) -> PrometheusConfig:
    """Request metrics of the app ``app_name`` (``api`` or ``store``)."""
    return PrometheusConfig(app_name=app_name, prefix=HTTP_PREFIX, group_path=True,
                            exclude=[f"^{METRICS_PATH}$"], buckets=list(CALL_BUCKETS))


def metrics_controller(token: str) -> type[PrometheusController]:
    """The ``/metrics`` route: open, or behind ``token`` when it is set."""

    async def metrics_token_guard(connection: ASGIConnection[Any, Any, Any, Any],
                                  handler: BaseRouteHandler) -> None:
        if not authorized(connection.headers.get("authorization"), token):
            raise NotAuthorizedException("send the metrics token (METRICS_TOKEN) as "
                                         "Authorization: Bearer <token>")

    class MetricsController(PrometheusController):
        path = METRICS_PATH
        guards = [metrics_token_guard]
        # Not a user's route (no sign-in) nor the services' (no service token).
        opt = {"exclude_from_auth": True, "public": True}
        include_in_schema = False

    return MetricsController
