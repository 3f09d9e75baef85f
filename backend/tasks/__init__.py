"""The task registry shared by the kernel (to validate names) and the workers (to run)."""

from backend.tasks.registry import (
    TaskContext,
    TaskSpec,
    get_task,
    load_task_modules,
    registered_tasks,
    task,
)

__all__ = ["TaskContext", "TaskSpec", "get_task", "load_task_modules", "registered_tasks", "task"]
