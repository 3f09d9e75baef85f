"""A Content-Security-Policy on every answer; a page's scripts run only with its nonce.

Escaping (``escaping.py``) is the fix; this is the second wall: markup that slipped into
a page still runs no script, since neither an inline handler nor an injected ``<script>``
carries the nonce. rq-dashboard compiles its underscore templates with ``new Function``,
hence ``'unsafe-eval'``; what it compiles is the page's own template text, never data.
Inline ``style`` attributes of its templates need ``'unsafe-inline'`` for styles only.
"""

from __future__ import annotations

import secrets

from flask import Response, g

from backend.dashboard.templates import Edit

TEMPLATE_EDITS = {
    # rq-dashboard's five scripts (four files and the page's inline one) all sit here.
    "rq_dashboard/base.html": [
        Edit("<script ", '<script nonce="{{ csp_nonce() }}" ', 5),
    ],
}

POLICY = ("default-src 'none'; script-src 'nonce-{nonce}' 'unsafe-eval'; "
          "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; "
          "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


def csp_nonce() -> str:
    """This answer's nonce (made on first use)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(18)
    return g.csp_nonce


def add_security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = POLICY.format(nonce=csp_nonce())
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Keeps the Referer for the dashboard's own requests (the action guard may read it).
    response.headers["Referrer-Policy"] = "same-origin"
    return response
