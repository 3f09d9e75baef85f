"""What can be asked for: the registered tasks and the configured executors."""

from __future__ import annotations

from litestar import get

from backend.api.dependencies import AppSettings
from backend.api.services import default_executor
from backend.jobs import ExecutorInfo, TaskInfo
from backend.tasks import registered_tasks


@get("/tasks", summary="List the tasks", tags=["catalog"])
async def list_tasks() -> list[TaskInfo]:
    """Every task a job may name, with its description (for the web app's form)."""
    return [TaskInfo(name=spec.name, description=spec.description)
            for spec in registered_tasks()]


@get("/executors", summary="List the executors", tags=["catalog"])
async def list_executors(settings: AppSettings) -> list[ExecutorInfo]:
    """Every worker pool a job may ask for; the one used when none is named is flagged."""
    default = default_executor(settings)
    return [ExecutorInfo(name=name, default=name == default)
            for name in settings.worker.executor_names]


CATALOG_ROUTES = [list_tasks, list_executors]
