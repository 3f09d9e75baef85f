"""What ``GET /api/v1/stats`` shows, kept small in Redis as jobs finish.

The recorder (the reports it applied) and the kernel (its cancels) note each job's end
with :func:`record`, one Lua call per batch:

* a hash per minute of finished jobs by final status (``succeeded``, ``failed``,
  ``cancelled``), kept two hours;
* per task, the last :data:`SAMPLES` run times and queue waits (ms), as capped lists;
* the last :data:`FAILURES_KEPT` failures (id, task, error cut short, when).

A job is noted once: its first end takes a short-lived ``counted`` marker, so a report
applied twice (a replayed batch) or a worker's end of a job the kernel cancelled first
adds nothing. The kernel reads it all back with a few round trips (:func:`read`),
however many jobs ran.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import Struct
from redis.asyncio import Redis
from redis.exceptions import RedisError

from backend.errors import QueueError
from backend.jobs import JobStatus
from backend.reports import REPORT_STREAM
from backend.rqjobs import WORKERS_KEY, queue_key

if TYPE_CHECKING:
    from backend.queues import StandardQueue

log = logging.getLogger(__name__)

KEY_PREFIX = "taskbroker:stats"
MINUTE_KEY = KEY_PREFIX + ":minute:{}"  # epoch minute -> {status: count}
RUNS_KEY = KEY_PREFIX + ":run:{}"  # task -> run times (ms), newest first
WAITS_KEY = KEY_PREFIX + ":wait:{}"  # task -> queue waits (ms), newest first
TASKS_KEY = KEY_PREFIX + ":tasks"  # tasks with samples
FAILURES_KEY = KEY_PREFIX + ":failures"  # JSON of the latest failures, newest first
COUNTED_KEY = KEY_PREFIX + ":counted:"  # + job id: its end was noted

MINUTES = 60  # the answer's window
MINUTE_TTL = 2 * 3600
SAMPLES = 500
FAILURES_KEPT = 50
FAILURES_SHOWN = 10
COUNTED_TTL = 600  # longer than any replay or cancel race; short enough to cost little
ERROR_CHARS = 500
FINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)

_RECORD = """
local counted_ttl, minute_ttl, samples, failures = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local noted = 0
for i = 5, #ARGV, 7 do
  local id, status, minute, task = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local run, wait, failure = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  if redis.call('SET', KEYS[1] .. id, '1', 'NX', 'EX', counted_ttl) then
    local bucket = KEYS[2] .. minute
    redis.call('HINCRBY', bucket, status, 1)
    redis.call('EXPIRE', bucket, minute_ttl)
    if task ~= '' and run ~= '' then
      redis.call('SADD', KEYS[3], task)
      redis.call('LPUSH', KEYS[4] .. task, run)
      redis.call('LTRIM', KEYS[4] .. task, 0, samples - 1)
    end
    if task ~= '' and wait ~= '' then
      redis.call('SADD', KEYS[3], task)
      redis.call('LPUSH', KEYS[5] .. task, wait)
      redis.call('LTRIM', KEYS[5] .. task, 0, samples - 1)
    end
    if failure ~= '' then
      redis.call('LPUSH', KEYS[6], failure)
      redis.call('LTRIM', KEYS[6], 0, failures - 1)
    end
    noted = noted + 1
  end
end
return noted
"""
_KEYS = [COUNTED_KEY, MINUTE_KEY.format(""), TASKS_KEY, RUNS_KEY.format(""),
         WAITS_KEY.format(""), FAILURES_KEY]


@dataclass(frozen=True)
class Finish:
    """One job's end, as the statistics keep it."""

    job_id: str
    status: JobStatus
    finished_at: datetime
    task: str | None = None
    run_ms: float | None = None  # the last attempt's run time
    wait_ms: float | None = None  # submit to first start (first attempts only)
    error: str | None = None


def _number(value: float | None) -> str:
    return "" if value is None or value < 0 else f"{value:.3f}"


def _args(finish: Finish) -> list[Any]:
    failure = ""
    if finish.status is JobStatus.FAILED:
        failure = json.dumps({"id": finish.job_id, "name": finish.task or "",
                              "error": (finish.error or "")[:ERROR_CHARS],
                              "finished_at": _iso(finish.finished_at)})
    minute = int(finish.finished_at.timestamp() // 60)
    return [finish.job_id, str(finish.status), minute, finish.task or "",
            _number(finish.run_ms), _number(finish.wait_ms), failure]


async def record(connection: Redis, finishes: Sequence[Finish]) -> int:
    """Note the ends of jobs (each once); returns how many were new."""
    if not finishes:
        return 0
    args: list[Any] = [COUNTED_TTL, MINUTE_TTL, SAMPLES, FAILURES_KEPT]
    for finish in finishes:
        args += _args(finish)
    return int(await connection.eval(_RECORD, len(_KEYS), *_KEYS, *args))


# --- the answer --------------------------------------------------------------------------

class MinuteCount(Struct, kw_only=True):
    minute: datetime
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0


class QueueDepth(Struct, kw_only=True):
    name: str
    kind: str  # standard, rq, dead-letter, reports
    depth: int = 0


class TaskTimes(Struct, kw_only=True):
    task: str
    runs: int = 0
    run_p50_ms: float = 0.0
    run_p95_ms: float = 0.0
    wait_p50_ms: float = 0.0
    wait_p95_ms: float = 0.0


class Workers(Struct, kw_only=True):
    online: int = 0
    busy: int = 0
    idle: int = 0


class Failure(Struct, kw_only=True):
    id: str
    name: str
    user_id: str = ""
    error: str = ""
    finished_at: datetime


class Stats(Struct, kw_only=True):
    """Answer of ``GET /api/v1/stats``: the last hour by minute, queues, recent run and
    wait times per task, workers, the latest failures. Unknown figures are 0 or empty."""

    generated_at: datetime
    minutes: list[MinuteCount]
    queues: list[QueueDepth]
    tasks: list[TaskTimes]
    workers: Workers
    recent_failures: list[Failure]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of ascending ``sorted_values`` (0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return round(sorted_values[rank - 1], 2)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _floats(values: list[Any]) -> list[float]:
    found = []
    for value in values:
        try:
            found.append(float(value))
        except (TypeError, ValueError):
            continue
    return sorted(found)


async def minutes(connection: Redis, now: datetime) -> list[MinuteCount]:
    """The last :data:`MINUTES` minutes (this one last), zeros included."""
    current = int(now.timestamp() // 60)
    window = range(current - MINUTES + 1, current + 1)
    async with connection.pipeline(transaction=False) as pipe:
        for minute in window:
            pipe.hmget(MINUTE_KEY.format(minute), *(str(status) for status in FINAL))
        counts = await pipe.execute()
    return [MinuteCount(minute=datetime.fromtimestamp(minute * 60, UTC),
                        succeeded=_int(found[0]), failed=_int(found[1]),
                        cancelled=_int(found[2]))
            for minute, found in zip(window, counts, strict=True)]


async def task_times(connection: Redis) -> list[TaskTimes]:
    """Recent run times and queue waits per task (p50/p95 over the kept samples)."""
    names = sorted(name.decode() if isinstance(name, bytes) else name
                   for name in await connection.smembers(TASKS_KEY))
    if not names:
        return []
    async with connection.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.lrange(RUNS_KEY.format(name), 0, -1)
            pipe.lrange(WAITS_KEY.format(name), 0, -1)
        lists = await pipe.execute()
    times = []
    for index, name in enumerate(names):
        runs, waits = _floats(lists[2 * index]), _floats(lists[2 * index + 1])
        if not runs and not waits:
            continue
        times.append(TaskTimes(task=name, runs=len(runs),
                               run_p50_ms=percentile(runs, 0.5), run_p95_ms=percentile(runs, 0.95),
                               wait_p50_ms=percentile(waits, 0.5),
                               wait_p95_ms=percentile(waits, 0.95)))
    return times


_failure = msgspec.json.Decoder(Failure)


async def failures(connection: Redis) -> list[Failure]:
    """The latest failures, newest first, at most :data:`FAILURES_SHOWN` (user ids not
    filled in: the store knows them)."""
    found: dict[str, Failure] = {}
    for raw in await connection.lrange(FAILURES_KEY, 0, FAILURES_KEPT - 1):
        try:
            failure = _failure.decode(raw)
        except msgspec.DecodeError:
            continue
        found.setdefault(failure.id, failure)
    newest = sorted(found.values(), key=lambda f: f.finished_at, reverse=True)
    return newest[:FAILURES_SHOWN]


async def workers(connection: Redis) -> Workers:
    """RQ's worker registry: workers alive (their key has not expired), busy or idle."""
    keys = list(await connection.smembers(WORKERS_KEY))
    if not keys:
        return Workers()
    async with connection.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hget(key, "state")
        states = await pipe.execute()
    alive = [state for state in states if state is not None]
    busy = sum(1 for state in alive if state in (b"busy", "busy"))
    return Workers(online=len(alive), busy=busy, idle=len(alive) - busy)


async def _depth_of(call: Any, what: str) -> int | None:
    try:
        return int(await call())
    except (QueueError, RedisError) as exc:
        log.warning("the depth of %s is unknown: %s", what, exc)
        return None


async def queue_depths(queue: StandardQueue, connection: Redis,
                       executors: Sequence[str]) -> list[tuple[str, str, int | None]]:
    """``(name, kind, depth)`` of the STANDARD queue, each executor's RQ queue, the dead
    letters and the report stream (kind: standard, rq, dead-letter, reports); a depth that
    could not be read is None. The stats endpoint and the dispatcher's metrics share it."""
    async def redis_depths() -> list[int | None]:
        try:
            async with connection.pipeline(transaction=False) as pipe:
                for name in executors:
                    pipe.llen(queue_key(name))
                pipe.xlen(REPORT_STREAM)
                return [int(depth) for depth in await pipe.execute()]
        except RedisError as exc:
            log.warning("the depths of the RQ queues are unknown: %s", exc)
            return [None] * (len(executors) + 1)

    (*rq_depths, reports), standard, dead = await asyncio.gather(
        redis_depths(), _depth_of(queue.depth, queue.name),
        _depth_of(queue.dead_letter_depth, queue.dead_letter_name))
    return [(queue.name, "standard", standard),
            *((name, "rq", depth) for name, depth in zip(executors, rq_depths, strict=True)),
            (queue.dead_letter_name, "dead-letter", dead),
            (REPORT_STREAM, "reports", reports)]
