"""RQ objects the dashboard reads are decoded as JSON, never unpickled.

rq-dashboard 0.9 honours its ``serializer`` setting on some paths only: the job page,
delete, requeue and the workers list fetch jobs with RQ's default, pickle, so whoever can
write Redis could run code in the dashboard. :func:`install` replaces the RQ classes and
functions rq-dashboard's views use with ones that always use :class:`StrictJSONSerializer`,
and :func:`refuse_pickle` makes pickle itself refuse in the dashboard's process, for any
path of RQ's that takes the default anyway.

A job whose call, meta or result is not JSON is refused as a whole (:class:`NotJSONError`):
RQ itself would keep such a meta or result as raw bytes and go on.
"""

from __future__ import annotations

from typing import Any

import rq_dashboard.web as web
from redis import Redis
from rq.exceptions import DeserializationError
from rq.job import Job
from rq.serializers import DefaultSerializer, JSONSerializer
from rq.utils import decode_redis_hash

# The names rq-dashboard's views call that build RQ objects holding a serializer (and a
# job class, but for Job itself).
RQ_CLASSES = ("Queue", "Worker", "FailedJobRegistry", "DeferredJobRegistry",
              "StartedJobRegistry", "FinishedJobRegistry", "ScheduledJobRegistry",
              "CanceledJobRegistry")


class NotJSONError(DeserializationError):
    """RQ data in Redis that is not JSON: the project never writes it, so it is refused."""


class StrictJSONSerializer:
    """RQ's JSON serializer, raising :class:`NotJSONError` on anything else."""

    dumps = staticmethod(JSONSerializer.dumps)

    @staticmethod
    def loads(data: bytes, *args: Any, **kwargs: Any) -> Any:
        try:
            return JSONSerializer.loads(data, *args, **kwargs)
        except (ValueError, AttributeError) as exc:  # bad UTF-8 or JSON; not bytes
            raise NotJSONError("RQ data that is not JSON (refused, never unpickled)") from exc


class JSONJob(Job):
    """An RQ job that is JSON throughout, or is refused when read."""

    def __init__(self, id: str | None = None, connection: Redis | None = None,
                 serializer: Any = None) -> None:
        super().__init__(id, connection=connection, serializer=StrictJSONSerializer)

    def restore(self, raw_data: Any) -> Any:
        fields = decode_redis_hash(raw_data)
        for name in ("meta", "result"):
            if fields.get(name):
                StrictJSONSerializer.loads(fields[name])
        restored = super().restore(raw_data)
        self._deserialize_data()  # the call, decoded now: refused here rather than later
        return restored


def _json_only(cls: type) -> type:
    """``cls`` whose instances always use the strict JSON serializer and :class:`JSONJob`,
    whatever they are given (RQ passes ``serializer=None``, meaning pickle, on several
    paths)."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.update(serializer=StrictJSONSerializer, job_class=JSONJob)
        cls.__init__(self, *args, **kwargs)

    return type(cls.__name__, (cls,), {"__init__": __init__, "__module__": __name__})


def requeue_job(job_id: str, connection: Redis, serializer: Any = None) -> Job:
    """rq's ``requeue_job``, with a :class:`JSONJob`."""
    return JSONJob.fetch(job_id, connection=connection).requeue()


def install() -> None:
    """Point rq-dashboard's views at JSON-only RQ classes (idempotent)."""
    web.config.serializer = StrictJSONSerializer
    web.Job = JSONJob
    for name in RQ_CLASSES:
        current = getattr(web, name)
        if current.__module__ != __name__:
            setattr(web, name, _json_only(current))
    web.requeue_job = requeue_job


def _refuse(data: bytes, *args: Any, **kwargs: Any) -> Any:
    raise NotJSONError("pickled RQ data (refused: the dashboard never unpickles)")


def refuse_pickle() -> None:
    """In this process, RQ's default (pickle) serializer refuses to load anything. Only
    for the dashboard's own process: it changes RQ for everything in the process."""
    DefaultSerializer.loads = staticmethod(_refuse)  # type: ignore[assignment]
