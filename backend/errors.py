"""One root exception; retryable and permanent errors are different types."""

from __future__ import annotations

from typing import Any


class TaskbrokerError(Exception):
    """Root of every error the project raises on purpose."""


class RetryableError(TaskbrokerError):
    """A failure that may pass: the job is tried again (with backoff) up to the limit."""


class PermanentError(TaskbrokerError):
    """A failure that will not pass by retrying: the job fails at once."""


class QueueError(RetryableError):
    """The STANDARD queue refused or could not be reached."""


class MessageTooLargeError(PermanentError):
    """A queue message is over the backend's size limit."""


class DataServiceError(RetryableError):
    """The data service could not be reached or answered with a server error."""


class NotFoundError(PermanentError):
    """The thing asked for does not exist."""


class JobNotFoundError(NotFoundError):
    """No job has that id."""


class TransitionError(PermanentError):
    """The job's status does not allow the requested move."""

    def __init__(self, message: str, current: str | None = None) -> None:
        super().__init__(message)
        self.current = current


class UnknownTaskError(PermanentError):
    """No task is registered under that name."""


class JobCancelledError(PermanentError):
    """The job was cancelled while it ran."""


class JobTimeoutError(PermanentError):
    """The job ran past its timeout; a runaway task is not tried again."""


class RefusedJobError(PermanentError):
    """An RQ job that names anything but the job runner: it is failed, never performed."""


class CallbackRefusedError(PermanentError):
    """A callback URL this server does not deliver to; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"callback_url refused: {reason}")
        self.reason = reason


class UnstorableValueError(PermanentError, ValueError):
    """A value that MongoDB cannot store; ``field`` names where it was found."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class InvalidCursorError(PermanentError, ValueError):
    """A page cursor that the data service did not make."""


# The data service as its callers meet it.

class DataServiceRefusedError(PermanentError):
    """The data service refused the request (a 4xx other than 404/409); keeps its status
    and its field-level ``errors`` (a list of ``backend.web.FieldError``)."""

    def __init__(self, message: str, status_code: int, errors: list[Any] | None = None,
                 limit_bytes: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.errors = list(errors or [])
        self.limit_bytes = limit_bytes


class DataServiceAuthError(DataServiceError):
    """The data service refused this process's service token (``DATA_SERVICE_TOKEN``): a
    deployment fault, not the caller's; the kernel answers 503 and logs why."""


class DataServiceUnsureError(DataServiceError):
    """A write may or may not have been applied: the request was sent, no answer came."""


# The kernel's refusals of a whole request.

class SubmitError(TaskbrokerError):
    """A submit that did not go through: the job named (every job of ``job_ids``, for a
    batch) will never run."""

    def __init__(self, message: str, job_id: str, job_ids: list[str] | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.job_ids = job_ids


class OverloadedError(TaskbrokerError):
    """Too much work waits already: the client should come back after ``retry_after``."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooManyStreamsError(TaskbrokerError):
    """The process or the user holds as many live streams as allowed."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class IdempotencyUnavailableError(TaskbrokerError):
    """Redis, which keeps the keys, did not answer: the request cannot be made idempotent."""
