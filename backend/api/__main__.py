"""``python -m backend.api [--host H] [--port P]``: the kernel API under uvicorn.

uvicorn stops cleanly on SIGTERM/SIGINT: it stops accepting, lets requests finish
and runs the app's shutdown; open event streams are told to end at their next poll
(their browsers reconnect to another replica). The process then exits with status 0.
"""

from __future__ import annotations

import argparse
import ipaddress
import signal
import sys
from types import FrameType

import uvicorn
from litestar import Litestar

from backend.api.app import create_app
from backend.logs import configure_process
from backend.metrics import set_enabled as set_metrics_enabled
from backend.settings import get_settings
from backend.tracing import configure_tracing, shutdown_tracing

# A request still open after this long is cancelled (event streams end well before).
GRACEFUL_SHUTDOWN_SECONDS = 10


class _Server(uvicorn.Server):
    """uvicorn's server that also tells the app's event streams to end."""

    def __init__(self, config: uvicorn.Config, app: Litestar) -> None:
        super().__init__(config)
        self.app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Event streams would otherwise hold the shutdown until the timeout cancels them.
        self.app.state.stopping.set()
        super().handle_exit(sig, frame)


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def trusted_proxies(value: str) -> list[str]:
    """TRUSTED_PROXIES as addresses and networks; anything else stops the start, since
    uvicorn would take it for a name no peer ever has, or ``*`` (every peer) that lets
    any client choose the address the sign-in limit counts."""
    proxies = [item.strip() for item in value.split(",") if item.strip()]
    for item in proxies:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise SystemExit(f"TRUSTED_PROXIES: {item!r} is not an address or a network "
                             "(CIDR); list the reverse proxies in front of the kernel, or "
                             "leave it empty") from None
    return proxies


def main(argv: list[str] | None = None) -> None:
    """Parse the flags (defaults from API_HOST/API_PORT) and serve until SIGTERM/SIGINT."""
    # uvicorn re-raises the stop signal once it has shut down, which would end the
    # process "killed by SIGTERM"; this handler (restored by uvicorn) makes it exit 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m backend.api", description=__doc__)
    parser.add_argument("--host", default=settings.api.api_host, help="address to bind")
    parser.add_argument("--port", type=int, default=settings.api.api_port, help="port to bind")
    args = parser.parse_args(argv)
    level = settings.local.log_level.upper()
    configure_process("api", settings)
    configure_tracing(settings.observability, "api")
    set_metrics_enabled(settings.observability.metrics_enabled)
    proxies = trusted_proxies(settings.api.trusted_proxies)
    app = create_app(settings)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=level.lower(),
                            log_config=None, access_log=False, loop="uvloop",
                            http="httptools", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
                            # the client's address behind nginx or an ingress (sign-in
                            # limit), believed from the configured proxies only
                            proxy_headers=bool(proxies),
                            forwarded_allow_ips=proxies)
    try:
        _Server(config, app).run()
    finally:
        shutdown_tracing()


if __name__ == "__main__":
    main()
