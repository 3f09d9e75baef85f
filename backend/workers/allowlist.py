"""Which RQ job hashes a worker performs: the job runner's, as the dispatcher writes them.

Anyone who can write to Redis can write an RQ job hash, and RQ acts on more than its
function: it imports and calls the callbacks it names (``success_callback_name``,
``failure_callback_name``, ``stopped_callback_name``), sends its RQ webhooks (HTTP
requests from the worker's network position, to any address), retries and repeats it,
and enqueues its dependents. Our jobs carry none of these, so :func:`refusal` turns down
a hash that holds any of them, or any field RQ never writes for our jobs, or data other
than ``run_job(job_id, message)``. The worker asks it before RQ reads the hash.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping

from backend.rqjobs import ATTEMPT, RUN_JOB

# Every field RQ writes into the hash of one of our jobs in its life: enqueued (at once
# or scheduled), started, retried, put back by the reaper, requeued from rq-dashboard.
FIELDS = frozenset({
    "created_at", "data", "description", "origin", "status", "timeout", "result_ttl",
    "failure_ttl", "meta", "enqueued_at", "started_at", "ended_at", "last_heartbeat",
    "worker_name", "number_of_retries", "result", "exc_info",
    # RQ writes these on every save; ours are always empty.
    "success_callback_name", "failure_callback_name", "stopped_callback_name", "group_id",
})
EMPTY = frozenset({"success_callback_name", "failure_callback_name",
                   "stopped_callback_name", "group_id"})
META_KEYS = frozenset({ATTEMPT})
_SHOWN = 120  # characters of a refused value that the refusal quotes


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _quote(name: str, value: bytes | str) -> str:
    return f"{name[:_SHOWN]!r}={_text(value)[:_SHOWN]!r}"


def refusal(raw: Mapping[bytes, bytes] | Mapping[str, str]) -> str | None:
    """Why the RQ job hash ``raw`` (as HGETALL returns it) is not one a worker performs;
    None if it is. Quotes what it refuses (repr: no control characters)."""
    fields = {_text(name): value for name, value in raw.items()}
    unknown = sorted(set(fields) - FIELDS)
    if unknown:
        return "it has fields workers never write: " + ", ".join(
            _quote(name, fields[name]) for name in unknown)
    named = sorted(name for name in EMPTY if fields.get(name))
    if named:
        return "it names " + ", ".join(_quote(name, fields[name]) for name in named)
    return _data_refusal(fields.get("data")) or _meta_refusal(fields.get("meta"))


def _data_refusal(data: bytes | str | None) -> str | None:
    if not data:
        return "it has no data"
    raw = data if isinstance(data, bytes) else data.encode()
    try:
        raw = zlib.decompress(raw)
    except zlib.error:
        pass  # RQ reads uncompressed data too
    try:
        func, instance, args, kwargs = json.loads(raw)
    except (ValueError, TypeError):
        return "its data is not RQ's JSON job data"
    if func != RUN_JOB:
        return f"it names {str(func)[:_SHOWN]!r}; workers only perform {RUN_JOB}"
    if instance is not None or kwargs or not (
            isinstance(args, list) and len(args) == 2
            and all(isinstance(arg, str) for arg in args)):
        return f"it calls {RUN_JOB} with other arguments than (job_id, message)"
    return None


def _meta_refusal(meta: bytes | str | None) -> str | None:
    if not meta:
        return None
    try:
        decoded = json.loads(meta)
    except (ValueError, TypeError):
        return "its meta is not JSON"
    if not isinstance(decoded, dict) or not set(decoded) <= META_KEYS:
        return f"its meta holds more than {sorted(META_KEYS)}: {_text(meta)[:_SHOWN]!r}"
    return None
