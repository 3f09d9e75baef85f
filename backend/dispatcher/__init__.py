"""The process that feeds the workers and follows them (``python -m backend.dispatcher``):

* :mod:`.dispatch`: STANDARD queue -> the RQ queue of each job's executor;
* :mod:`.recorder`: the workers' report stream -> the data service, in batches;
* :mod:`.reconciler`: unfinished jobs that nothing holds are sent again;
* :mod:`.webhook_sender`: finished jobs POSTed to their callback URLs, retried until
  delivered;
* :mod:`.queue_metrics`: its ``/metrics`` endpoint (queue depths, stream lag).
"""
