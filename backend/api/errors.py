"""How the project's errors become HTTP answers: a clear 4xx or 503, never a bare 500.

Every answer is a problem (RFC 9457, :func:`backend.web.problem`, docs/errors.md).
"""

from __future__ import annotations

import logging

from litestar import Request, Response
from litestar.exceptions import HTTPException
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

from backend.errors import (
    DataServiceAuthError,
    DataServiceError,
    DataServiceRefusedError,
    IdempotencyUnavailableError,
    JobNotFoundError,
    MessageTooLargeError,
    OverloadedError,
    PermanentError,
    QueueError,
    SubmitError,
    TooManyStreamsError,
    TransitionError,
    UnknownTaskError,
)
from backend.queues import MAX_MESSAGE_BYTES
from backend.web import FieldError, Problem, http_problem, problem, validation_problem

log = logging.getLogger(__name__)

Answer = Response[Problem]


def _whole_body(detail: str) -> list[FieldError]:
    return [FieldError(field="body", message=detail)]


def _too_large_body(request: Request, exc: Exception) -> Answer:
    if isinstance(exc, HTTPException) and exc.extra:  # one of ours: it says what is too large
        return http_problem(request, exc)
    limit = request.route_handler.resolve_request_max_body_size()
    detail = f"request body is over the limit of {limit} bytes"
    return problem(request, HTTP_413_REQUEST_ENTITY_TOO_LARGE, detail, _whole_body(detail),
                   limit_bytes=limit)


# What went wrong inside is logged; the answer says which part is down, never where it is.
def _data_service(request: Request, exc: DataServiceError) -> Answer:
    if isinstance(exc, DataServiceAuthError):
        log.error("the data service refused this kernel's DATA_SERVICE_TOKEN: %s", exc)
    else:
        log.warning("data service unavailable: %s", exc)
    return problem(request, HTTP_503_SERVICE_UNAVAILABLE,
                   "the job store (data service) is unavailable; try again shortly")


def _submit_failed(request: Request, exc: SubmitError) -> Answer:
    if exc.job_ids is not None:  # a batch: every job it names never runs
        return problem(request, HTTP_503_SERVICE_UNAVAILABLE, str(exc), job_ids=exc.job_ids)
    return problem(request, HTTP_503_SERVICE_UNAVAILABLE, str(exc), job_id=exc.job_id)


def _idempotency_unavailable(request: Request, exc: IdempotencyUnavailableError) -> Answer:
    log.warning("%s", exc)
    return problem(request, HTTP_503_SERVICE_UNAVAILABLE,
                   "the Idempotency-Key cannot be honoured now (the kernel's Redis is "
                   "unavailable); nothing was recorded; try again shortly")


def _queue(request: Request, exc: QueueError) -> Answer:
    log.warning("queue or Redis unavailable: %s", exc)
    return problem(request, HTTP_503_SERVICE_UNAVAILABLE,
                   "the job queue is unavailable; try again shortly")


def _not_signed_in(request: Request, exc: HTTPException) -> Answer:
    # Whatever was wrong with the credentials, the answer says only that they are needed.
    detail = exc.detail if exc.detail == "wrong user name or password" else (
        "sign in first: send a session cookie (POST /api/v1/auth/login) or "
        "an API token as Authorization: Bearer TOKEN")
    return problem(request, HTTP_401_UNAUTHORIZED, detail,
                   headers={"WWW-Authenticate": 'Bearer realm="taskbroker"'})


def _rate_limited(request: Request, exc: HTTPException) -> Answer:
    # Litestar's rate limiter says when its window resets; Retry-After says it to everyone.
    headers = dict(exc.headers or {})
    reset = headers.get("RateLimit-Reset", "1")
    retry_after = max(1, int(reset)) if str(reset).isdigit() else 1
    headers["Retry-After"] = str(retry_after)
    return problem(request, HTTP_429_TOO_MANY_REQUESTS,
                   f"too many requests: try again in {retry_after} s", headers=headers,
                   retry_after_seconds=retry_after)


def _too_many(request: Request, exc: OverloadedError | TooManyStreamsError) -> Answer:
    return problem(request, HTTP_429_TOO_MANY_REQUESTS, str(exc),
                   headers={"Retry-After": str(exc.retry_after)},
                   retry_after_seconds=exc.retry_after)


def _message_too_large(request: Request, exc: MessageTooLargeError) -> Answer:
    return problem(request, HTTP_413_REQUEST_ENTITY_TOO_LARGE, str(exc),
                   [FieldError(field="params", message=str(exc))], limit_bytes=MAX_MESSAGE_BYTES)


def _not_found(request: Request, exc: JobNotFoundError) -> Answer:
    return problem(request, HTTP_404_NOT_FOUND, str(exc))


def _transition(request: Request, exc: TransitionError) -> Answer:
    return problem(request, HTTP_409_CONFLICT, str(exc), current_status=exc.current)


def _refused(request: Request, exc: DataServiceRefusedError) -> Answer:
    # The data service refused what the caller gave (a bad cursor, say): its words and
    # its fields, as if the kernel had refused it.
    errors = exc.errors
    if exc.status_code == HTTP_400_BAD_REQUEST and not errors:
        errors = _whole_body(str(exc))
    return problem(request, exc.status_code, str(exc), errors, limit_bytes=exc.limit_bytes)


def _permanent(request: Request, exc: PermanentError) -> Answer:
    return problem(request, HTTP_422_UNPROCESSABLE_ENTITY, str(exc))


def _too_deep(request: Request, exc: RecursionError) -> Answer:
    # msgspec refuses JSON nested deeper than the interpreter's recursion limit.
    detail = f"request body is nested too deeply: {exc}"
    return problem(request, HTTP_400_BAD_REQUEST, detail, _whole_body(detail))


def _not_utf8(request: Request, exc: UnicodeDecodeError) -> Answer:
    # msgspec lets a body with invalid UTF-8 escape as a bare UnicodeDecodeError.
    detail = f"request body is not valid UTF-8: {exc}"
    return problem(request, HTTP_400_BAD_REQUEST, detail, _whole_body(detail))


def _internal(request: Request, exc: Exception) -> Answer:
    # A bug: say so in the log with the traceback; the client gets no internals.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(request, HTTP_500_INTERNAL_SERVER_ERROR,
                   "the kernel failed to answer this request (the error is logged)")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    HTTP_500_INTERNAL_SERVER_ERROR: _internal,
    HTTPException: http_problem,
    HTTP_400_BAD_REQUEST: validation_problem,
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
