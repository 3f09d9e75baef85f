"""Who may use the dashboard, and how its actions may be asked for.

Every answer needs HTTP basic auth. An action (empty, requeue, delete, compact: anything
but the pages and their JSON) is a POST from the dashboard's own pages only: a GET cannot
change state (a cross-site ``<img src=.../requeue/q>`` carries the browser's cached basic
auth and no Origin check applies to GETs), and a POST must carry the dashboard's Origin,
or else its Referer.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from urllib.parse import urlsplit

from flask import Response, jsonify, request

REALM = 'Basic realm="taskbroker rq-dashboard"'
# rq-dashboard's endpoints that only read; every other one changes state.
READ_ONLY = frozenset({
    "rq_dashboard.queues_overview", "rq_dashboard.workers_overview",
    "rq_dashboard.jobs_overview", "rq_dashboard.job_view", "rq_dashboard.list_queues",
    "rq_dashboard.list_jobs", "rq_dashboard.job_info", "rq_dashboard.list_workers",
    "rq_dashboard.favicon", "rq_dashboard.static",
})


def problem(status_code: int, detail: str, **headers: str) -> Response:
    """An error answer in the project's shape, ``{"status_code", "detail"}``."""
    response = jsonify(status_code=status_code, detail=detail)
    response.status_code = status_code
    response.headers.update(headers)
    return response


def credentials_match(header: str | None, username: str, password: str) -> bool:
    if not header or not header.startswith("Basic "):
        return False
    try:
        given = base64.b64decode(header[6:], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    name, _, secret = given.partition(":")
    # Both compared, always: no early exit that tells a right name from a wrong one.
    name_ok = hmac.compare_digest(name.encode(), username.encode())
    secret_ok = hmac.compare_digest(secret.encode(), password.encode())
    return name_ok and secret_ok


def same_origin() -> bool:
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source:
        return False
    origin = urlsplit(source)
    return f"{origin.scheme}://{origin.netloc}" == request.host_url.rstrip("/")


def guard(username: str, password: str) -> Response | None:
    """The answer refusing this request, or None to let it through."""
    if not credentials_match(request.headers.get("Authorization"), username, password):
        return problem(401, "Sign in to rq-dashboard", **{"WWW-Authenticate": REALM})
    if request.endpoint is None or request.endpoint in READ_ONLY:
        return None  # a page, its JSON, a file; or a 404 / 405 Flask answers itself
    if request.method != "POST":
        return problem(405, "This action changes state: it is a POST from the dashboard pages",
                       Allow="POST")
    if not same_origin():
        return problem(403, "Actions are taken from the dashboard pages only")
    return None
