"""The no-op job of the RQ and Celery baselines (``benchmarks.noop.echo``).

Like the system's ``echo`` task it returns what it was given, so a baseline measures only
what its queue library costs per job. Module-level, so RQ and Celery import it by name.
"""

from __future__ import annotations

from typing import Any


def echo(value: Any) -> Any:
    return value
