"""One log format and level for every process (LOG_LEVEL), set up once at start.

Loggers that write a line per request or per job (httpx, RQ's worker, uvicorn's access
log) are held at WARNING unless LOG_LEVEL is DEBUG: at a few hundred jobs a second they
would cost more CPU than the jobs.
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(processName)s[%(process)d] %(name)s: %(message)s"
PER_EVENT_LOGGERS = ("httpx", "httpcore", "aiohttp.access", "rq.worker", "rq.queue",
                     "rq.job", "rq.scheduler", "uvicorn.access")


def configure_logging(level: str = "INFO") -> None:
    """Log to stderr at ``level`` (idempotent; replaces handlers inherited by a fork)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric if isinstance(numeric, int) else logging.INFO)
    quiet = max(root.level, logging.WARNING) if root.level > logging.DEBUG else root.level
    for name in PER_EVENT_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(quiet)
        # RQ adds handlers of its own to some loggers; one line per event is enough.
        for extra in list(logger.handlers):
            logger.removeHandler(extra)
        logger.propagate = True
