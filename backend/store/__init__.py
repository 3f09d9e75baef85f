"""The data service (``python -m backend.store``): a Litestar app over Beanie that owns
the job documents, and :mod:`backend.store.client`, how the other processes talk to it.

Importing this package loads nothing: the kernel and the dispatcher import only the
client, never the server's Beanie documents.
"""
