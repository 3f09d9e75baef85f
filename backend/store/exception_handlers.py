"""How errors become answers: a 4xx naming the cause, a 503 when MongoDB is away.

Anything else is a bug: it is logged with its traceback and answered with a plain 500.
The tests feed the store bad input of every kind and require that none reaches it.
"""

from __future__ import annotations

import logging

from bson.errors import BSONError
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types import ExceptionHandlersMap
from pymongo.errors import ConnectionFailure, ExecutionTimeout, WTimeoutError

from backend.errors import (
    InvalidCursorError,
    JobNotFoundError,
    TransitionError,
    UnstorableValueError,
)
from backend.web import Problem, http_problem, invalid, problem, validation_problem

log = logging.getLogger("backend.store")

Answer = Response[Problem]


def _not_found(request: Request, exc: JobNotFoundError) -> Answer:
    return problem(request, HTTP_404_NOT_FOUND, str(exc))


def _conflict(request: Request, exc: TransitionError) -> Answer:
    return problem(request, HTTP_409_CONFLICT, str(exc), current_status=exc.current)


def _bad_request(request: Request, exc: HTTPException) -> Answer:
    """Every 400: a sentence naming each bad field (in words), and the fields in ``errors``."""
    return validation_problem(request, exc)


def _bad_cursor(request: Request, exc: InvalidCursorError) -> Answer:
    return _bad_request(request, invalid("cursor", str(exc), "query"))


def _unstorable(request: Request, exc: UnstorableValueError) -> Answer:
    return _bad_request(request, invalid(exc.field, exc.message))


def _unencodable(request: Request, exc: BSONError) -> Answer:
    # Validation should have caught it first; log so the gap gets closed.
    log.warning("unstorable body on %s %s: %s", request.method, request.url.path, exc)
    return _bad_request(request, invalid("body", f"cannot be stored: {exc}"))


def _too_deep(request: Request, exc: RecursionError) -> Answer:
    # The JSON decoder recurses per nesting level; a hostile body can exhaust the stack.
    # Logged with its traceback in case a real recursion bug ever lands here.
    log.warning("recursion limit on %s %s", request.method, request.url.path, exc_info=exc)
    return _bad_request(request, invalid("body", "nested too deeply"))


def _not_utf8(request: Request, exc: UnicodeDecodeError) -> Answer:
    # msgspec lets invalid UTF-8 inside a JSON string escape as a bare UnicodeDecodeError.
    return _bad_request(request, invalid("body", f"not valid UTF-8: {exc}"))


def _database_down(request: Request, exc: Exception) -> Answer:
    log.warning("MongoDB unavailable on %s %s: %s", request.method, request.url.path, exc)
    return problem(request, HTTP_503_SERVICE_UNAVAILABLE,
                   "The job database is unavailable; try again.")


def _bug(request: Request, exc: Exception) -> Answer:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(request, HTTP_500_INTERNAL_SERVER_ERROR, "Internal server error (logged).")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    HTTPException: http_problem,
    HTTP_400_BAD_REQUEST: _bad_request,
    JobNotFoundError: _not_found,
    TransitionError: _conflict,
    InvalidCursorError: _bad_cursor,
    UnstorableValueError: _unstorable,
    BSONError: _unencodable,
    RecursionError: _too_deep,
    UnicodeDecodeError: _not_utf8,
    ConnectionFailure: _database_down,
    ExecutionTimeout: _database_down,
    WTimeoutError: _database_down,
    HTTP_500_INTERNAL_SERVER_ERROR: _bug,
}
