"""The ``taskbroker`` command line client of the kernel API (:mod:`.commands`)."""

from backend.cli.commands import main

__all__ = ["main"]
