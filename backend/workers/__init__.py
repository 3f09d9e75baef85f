"""The process that runs jobs (``python -m backend.workers``): the worker executor
(:mod:`.executor`) supervises a pool of RQ workers (:mod:`.worker`), each of which runs
one job at a time through :func:`backend.workers.runner.run_job` (the function every
queued RQ job names) and the middleware chain around the task (:mod:`.middleware`).

Importing this package loads nothing: the dispatcher shares only
:mod:`backend.rqjobs` and :mod:`backend.markers` with it.
"""
