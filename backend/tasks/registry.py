"""``@task("name")`` functions, looked up by name.

A task is a plain function taking a :class:`TaskContext`. It reads its input from
``ctx.params``, may call ``ctx.progress(percent)`` on the way, and returns a
JSON-serialisable result. Raise :class:`backend.errors.PermanentError` for a failure
that retrying will not cure; any other exception is retried with backoff.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from backend.errors import JobCancelledError, UnknownTaskError

BUILTIN_MODULES = ("backend.tasks.builtin",)


@dataclass
class TaskContext:
    """What a running task knows about its job, and how it reports back."""

    job_id: str
    params: dict[str, Any]
    attempt: int = 1
    estimated_time: float | None = None
    report_progress: Callable[[float], None] = lambda percent: None
    is_cancelled: Callable[[], bool] = lambda: False

    def progress(self, percent: float) -> None:
        """Report progress (0 to 100); stops the task if the job was cancelled."""
        self.report_progress(min(100.0, max(0.0, float(percent))))
        self.check_cancelled()

    def check_cancelled(self) -> None:
        if self.is_cancelled():
            raise JobCancelledError(f"job {self.job_id} was cancelled")

    def sleep(self, seconds: float) -> None:
        """Sleep, waking early to stop if the job is cancelled."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 0.25))
            self.check_cancelled()


TaskFunc = Callable[[TaskContext], Any]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    func: TaskFunc
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)


_REGISTRY: dict[str, TaskSpec] = {}


def task(name: str, *, description: str | None = None) -> Callable[[TaskFunc], TaskFunc]:
    """Register the decorated function as the task ``name``."""

    def register(func: TaskFunc) -> TaskFunc:
        existing = _REGISTRY.get(name)
        if existing is not None and existing.func.__qualname__ != func.__qualname__:
            raise ValueError(f"task {name!r} is already registered by {existing.func!r}")
        doc = (func.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = TaskSpec(name, func, description or (doc[0] if doc else ""))
        return func

    return register


def load_task_modules(modules: list[str] | tuple[str, ...] = ()) -> None:
    """Import the built-in tasks and the user modules named in TASK_MODULES."""
    for module in (*BUILTIN_MODULES, *modules):
        importlib.import_module(module)


def get_task(name: str) -> TaskSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownTaskError(
            f"unknown task {name!r}; known tasks: {', '.join(sorted(_REGISTRY))}"
        ) from None


def registered_tasks() -> list[TaskSpec]:
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]
