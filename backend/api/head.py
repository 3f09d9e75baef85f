"""HEAD wherever GET works: the API's GETs, the probes, the web app and its files.

Litestar routes HEAD only to handlers declared for it, so a HEAD of ``/api/v1/jobs`` or
``/healthz`` would be a 405. This wrapper, outside Litestar's router, hands a HEAD request
to the app as a GET and sends its status and headers (Content-Length, ETag, Cache-Control,
the security headers: those of the GET, RFC 9110 9.3.2) with no body. Once the headers are
out the answer is complete, and the app's receive channel says the client left, so a live
stream (``/events``) ends instead of running on for no one.

A path with no GET stays what it was (a 405 naming its methods, a 404), without a body.
"""

from __future__ import annotations

from litestar.types import ASGIApp, Message, Receive, Scope, Send

_DISCONNECT: Message = {"type": "http.disconnect"}


def head_as_get(app: ASGIApp) -> ASGIApp:
    """``app``, answering HEAD requests as it answers GET, without the body."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await app(scope, receive, send)
            return
        done = False

        async def headers_only(message: Message) -> None:
            nonlocal done
            if done:
                return
            if message["type"] == "http.response.start":
                await send(message)
            elif message["type"] == "http.response.body":
                done = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def until_done() -> Message:
            return _DISCONNECT if done else await receive()

        # A copy: the server keeps its own scope (uvicorn then writes no body either).
        await app({**scope, "method": "GET"}, until_done, headers_only)  # type: ignore[typeddict-item]

    return wrapped
