"""Security headers on every answer of the kernel (the web app's pages, the API, errors).

Litestar's ``response_headers`` reach route answers but not error answers; this small
ASGI wrapper adds the same headers to every response start, and HSTS to the answers of
requests made over HTTPS: directly, or through a proxy of TRUSTED_PROXIES that says so in
X-Forwarded-Proto (uvicorn then sets the request's scheme).
"""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS = {
    # Angular adds component styles at run time: inline styles, nothing else inline.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
        "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    # Powerful features the app never uses, refused to it and to anything it could embed
    # (clipboard-write stays: the tokens page copies a new secret). Only names Chromium
    # knows: an unknown one is reported in the browser's console.
    "Permissions-Policy": (
        "accelerometer=(), autoplay=(), camera=(), display-capture=(), encrypted-media=(), "
        "fullscreen=(), geolocation=(), gyroscope=(), hid=(), magnetometer=(), microphone=(), "
        "midi=(), payment=(), picture-in-picture=(), publickey-credentials-get=(), "
        "screen-wake-lock=(), serial=(), usb=(), xr-spatial-tracking=()"),
    # A window this site opens, or that opens it, gets no handle on the other
    # (window.opener), and other sites may not embed its answers as images or scripts
    # (no-cors loads; CORS calls from CORS_ORIGINS are not affected).
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
# A year of HTTPS only for this host, once a browser saw it over HTTPS (over http browsers
# ignore the header). Not includeSubDomains: other hosts of the domain are not ours.
HSTS = ("Strict-Transport-Security", "max-age=31536000")


class SecurityHeadersMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send,
                     next_app: ASGIApp) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
                if scope.get("scheme") == "https":
                    headers[HSTS[0]] = HSTS[1]
            await send(message)

        await next_app(scope, receive, with_headers)
