"""The one shape of every error answer of the kernel and the data service: RFC 9457
problem details (docs/errors.md). Declared once; both apps and their clients read it."""

from __future__ import annotations

import msgspec

PROBLEM_JSON = "application/problem+json"


class FieldError(msgspec.Struct, kw_only=True):
    """One field of the request that is wrong: which (``params.path``), what is wrong, and
    where it was (``body``, ``query``, ``path``, ``header``, ``cookie``)."""

    field: str
    message: str
    in_: str = msgspec.field(default="body", name="in")


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Every 4xx and 5xx of the kernel and the data service (RFC 9457 problem details).

    ``errors`` is always there (empty when nothing field-level is wrong); the members after
    it only where they carry data."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    errors: list[FieldError]
    retry_after_seconds: int | None = None
    job_id: str | None = None
    job_ids: list[str] | None = None
    current_status: str | None = None
    limit_bytes: int | None = None
    checks: dict[str, str] | None = None
