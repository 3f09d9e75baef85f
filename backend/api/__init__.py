"""The kernel API: accepts jobs, records them through the data service, queues them."""

from backend.api.app import create_app

__all__ = ["create_app"]
