"""Every JSON answer of the dashboard is HTML-escaped.

rq-dashboard's pages build their tables and the job page from its JSON with underscore
templates whose ``<%= %>`` does not escape, and put the result into ``innerHTML``: a
failure traceback, a description, a result or metadata holding ``<img onerror=...>``
would run in the operator's browser. The JSON has no other reader, so every string in it
(keys included) is escaped once, here; the two spots of the templates that escaped for
themselves are edited to stop, or they would show ``&lt;`` for ``<``.
"""

from __future__ import annotations

import html
import json
from typing import Any

from flask import Response

from backend.dashboard.templates import Edit

TEMPLATE_EDITS = {
    "rq_dashboard/jobs.html": [
        Edit("$('<div/>').text(d.description).html()", "d.description", 1),
        Edit("$('<div/>').text(d.exc_info).html()", "d.exc_info", 1),
    ],
    "rq_dashboard/workers.html": [
        Edit("<%- d.current_job.description %>", "<%= d.current_job.description %>", 1),
    ],
}


def escape_all(value: Any) -> Any:
    """``value`` with every string in it, dict keys included, HTML-escaped."""
    if isinstance(value, str):
        return html.escape(value, quote=True)
    if isinstance(value, list):
        return [escape_all(item) for item in value]
    if isinstance(value, dict):
        return {html.escape(str(k), quote=True): escape_all(v) for k, v in value.items()}
    return value


def escape_json_answer(response: Response) -> Response:
    if response.mimetype == "application/json" and not response.direct_passthrough:
        body = escape_all(json.loads(response.get_data()))
        response.set_data(json.dumps(body))
    return response
