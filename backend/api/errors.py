"""How the project's errors become HTTP answers: a clear 4xx or 503, never a bare 500.

Every body keeps Litestar's shape ``{"status_code", "detail", "extra"}``.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, SerializationException
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types import ExceptionHandlersMap

from backend.api.events import TooManyStreamsError
from backend.api.idempotency import IdempotencyUnavailableError
from backend.api.submit import OverloadedError, SubmitError
from backend.errors import (
    DataServiceError,
    JobNotFoundError,
    MessageTooLargeError,
    PermanentError,
    QueueError,
    TransitionError,
    UnknownTaskError,
)
from backend.queues import MAX_MESSAGE_BYTES
from backend.store.client import DataServiceAuthError, DataServiceRefusedError
from backend.web import plain_validation

log = logging.getLogger(__name__)




def error_response(status_code: int, detail: str, extra: Any = None,
                   **fields: Any) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"status_code": status_code, "detail": detail, **fields}
    if extra is not None:
        body["extra"] = extra
    return Response(body, status_code=status_code, media_type=MediaType.JSON)


def body_problem(message: str) -> list[dict[str, str]]:
    """``extra`` of a 400 about the body as a whole."""
    return [{"key": "body", "message": message, "source": "body"}]


def _bad_request(_: Request, exc: HTTPException) -> Response[dict[str, Any]]:
    if isinstance(exc.__cause__, SerializationException):
        # msgspec's own words ("Input data was truncated") do not say it is the JSON.
        detail = f"request body is not valid JSON: {exc.detail}"
        return error_response(exc.status_code, detail, body_problem(detail))
    # Litestar names the field in ``extra``; the detail says it again for humans with curl,
    # in words (the field a missing one is, a pattern's rule), never a Python repr.
    detail, problems = plain_validation(exc.extra, str(exc.detail))
    return error_response(exc.status_code, detail, problems)


def _too_large_body(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    if isinstance(exc, HTTPException) and exc.extra:  # one of ours: it says what is too large
        return error_response(exc.status_code, str(exc.detail), exc.extra)
    limit = request.route_handler.resolve_request_max_body_size()
    return error_response(HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                          f"request body is over the limit of {limit} bytes",
                          {"limit_bytes": limit})


# What went wrong inside is logged; the answer says which part is down, never where it is.
def _data_service(_: Request, exc: DataServiceError) -> Response[dict[str, Any]]:
    if isinstance(exc, DataServiceAuthError):
        log.error("the data service refused this kernel's DATA_SERVICE_TOKEN: %s", exc)
    else:
        log.warning("data service unavailable: %s", exc)
    return error_response(HTTP_503_SERVICE_UNAVAILABLE,
                          "the job store (data service) is unavailable; try again shortly")


def _submit_failed(_: Request, exc: SubmitError) -> Response[dict[str, Any]]:
    if exc.job_ids is not None:  # a batch: every job it names never runs
        return error_response(HTTP_503_SERVICE_UNAVAILABLE, str(exc),
                              {"job_ids": exc.job_ids}, job_ids=exc.job_ids)
    return error_response(HTTP_503_SERVICE_UNAVAILABLE, str(exc), {"job_id": exc.job_id},
                          job_id=exc.job_id)


def _idempotency_unavailable(_: Request, exc: IdempotencyUnavailableError,
                             ) -> Response[dict[str, Any]]:
    log.warning("%s", exc)
    return error_response(HTTP_503_SERVICE_UNAVAILABLE,
                          "the Idempotency-Key cannot be honoured now (the kernel's Redis is "
                          "unavailable); nothing was recorded; try again shortly")


def _queue(_: Request, exc: QueueError) -> Response[dict[str, Any]]:
    log.warning("queue or Redis unavailable: %s", exc)
    return error_response(HTTP_503_SERVICE_UNAVAILABLE,
                          "the job queue is unavailable; try again shortly")


def _not_signed_in(_: Request, exc: HTTPException) -> Response[dict[str, Any]]:
    # Whatever was wrong with the credentials, the answer says only that they are needed.
    detail = exc.detail if exc.detail == "wrong user name or password" else (
        "sign in first: send a session cookie (POST /api/v1/auth/login) or "
        "Authorization: Bearer <API token>")
    response = error_response(HTTP_401_UNAUTHORIZED, detail)
    response.headers["WWW-Authenticate"] = 'Bearer realm="taskbroker"'
    return response


def _rate_limited(_: Request, exc: HTTPException) -> Response[dict[str, Any]]:
    # Litestar's rate limiter says when its window resets; Retry-After says it to everyone.
    headers = dict(exc.headers or {})
    reset = headers.get("RateLimit-Reset", "1")
    retry_after = max(1, int(reset)) if str(reset).isdigit() else 1
    response = error_response(HTTP_429_TOO_MANY_REQUESTS,
                              f"too many requests: try again in {retry_after} s",
                              {"retry_after_seconds": retry_after})
    response.headers.update(headers)
    response.headers["Retry-After"] = str(retry_after)
    return response


def _too_many(_: Request, exc: OverloadedError | TooManyStreamsError) -> Response[dict[str, Any]]:
    response = error_response(HTTP_429_TOO_MANY_REQUESTS, str(exc),
                              {"retry_after_seconds": exc.retry_after})
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _message_too_large(_: Request, exc: MessageTooLargeError) -> Response[dict[str, Any]]:
    return error_response(HTTP_413_REQUEST_ENTITY_TOO_LARGE, str(exc),
                          {"key": "params", "limit_bytes": MAX_MESSAGE_BYTES})


def _not_found(_: Request, exc: JobNotFoundError) -> Response[dict[str, Any]]:
    return error_response(HTTP_404_NOT_FOUND, str(exc))


def _transition(_: Request, exc: TransitionError) -> Response[dict[str, Any]]:
    return error_response(HTTP_409_CONFLICT, str(exc), {"current_status": exc.current},
                          current_status=exc.current)


def _refused(_: Request, exc: DataServiceRefusedError) -> Response[dict[str, Any]]:
    # The data service refused what the caller gave (a bad cursor, say): its words and
    # its structured data, as if the kernel had refused it.
    extra = exc.extra
    if exc.status_code == HTTP_400_BAD_REQUEST and not extra:
        extra = body_problem(str(exc))
    return error_response(exc.status_code, str(exc), extra)


def _permanent(_: Request, exc: PermanentError) -> Response[dict[str, Any]]:
    return error_response(HTTP_422_UNPROCESSABLE_ENTITY, str(exc))


def _too_deep(_: Request, exc: RecursionError) -> Response[dict[str, Any]]:
    # msgspec refuses JSON nested deeper than the interpreter's recursion limit.
    detail = f"request body is nested too deeply: {exc}"
    return error_response(HTTP_400_BAD_REQUEST, detail, body_problem(detail))


def _not_utf8(_: Request, exc: UnicodeDecodeError) -> Response[dict[str, Any]]:
    # msgspec lets a body with invalid UTF-8 escape as a bare UnicodeDecodeError.
    detail = f"request body is not valid UTF-8: {exc}"
    return error_response(HTTP_400_BAD_REQUEST, detail, body_problem(detail))


def _internal(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    # A bug: say so in the log with the traceback; the client gets no internals.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, "Internal Server Error")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    HTTP_500_INTERNAL_SERVER_ERROR: _internal,
    HTTP_400_BAD_REQUEST: _bad_request,
    RecursionError: _too_deep,
    UnicodeDecodeError: _not_utf8,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE: _too_large_body,
    DataServiceError: _data_service,
    SubmitError: _submit_failed,
    IdempotencyUnavailableError: _idempotency_unavailable,
    OverloadedError: _too_many,
    HTTP_401_UNAUTHORIZED: _not_signed_in,
    HTTP_429_TOO_MANY_REQUESTS: _rate_limited,
    TooManyStreamsError: _too_many,
    QueueError: _queue,
    MessageTooLargeError: _message_too_large,
    JobNotFoundError: _not_found,
    TransitionError: _transition,
    DataServiceRefusedError: _refused,
    UnknownTaskError: _permanent,
    PermanentError: _permanent,
}
