"""Taskbroker: a distributed task processing system.

Parts: ``backend.store`` (the data service), ``backend.api`` (the kernel API),
``backend.workers`` (dispatcher and RQ workers). Shared modules: ``settings``,
``jobs`` (the wire contract), ``errors``, ``queues`` (the STANDARD queue),
``tasks`` (the task registry) and ``client`` (the data service client).
"""
