"""One root exception; retryable and permanent errors are different types."""

from __future__ import annotations


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
