"""One log format and level for every process (LOG_LEVEL, LOG_FORMAT), set up once at start.

Loggers that write a line per request or per job (httpx, RQ's worker, uvicorn's access
log) are held at WARNING unless LOG_LEVEL is DEBUG: at a few hundred jobs a second they
would cost more CPU than the jobs.

Either format writes one record on one line, whatever its message says (a task's
exception text is the user's): text escapes control characters (``\\n``, ``\\x1b``),
JSON escapes them as JSON does, line separators included.

``LOG_FORMAT=json`` writes one JSON object per line (python-json-logger): ``timestamp``,
``level``, ``logger``, ``message``, ``role`` (which process), ``pid``, and on every line
about a job its ``job_id`` and ``trace_id``. Those two come from :func:`job_context`, set
where a job is handled (the kernel's submit and cancel, the dispatcher, the recorder, the
worker's run, the data service applying reports), or from ``extra=job_fields(...)`` on a
line about one job of a batch. So one grep for a job id follows the job through every
process.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from pythonjsonlogger.core import LogData
from pythonjsonlogger.json import JsonFormatter

if TYPE_CHECKING:
    from backend.settings import Settings

FORMAT = "%(asctime)s %(levelname)s %(processName)s[%(process)d] %(name)s: %(message)s"
PER_EVENT_LOGGERS = ("httpx", "httpcore", "aiohttp.access", "rq.worker", "rq.queue",
                     "rq.job", "rq.scheduler", "uvicorn.access")
JSON_FIELDS = "%(levelname)s %(name)s %(message)s %(process)d"
JSON_RENAMES = {"levelname": "level", "name": "logger", "process": "pid"}

# The job the current code is handling: (job_id, trace_id).
_job: ContextVar[tuple[str, str] | None] = ContextVar("taskbroker_job", default=None)


@contextmanager
def job_context(job_id: str, trace_id: str | None = "") -> Iterator[None]:
    """Every line logged inside carries ``job_id`` and ``trace_id`` (JSON format)."""
    token = _job.set((job_id, trace_id or ""))
    try:
        yield
    finally:
        _job.reset(token)


def job_fields(job_id: str, trace_id: str | None = "") -> dict[str, str]:
    """``extra=`` of one line about one job (of a batch handled together)."""
    return {"job_id": job_id, "trace_id": trace_id or ""}


class _Context(logging.Filter):
    """Adds the process role, and the current job (unless the line names its own)."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def filter(self, record: logging.LogRecord) -> bool:
        record.role = self.role
        if not hasattr(record, "job_id"):
            current = _job.get()
            if current is not None:
                record.job_id, record.trace_id = current
        return True


def _escape(code: int) -> str:
    return {9: "\\t", 10: "\\n", 13: "\\r"}.get(
        code, f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


# C0 and C1 controls, DEL and the Unicode line and paragraph separators: whatever a
# terminal or a log viewer may take for the end of a line (or a colour, or a cursor move).
_CONTROLS = {code: _escape(code) for code in
             (*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029)}


class OneLineFormatter(logging.Formatter):
    """The text format with every control character escaped (``\\n``, ``\\x1b``, ...):
    one record is always one line, whatever its message (a task's exception text is the
    user's) or its traceback says. A forged line cannot start a line of its own."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).translate(_CONTROLS)


# JSON escapes C0 controls itself, but not these (with ensure_ascii off, kept for
# readable non-ASCII text); escaped (\\uXXXX, still valid JSON) for the same reason.
_JSON_CONTROLS = {code: f"\\u{code:04x}" for code in _CONTROLS if code >= 0x7F}


class OneLineJsonFormatter(JsonFormatter):
    """One JSON object per line, with no character a log viewer may break a line at."""

    def jsonify_log_record(self, log_data: LogData) -> str:
        return super().jsonify_log_record(log_data).translate(_JSON_CONTROLS)


def formatter(fmt: str) -> logging.Formatter:
    """The formatter of ``LOG_FORMAT`` (``text`` or ``json``): either writes each record
    on one line, whatever its message says."""
    if fmt == "json":
        return OneLineJsonFormatter(JSON_FIELDS, rename_fields=JSON_RENAMES, timestamp=True,
                                    json_ensure_ascii=False)
    return OneLineFormatter(FORMAT)


def configure_logging(level: str = "INFO", *, role: str = "", fmt: str = "text") -> None:
    """Log to stderr at ``level`` in format ``fmt`` (idempotent; replaces handlers
    inherited by a fork). ``role`` names the process (api, store, dispatcher, ...)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    handler.addFilter(_Context(role))
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


def configure_process(role: str, settings: Settings) -> None:
    """Logging of the process ``role`` as the settings say (LOG_LEVEL, LOG_FORMAT)."""
    configure_logging(settings.local.log_level, role=role,
                      fmt=settings.observability.log_format)
