"""The kernel API (``python -m backend.api``): accepts jobs, records them through the
data service, queues them; the app is built by :func:`backend.api.app.create_app`."""
