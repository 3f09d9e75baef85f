"""The wait every loop of the dispatcher process makes between two rounds."""

from __future__ import annotations

import asyncio


async def pause(stopping: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds``, or less if ``stopping`` is set meanwhile; True if it was."""
    try:
        await asyncio.wait_for(stopping.wait(), seconds)
    except TimeoutError:
        return False
    return True
