"""Opaque cursors for a user's job list, which is ordered newest first.

A cursor names the last item of a page by ``(created_at, id)``, the list's sort key, so
the next page starts strictly after it even when jobs share a creation millisecond, and
pages stay stable while new jobs arrive.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bson import ObjectId

from backend.errors import InvalidCursorError

_OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
_MILLIS = re.compile(r"^-?[0-9]{1,16}$")
_MAX_CURSOR_LENGTH = 200
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class Cursor:
    """Position after the item created at ``created_at`` with id ``job_id``."""

    created_at: datetime
    job_id: ObjectId


def encode_cursor(created_at: datetime, job_id: str | ObjectId) -> str:
    """The cursor that continues after the item ``(created_at, job_id)``."""
    # Integer arithmetic: float timestamps can round 123 ms down to 122.999.
    millis = (created_at - _EPOCH) // _MILLISECOND
    raw = f"{millis}:{job_id}".encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> Cursor:
    """Parse a cursor; raises :class:`InvalidCursorError` for anything else."""
    if not cursor or len(cursor) > _MAX_CURSOR_LENGTH:
        raise InvalidCursorError("cursor is empty or too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCursorError("cursor is not valid base64") from exc
    millis, sep, job_id = raw.partition(":")
    if not sep or not _MILLIS.match(millis) or not _OBJECT_ID.match(job_id):
        raise InvalidCursorError("cursor does not name a position in the list")
    try:
        created_at = _EPOCH + int(millis) * _MILLISECOND
    except (OverflowError, OSError, ValueError) as exc:
        raise InvalidCursorError("cursor time is out of range") from exc
    return Cursor(created_at=created_at, job_id=ObjectId(job_id))
