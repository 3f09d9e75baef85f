"""Importable callables an attacker who can write to Redis might name in an RQ job hash
(``success_callback_name`` and the like). Each leaves a trace if RQ ever calls it: a file
in :data:`MARKERS` named after the job, and an entry in :data:`CALLED`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

MARKERS: Path | None = None  # set by the test
CALLED: list[tuple[str, str]] = []


def record(job: Any, connection: Any, *args: Any) -> None:
    """What RQ would call as a success, failure or stopped callback."""
    CALLED.append(("record", job.id))
    if MARKERS is not None:
        (MARKERS / f"called-{job.id}").touch()
