"""Taking the next job with the end of the last one, and putting it back if it will not
start here.

RQ pops a job (LPOP, or LMOVE to the intermediate list for a single queue) and then
fetches its hash: two round trips before each job. :class:`NextJobWorker` adds both, as
one script (:data:`_TAKE_NEXT`), to the transaction that ends the previous job, and
starts the job it took at once. A worker that stops (or is suspended) before starting
it puts it back at the head of its queue; a worker killed in between leaves it out of
RQ, as RQ's own pop would, and the reconciler sends it again.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from rq import SimpleWorker
from rq.job import Job as RQJob
from rq.queue import Queue

log = logging.getLogger("backend.workers.worker")

# Takes the next job of the worker's queues (in order) and returns its queue key, id and
# hash, as RQ's dequeue (LPOP, or LMOVE to the intermediate list for a single queue) and
# Job.fetch would; nothing when the queues are empty.
# KEYS: the queue keys; ARGV[1]: the intermediate list ('' unless one queue); ARGV[2]:
# the job key prefix.
_TAKE_NEXT = """
for _, key in ipairs(KEYS) do
  local id
  if ARGV[1] ~= '' then
    id = redis.call('lmove', key, ARGV[1], 'LEFT', 'RIGHT')
  else
    id = redis.call('lpop', key)
  end
  if id then return {key, id, redis.call('hgetall', ARGV[2] .. id)} end
end
return false
"""


class NextJobWorker(SimpleWorker):
    """A SimpleWorker that can take its next job in the pipeline that ends the last one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._next: tuple[str, str, dict[bytes, bytes]] | None = None  # taken, not started

    def _take_next_with(self, pipeline: Any) -> bool:
        """Add the taking of the next job to ``pipeline`` (its reply comes last), unless
        this worker is about to stop; whether it was added."""
        if self._stop_requested:
            return False
        queues = self._ordered_queues
        intermediate = queues[0].intermediate_queue_key if len(queues) == 1 else ""
        # EVAL, not a registered script: redis-py checks those with SCRIPT EXISTS before
        # every pipeline, a round trip more.
        pipeline.eval(_TAKE_NEXT, len(queues), *(queue.key for queue in queues), intermediate,
                      self.job_class.redis_job_namespace_prefix)
        return True

    def _keep_next(self, reply: Any) -> None:
        if not reply:
            return
        key, job_id, flat = reply
        self._next = (key.decode(), job_id.decode(), dict(zip(flat[::2], flat[1::2],
                                                              strict=True)))

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None,
                                     ) -> tuple[RQJob, Queue] | None:
        taken, self._next = self._next, None
        if taken is None:
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        key, job_id, data = taken
        queue = next(queue for queue in self._ordered_queues if queue.key == key)
        if not data:  # deleted since it was enqueued: RQ skips it too
            return self.dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        self.heartbeat()
        if self.should_run_maintenance_tasks:
            self.run_maintenance_tasks()
        job = self.job_class(job_id, connection=self.connection, serializer=self.serializer)
        job.restore(data)
        self.reorder_queues(reference_queue=queue)
        job.redis_server_version = self.get_redis_server_version()
        self.log.info("Worker %s: %s: %s", self.name, queue.name, job.id)
        return job, queue

    def _put_back(self) -> None:
        """Return a taken job that will not start here to the head of its queue."""
        taken, self._next = self._next, None
        if taken is None:
            return
        key, job_id, _ = taken
        queues = self._ordered_queues
        try:
            with self.connection.pipeline() as pipe:
                if len(queues) == 1:
                    pipe.lrem(queues[0].intermediate_queue_key, 1, job_id)
                pipe.lpush(key, job_id)
                pipe.execute()
        except redis.RedisError as exc:
            log.warning("job %s could not go back to its queue (%s); the reconciler will "
                        "send it again", job_id, exc)

    def teardown(self) -> None:
        self._put_back()
        super().teardown()
