"""What both Litestar apps (the kernel and the data service) share about HTTP itself."""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response
from litestar.status_codes import HTTP_415_UNSUPPORTED_MEDIA_TYPE

_WITH_BODY = {"POST", "PUT", "PATCH"}


def _has_body(request: Request[Any, Any, Any]) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "chunked" in request.headers.get("transfer-encoding", "").lower()


async def require_json(request: Request[Any, Any, Any]) -> Response[dict[str, Any]] | None:
    """A ``before_request`` hook: a request body must be ``application/json``.

    A browser sends ``text/plain`` (or a form) cross-origin without asking first, so a
    kernel that parsed any body as JSON would take jobs from any web page a user opens.
    """
    if request.method not in _WITH_BODY or not _has_body(request):
        return None
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == MediaType.JSON:
        return None
    got = media_type or "no Content-Type"
    detail = f"send the request body as JSON with Content-Type: application/json (got {got})"
    return Response({"status_code": HTTP_415_UNSUPPORTED_MEDIA_TYPE, "detail": detail},
                    status_code=HTTP_415_UNSUPPORTED_MEDIA_TYPE, media_type=MediaType.JSON)
