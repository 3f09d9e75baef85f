"""Conditional GETs of the API: an ETag on every JSON answer, a 304 when it still holds.

The web app refreshes its job list every few seconds, and mostly nothing changed. Each
JSON answer to a GET carries a weak ETag (a hash of its content, before compression) and
``Cache-Control: private, no-cache``, so the browser keeps the answer and asks again with
``If-None-Match`` by itself; when the new answer hashes the same, the kernel sends a 304
with no body instead. The answer is still computed (the job store is still read): what is
saved is the transfer and the browser's work, and a 304 is easy to count.

Live streams (``text/event-stream``) and non-200 answers pass through untouched.
"""

from __future__ import annotations

import gzip
import hashlib

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.status_codes import HTTP_200_OK, HTTP_304_NOT_MODIFIED
from litestar.types import ASGIApp, Message, Receive, Scope, Send

CACHE_CONTROL = "private, no-cache"
# What a 304 repeats of the 200 it stands for (RFC 9110, 15.4.5), besides the ETag.
_KEPT_ON_304 = ("cache-control", "vary", "content-location", "expires")


def etag_of(content: bytes) -> str:
    # Weak: the same validator for the gzip and the plain answer of the same JSON.
    return f'W/"{hashlib.blake2b(content, digest_size=16).hexdigest()}"'


def matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison of ``etag`` with an If-None-Match header (a list, or ``*``)."""
    wanted = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == wanted:
            return True
    return False


class ConditionalGetMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send,
                     next_app: ASGIApp) -> None:
        if scope["method"] != "GET":
            await next_app(scope, receive, send)
            return
        if_none_match = next((value.decode("latin-1") for name, value in scope["headers"]
                              if name == b"if-none-match"), None)
        start: Message | None = None
        chunks: list[bytes] = []

        async def buffered(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                if (message["status"] == HTTP_200_OK
                        and headers.get("content-type", "").startswith("application/json")):
                    start = message  # held until the body is complete
                    return
            elif start is not None and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    await _finish(start, b"".join(chunks), if_none_match, send)
                return
            await send(message)

        await next_app(scope, receive, buffered)


async def _finish(start: Message, body: bytes, if_none_match: str | None, send: Send) -> None:
    headers = MutableScopeHeaders.from_message(start)
    content = gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body
    etag = etag_of(content)
    headers["etag"] = etag
    if "cache-control" not in headers:
        headers["cache-control"] = CACHE_CONTROL
    if if_none_match is not None and matches(if_none_match, etag):
        kept = [(name, value) for name, value in start["headers"]
                if name.decode("latin-1").lower() in (*_KEPT_ON_304, "etag")]
        await send({"type": "http.response.start", "status": HTTP_304_NOT_MODIFIED,
                    "headers": kept})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})
