"""``python -m backend.dashboard [--bind H] [--port P]``: rq-dashboard, locked.

rq-dashboard as the project runs it: with RQ's JSON serializer (ours), behind HTTP basic
auth (DASHBOARD_USERNAME / DASHBOARD_PASSWORD, compared in constant time), and with its
state-changing actions (empty a queue, requeue, delete) refused unless they come from the
dashboard's own pages (the Origin, or else the Referer, must be the dashboard itself), so
no other site can trigger them in an operator's browser.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import logging
from urllib.parse import urlsplit

from flask import Flask, Response, request
from rq.serializers import JSONSerializer
from rq_dashboard.cli import make_flask_app
from rq_dashboard.web import config as dashboard_config
from rq_dashboard.web import setup_rq_connection

from backend.logs import configure_process
from backend.settings import Settings, get_settings

REALM = 'Basic realm="taskbroker rq-dashboard"'
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def _credentials_match(header: str | None, username: str, password: str) -> bool:
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


def _same_origin() -> bool:
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source:
        return False
    origin = urlsplit(source)
    return f"{origin.scheme}://{origin.netloc}" == request.host_url.rstrip("/")


def create_app(settings: Settings) -> Flask:
    local = settings.local
    if not local.dashboard_password:
        raise SystemExit("rq-dashboard needs DASHBOARD_PASSWORD (the local run generates one "
                         "under DATA_DIR)")
    app = make_flask_app(None, None, None, "")
    app.config["RQ_DASHBOARD_REDIS_URL"] = settings.redis.redis_url
    app.config["DEPRECATED_OPTIONS"] = []
    dashboard_config.serializer = JSONSerializer

    @app.before_request
    def guard() -> Response | None:
        if not _credentials_match(request.headers.get("Authorization"),
                                  local.dashboard_username, local.dashboard_password):
            return Response("Sign in to rq-dashboard", 401, {"WWW-Authenticate": REALM})
        if request.method not in SAFE_METHODS and not _same_origin():
            return Response("actions are taken from the dashboard's own pages only", 403)
        return None

    setup_rq_connection(app)
    return app


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m backend.dashboard", description=__doc__)
    parser.add_argument("--bind", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=settings.local.dashboard_port, help="port")
    args = parser.parse_args(argv)
    configure_process("dashboard", settings)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    create_app(settings).run(host=args.bind, port=args.port)


if __name__ == "__main__":
    main()
