"""The built-in tasks."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from typing import Any

from backend.errors import PermanentError
from backend.tasks.registry import TaskContext, task

_WORD = re.compile(r"[\w']+", re.UNICODE)


@task("echo")
def echo(ctx: TaskContext) -> dict[str, Any]:
    """Return the params as the result."""
    return dict(ctx.params)


@task("simulate")
def simulate(ctx: TaskContext) -> dict[str, Any]:
    """Run for about estimated_time seconds (or params.duration), reporting progress."""
    duration = float(ctx.params.get("duration", ctx.estimated_time or 1.0))
    steps = max(1, min(100, int(duration / 0.2) or 1))
    for step in range(1, steps + 1):
        ctx.sleep(duration / steps)
        ctx.progress(100.0 * step / steps)
    return {"slept": duration, "steps": steps}


@task("fail")
def fail(ctx: TaskContext) -> dict[str, Any]:
    """Raise, to try the failure path. params: message, permanent, succeed_on_attempt."""
    succeed_on = ctx.params.get("succeed_on_attempt")
    if isinstance(succeed_on, int) and ctx.attempt >= succeed_on:
        return {"attempt": ctx.attempt}
    message = str(ctx.params.get("message", "the fail task failed on purpose"))
    if ctx.params.get("permanent"):
        raise PermanentError(message)
    raise RuntimeError(message)


@task("wordcount")
def wordcount(ctx: TaskContext) -> dict[str, Any]:
    """Count the lines, words and characters of params.text, and its most common words."""
    text = ctx.params.get("text")
    if not isinstance(text, str):
        raise PermanentError("wordcount needs params.text, a string")
    words = [word.lower() for word in _WORD.findall(text)]
    top = int(ctx.params.get("top", 10))
    return {
        "lines": len(text.splitlines()),
        "words": len(words),
        "chars": len(text),
        "top": [[word, count] for word, count in Counter(words).most_common(top)],
    }


@task("checksum")
def checksum(ctx: TaskContext) -> dict[str, Any]:
    """Hash params.text with params.algorithm (sha256 by default)."""
    text = ctx.params.get("text")
    if not isinstance(text, str):
        raise PermanentError("checksum needs params.text, a string")
    algorithm = str(ctx.params.get("algorithm", "sha256"))
    if algorithm not in hashlib.algorithms_guaranteed:
        raise PermanentError(
            f"unknown algorithm {algorithm!r}; use one of "
            f"{', '.join(sorted(hashlib.algorithms_guaranteed))}"
        )
    digest = hashlib.new(algorithm, text.encode())
    hexdigest = digest.hexdigest(32) if algorithm.startswith("shake") else digest.hexdigest()
    return {"algorithm": algorithm, "hexdigest": hexdigest, "bytes": len(text.encode())}
