"""``python -m backend.dashboard [--bind H] [--port P]``: rq-dashboard on waitress."""

from __future__ import annotations

import argparse
import signal
from types import FrameType

from waitress import serve

from backend.dashboard import json_only
from backend.dashboard.app import create_app
from backend.logs import configure_process
from backend.settings import get_settings


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)  # waitress closes its sockets and returns from serve()


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m backend.dashboard",
                                     description="rq-dashboard, locked (see backend/dashboard)")
    parser.add_argument("--bind", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=settings.local.dashboard_port, help="port")
    args = parser.parse_args(argv)
    configure_process("dashboard", settings)
    json_only.refuse_pickle()
    app = create_app(settings)
    signal.signal(signal.SIGTERM, _stop)
    serve(app, host=args.bind, port=args.port, ident="rq-dashboard")


if __name__ == "__main__":
    main()
