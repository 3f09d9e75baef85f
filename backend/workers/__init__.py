"""The process that runs jobs (``python -m backend.workers``): the worker executor
(:mod:`.executor`) supervises a pool of worker processes (:mod:`.worker_process`), each
an RQ worker (:mod:`.worker`; its job class :mod:`.runner_job`) that runs one job at a
time through :func:`backend.workers.runner.run_job` (the function every queued RQ job
names) and the middleware chain around the task (:mod:`.middleware`). Reports go to
the report stream through :mod:`.report_writer`; the reaper (:mod:`.reaper`) puts back
the jobs of dead workers.

Importing this package loads nothing: the dispatcher shares only
:mod:`backend.rqjobs` and :mod:`backend.markers` with it.
"""
