"""The data service (``python -m backend.store``): a Litestar app over Beanie that owns
the job documents, and :mod:`backend.store.client`, how the other processes talk to it.

The job record is :mod:`.documents` (its fields are the wire ``Job``'s); the routes
(:mod:`.routes`) read through :mod:`.job_reads` and write, status changes included,
through :mod:`.job_writes`.

Importing this package loads nothing: the kernel and the dispatcher import only the
client, never the server's Beanie documents.
"""
