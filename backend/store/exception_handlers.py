"""How errors become answers: a 4xx naming the cause, a 503 when MongoDB is away.

Anything else is a bug: it is logged with its traceback and answered with a plain 500.
The tests feed the store bad input of every kind and require that none reaches it.
"""

from __future__ import annotations

import logging
from typing import Any

from bson.errors import BSONError
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types import ExceptionHandlersMap
from pymongo.errors import ConnectionFailure, ExecutionTimeout, WTimeoutError

from backend.errors import JobNotFoundError, TransitionError
from backend.jobs import Conflict, JobStatus
from backend.storable import UnstorableValueError
from backend.store.pagination import InvalidCursorError
from backend.web import plain_validation

log = logging.getLogger("backend.store")


def _error(status_code: int, detail: str) -> Response[dict[str, object]]:
    return Response({"status_code": status_code, "detail": detail}, status_code=status_code,
                    media_type=MediaType.JSON)


def _not_found(_: Request, exc: JobNotFoundError) -> Response[dict[str, object]]:
    return _error(HTTP_404_NOT_FOUND, str(exc))


def _conflict(_: Request, exc: TransitionError) -> Response[Conflict]:
    current = JobStatus(exc.current)
    body = Conflict(detail=str(exc), current_status=current,
                    extra={"current_status": str(current)})
    return Response(body, status_code=HTTP_409_CONFLICT)


def invalid(key: str, message: str, source: str = "body") -> ValidationException:
    """A 400 in Litestar's validation shape, naming ``key``."""
    return ValidationException(
        detail=f"Invalid {key}: {message}",
        extra=[{"key": key, "message": message, "source": source}],
    )


def _bad_request(request: Request, exc: HTTPException) -> Response[object]:
    """Every 400: a sentence naming each bad field (in words), and the fields in ``extra``."""
    if isinstance(exc.__cause__, SerializationException):
        detail = f"request body is not valid JSON: {exc.detail}"
        problems: Any = [{"key": "body", "message": detail, "source": "body"}]
    else:
        detail, problems = plain_validation(exc.extra, str(exc.detail))
    return Response({"status_code": HTTP_400_BAD_REQUEST, "detail": detail, "extra": problems},
                    status_code=HTTP_400_BAD_REQUEST, media_type=MediaType.JSON)


def _bad_cursor(request: Request, exc: InvalidCursorError) -> Response[object]:
    return _bad_request(request, invalid("cursor", str(exc), "query"))


def _unstorable(request: Request, exc: UnstorableValueError) -> Response[object]:
    return _bad_request(request, invalid(exc.field, exc.message))


def _unencodable(request: Request, exc: BSONError) -> Response[object]:
    # Validation should have caught it first; log so the gap gets closed.
    log.warning("unstorable body on %s %s: %s", request.method, request.url.path, exc)
    return _bad_request(request, invalid("body", f"cannot be stored: {exc}"))


def _too_deep(request: Request, exc: RecursionError) -> Response[object]:
    # The JSON decoder recurses per nesting level; a hostile body can exhaust the stack.
    # Logged with its traceback in case a real recursion bug ever lands here.
    log.warning("recursion limit on %s %s", request.method, request.url.path, exc_info=exc)
    return _bad_request(request, invalid("body", "nested too deeply"))


def _not_utf8(request: Request, exc: UnicodeDecodeError) -> Response[object]:
    # msgspec lets invalid UTF-8 inside a JSON string escape as a bare UnicodeDecodeError.
    return _bad_request(request, invalid("body", f"not valid UTF-8: {exc}"))


def _database_down(request: Request, exc: Exception) -> Response[dict[str, object]]:
    log.warning("MongoDB unavailable on %s %s: %s", request.method, request.url.path, exc)
    return _error(HTTP_503_SERVICE_UNAVAILABLE, "The job database is unavailable; try again.")


def _bug(request: Request, exc: Exception) -> Response[dict[str, object]]:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error(HTTP_500_INTERNAL_SERVER_ERROR, "Internal server error (logged).")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
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
