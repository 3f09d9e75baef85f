"""``python -m backend.store [--host H] [--port P]``: serve the data service with uvicorn."""

from __future__ import annotations

import argparse
import signal
import sys

import uvicorn

from backend.logs import configure_process
from backend.metrics import set_enabled as set_metrics_enabled
from backend.settings import get_settings
from backend.store.app import create_app
from backend.tracing import configure_tracing, shutdown_tracing


def main(argv: list[str] | None = None) -> None:
    """Parse the flags (defaults from STORE_HOST/STORE_PORT) and serve until SIGTERM/SIGINT."""
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m backend.store", description=__doc__)
    parser.add_argument("--host", default=settings.store.store_host, help="address to bind")
    parser.add_argument("--port", type=int, default=settings.store.store_port, help="port")
    args = parser.parse_args(argv)
    level = settings.local.log_level.upper()
    configure_process("store", settings)
    configure_tracing(settings.observability, "store")
    set_metrics_enabled(settings.observability.metrics_enabled)
    # uvicorn turns SIGTERM into a graceful shutdown (in-flight requests finish, the
    # lifespan closes the MongoDB client), then re-raises the signal with the handler
    # that was installed before it: make that one exit with status 0, as a clean stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        uvicorn.run(create_app(settings), host=args.host, port=args.port, log_config=None,
                    log_level=level.lower(), lifespan="on", loop="uvloop", http="httptools",
                    access_log=False)
    finally:
        shutdown_tracing()


if __name__ == "__main__":
    main()
