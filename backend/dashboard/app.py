"""The dashboard's Flask app: rq-dashboard's blueprint behind the guard, JSON-only."""

from __future__ import annotations

from flask import Flask, Response
from jinja2 import PackageLoader
from rq.exceptions import DeserializationError, NoSuchJobError
from rq_dashboard import default_settings
from rq_dashboard.web import blueprint, setup_rq_connection

from backend.dashboard import csp, escaping, json_only, kept
from backend.dashboard.guard import guard, problem
from backend.dashboard.templates import Edit, EditingLoader
from backend.settings import Settings

# base.html links the favicon from the app's static folder, which this app does not have.
FAVICON = Edit("url_for('static', filename='favicon.ico')", "url_for('rq_dashboard.favicon')", 1)


def _template_edits() -> dict[str, list[Edit]]:
    edits: dict[str, list[Edit]] = {"rq_dashboard/base.html": [FAVICON]}
    for part in (csp.TEMPLATE_EDITS, escaping.TEMPLATE_EDITS, kept.TEMPLATE_EDITS):
        for name, more in part.items():
            edits.setdefault(name, []).extend(more)
    return edits


def _refused(_: Exception) -> Response:
    return problem(422, "Refused: this job has data in Redis that is not JSON. The project "
                   "writes JSON only, and the dashboard never unpickles.")


def _missing(_: Exception) -> Response:
    return problem(404, "No such job (it may have expired)")


def create_app(settings: Settings) -> Flask:
    """The dashboard for ``settings.redis.redis_url``, asking for ``settings.local``'s
    dashboard user name and password."""
    local = settings.local
    if not local.dashboard_password:
        raise SystemExit("rq-dashboard needs DASHBOARD_PASSWORD (the local run generates one "
                         "under DATA_DIR)")
    json_only.install()
    app = Flask(__name__, static_folder=None)
    app.config.from_object(default_settings)
    app.config["RQ_DASHBOARD_REDIS_URL"] = settings.redis.redis_url
    app.config["DEPRECATED_OPTIONS"] = []
    app.register_blueprint(blueprint, url_prefix="")
    loader = EditingLoader(PackageLoader("rq_dashboard"), _template_edits())
    app.jinja_loader = loader  # type: ignore[method-assign]
    loader.check(app.jinja_env)
    app.jinja_env.globals["csp_nonce"] = csp.csp_nonce
    app.jinja_env.globals["rq_result_ttl"] = settings.worker.rq_result_ttl
    app.jinja_env.globals["rq_failure_ttl"] = settings.worker.rq_failure_ttl

    def check() -> Response | None:
        return guard(local.dashboard_username, local.dashboard_password)

    app.before_request(check)
    app.before_request(kept.before_request)  # after the guard: only for the signed in
    app.after_request(escaping.escape_json_answer)
    app.after_request(csp.add_security_headers)
    app.register_error_handler(DeserializationError, _refused)
    app.register_error_handler(NoSuchJobError, _missing)
    setup_rq_connection(app)
    return app
