"""Cursors of the data service's job list."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from bson import ObjectId

from backend.errors import InvalidCursorError
from backend.store.pagination import decode_cursor, encode_cursor


@pytest.mark.parametrize("millis", [0, 123, 999, 1_700_000_000_001, 1_764_431_088_123])
def test_round_trip_keeps_the_exact_millisecond(millis: int) -> None:
    created_at = datetime.fromtimestamp(millis // 1000, tz=UTC).replace(
        microsecond=millis % 1000 * 1000)
    job_id = ObjectId()
    cursor = decode_cursor(encode_cursor(created_at, str(job_id)))
    assert cursor.created_at == created_at and cursor.job_id == job_id


def test_cursor_is_url_safe() -> None:
    cursor = encode_cursor(datetime.now(UTC), ObjectId())
    assert cursor.replace("-", "").replace("_", "").isalnum()


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "", "!!!", "A" * 201, "w7/DvA", _b64("no-separator"), _b64("12:nothex"),
    _b64("12:0123456789abcdef0123456"), _b64("x:0123456789abcdef01234567"),
    _b64("99999999999999999:0123456789abcdef01234567"),
    _b64("9999999999999999:0123456789abcdef01234567"),
    _b64("1.5:0123456789abcdef01234567"), _b64("é:0123456789abcdef01234567"),
])
def test_anything_else_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursorError):
        decode_cursor(cursor)
