"""The data service's door: every route but the probes needs the service token."""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

SERVICE_TOKEN_HEADER = "X-Service-Token"
PUBLIC = "public"  # route opt: the probes answer anyone


def service_token_guard(token: str) -> Any:
    """A Litestar guard that compares the caller's ``X-Service-Token`` with ``token`` in
    constant time; routes with ``opt={"public": True}`` are open."""
    expected = token.encode()

    # async: Litestar would run a plain function in a worker thread, on every request.
    async def guard(connection: ASGIConnection[Any, Any, Any, Any],
                    handler: BaseRouteHandler) -> None:
        if handler.opt.get(PUBLIC):
            return
        given = connection.headers.get(SERVICE_TOKEN_HEADER, "").encode()
        if not given or not hmac.compare_digest(given, expected):
            raise NotAuthorizedException(
                "this is an internal service: send the service token (DATA_SERVICE_TOKEN) "
                f"in {SERVICE_TOKEN_HEADER}")

    return guard
