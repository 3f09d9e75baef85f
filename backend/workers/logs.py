"""One log format for the dispatcher, the executor and its workers."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(processName)s[%(process)d] %(name)s: %(message)s"


def configure_logging(level: str = "INFO") -> None:
    """Log to stderr at ``level`` (idempotent; replaces handlers inherited by a fork)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper())
    # httpx logs every request at INFO: far too chatty for a worker.
    logging.getLogger("httpx").setLevel(logging.WARNING)
