"""The built web app, served by the kernel at ``/`` with the single-page-app fallback.

Real files (``main-XYZ.js``, ``favicon.ico``) are served as they are; any other GET
outside ``/api`` gets ``index.html`` so that Angular's own routes (``/jobs/<id>``)
survive a reload. Unknown ``/api`` paths stay JSON 404s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import NotFoundException
from litestar.response import File
from litestar.router import Router
from litestar.static_files import create_static_files_router

# Paths the SPA never owns: the API, the probes and the OpenAPI documents.
_NOT_SPA = ("/api", "/schema", "/healthz", "/readyz")


def frontend_router(dist: Path) -> Router:
    return create_static_files_router(path="/", directories=[dist], html_mode=True,
                                      name="frontend", include_in_schema=False)


def spa_fallback(dist: Path) -> Any:
    """A 404 handler that answers browser routes with ``index.html``."""
    index = dist / "index.html"

    def handle(request: Request, exc: NotFoundException) -> Response[Any]:
        path = request.url.path
        last = path.rsplit("/", 1)[-1]
        # A path with a file extension is a missing asset, not an app route.
        if (request.method in ("GET", "HEAD") and index.is_file() and "." not in last
                and not path.startswith(_NOT_SPA)):
            return File(index, media_type=MediaType.HTML, content_disposition_type="inline")
        return Response({"status_code": exc.status_code, "detail": exc.detail},
                        status_code=exc.status_code, media_type=MediaType.JSON)

    return handle
