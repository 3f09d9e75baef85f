"""The data service: a Litestar app over Beanie that owns the job documents."""

from backend.store.app import create_app

__all__ = ["create_app"]
