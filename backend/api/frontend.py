"""The built web app, served by the kernel at ``/`` with the single-page-app fallback.

Real files (``main-XYZ.js``, ``favicon.ico``) are served as they are; any other GET
outside ``/api`` gets ``index.html`` so that Angular's own routes (``/jobs/<id>``)
survive a reload. Unknown ``/api`` paths stay JSON 404s.

Caching: a file whose name carries the build's content hash (``main-BR5DE7O5.js``,
``styles-Y7HE6NX2.css``, ``media/font-AB12CD34.woff2``) never changes under that name, so
browsers may keep it a year without asking again. Everything else, above all
``index.html`` (which names the current hashed files) and the SPA fallback, is
``no-cache``: kept, but checked with the server before each use, so a new build is
picked up by the next page load.

Compression: the build writes ``<file>.br`` and ``<file>.gz`` beside each large text file
(frontend/scripts/precompress.mjs, at brotli's and gzip's best levels). The kernel answers
with one of those when the browser accepts it, so the web app's files cost no compression
work per request; a file without them is sent as it is (the router is left out of the
kernel's on-the-fly compression, which would compress them a second time).
"""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path, PurePath
from typing import Any

from litestar import MediaType, Request, Response
from litestar.datastructures import Headers, MutableScopeHeaders
from litestar.exceptions import NotFoundException
from litestar.response import File
from litestar.router import Router
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from backend.api.headers import SECURITY_HEADERS
from backend.web import http_problem

# Paths the SPA never owns: the API, the probes and the OpenAPI documents.
_NOT_SPA = ("/api", "/schema", "/healthz", "/readyz")

CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
CACHE_REVALIDATE = "no-cache"
# Precompressed variants, best first: (Accept-Encoding token, file suffix).
_ENCODINGS = (("br", ".br"), ("gzip", ".gz"))
# Options of the kernel's own compression: routes with this opt are left alone.
SKIP_COMPRESSION = "skip_compression"
# Angular's builder (esbuild) names outputs `<name>-<8 upper-case base32 chars>.<ext>`.
_HASHED_NAME = re.compile(r"-[A-Z0-9]{8}\.[A-Za-z0-9]+$")


def is_hashed(path: str) -> bool:
    """Whether the last segment of ``path`` names a file with a content hash."""
    return bool(_HASHED_NAME.search(path.rsplit("/", 1)[-1]))


def cache_control_for(path: str) -> str:
    return CACHE_IMMUTABLE if is_hashed(path) else CACHE_REVALIDATE


def _cache_control(app: ASGIApp) -> ASGIApp:
    """Middleware: a Cache-Control on each file served (200), chosen by its name.

    Errors (a missing ``chunk-XYZ.js`` is a 404) are left alone: caching a miss for a
    year would outlive the deploy that adds the file.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        value = cache_control_for(scope["path"])

        async def send_with_cache_control(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                MutableScopeHeaders.from_message(message)["cache-control"] = value
            await send(message)

        await app(scope, receive, send_with_cache_control)

    return middleware


def accepted_encodings(header: str) -> set[str]:
    """The codings an Accept-Encoding header allows (``q=0`` refuses one)."""
    allowed = set()
    for part in header.lower().split(","):
        name, _, params = part.partition(";")
        quality = params.strip().removeprefix("q=").strip()
        try:
            refused = bool(quality) and float(quality) <= 0
        except ValueError:
            refused = False
        if name.strip() and not refused:
            allowed.add(name.strip())
    return allowed


def _precompressed(dist: Path) -> Any:
    """Middleware factory: serve ``<file>.br`` or ``<file>.gz`` when the browser takes it."""
    root = dist.resolve()

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            params = scope.get("path_params") or {}
            original = params.get("file_path")
            if scope["type"] != "http" or original is None:
                await app(scope, receive, send)
                return
            requested = PurePath(original).as_posix()
            name = requested.lstrip("/")
            accepted = accepted_encodings(
                Headers.from_scope(scope).get("accept-encoding") or "")
            for coding, suffix in _ENCODINGS:
                if coding in accepted and _is_file_under(root, name + suffix):
                    break
            else:
                await app(scope, receive, send)
                return
            media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
            if media_type.startswith("text/") or media_type.endswith("javascript"):
                media_type += "; charset=utf-8"
            scope["path_params"] = {**params, "file_path": type(original)(requested + suffix)}

            async def send_encoded(message: Message) -> None:
                if message["type"] == "http.response.start" and message["status"] == 200:
                    headers = MutableScopeHeaders.from_message(message)
                    headers["content-type"] = media_type
                    headers["content-encoding"] = coding
                    headers["vary"] = "Accept-Encoding"
                await send(message)

            await app(scope, receive, send_encoded)

        return middleware

    return factory


def _is_file_under(root: Path, name: str) -> bool:
    path = (root / name).resolve()
    return path.is_relative_to(root) and path.is_file()


def frontend_router(dist: Path) -> Router:
    # The app's files are public: the app asks /api/v1/auth/me who is signed in.
    return create_static_files_router(path="/", directories=[dist], html_mode=True,
                                      name="frontend", include_in_schema=False,
                                      middleware=[_cache_control, _precompressed(dist)],
                                      opt={"exclude_from_auth": True, SKIP_COMPRESSION: True})


def spa_fallback(dist: Path) -> Any:
    """A 404 handler that answers browser routes with ``index.html``."""
    index = dist / "index.html"

    def handle(request: Request, exc: NotFoundException) -> Response[Any]:
        path = request.url.path
        last = path.rsplit("/", 1)[-1]
        # A path with a file extension is a missing asset, not an app route.
        if (request.method in ("GET", "HEAD") and index.is_file() and "." not in last
                and not path.startswith(_NOT_SPA)):
            # No route matched, so no middleware ran: the security headers are added here.
            return File(index, media_type=MediaType.HTML, content_disposition_type="inline",
                        headers={"cache-control": CACHE_REVALIDATE, **SECURITY_HEADERS})
        answer = http_problem(request, exc)
        answer.headers.update(SECURITY_HEADERS)
        return answer

    return handle
